//! Application state shared by every handler of a worker: a database pool,
//! an HTTP client, configuration. Built once at start, reached by type.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A typed map of the values handlers share, one per type.
///
/// The worker builds it once, in the setup hook given to
/// [`main!`](crate::main) (`warren::main!(setup = my_app::setup)`), and
/// handlers reach a value with [`JobContext::state`](crate::JobContext::state).
/// Tests give theirs to [`testing::InMemoryBroker::with_state`](crate::testing::InMemoryBroker::with_state).
/// Cloning is cheap: the values are shared, not copied.
///
/// ```
/// use warren::State;
///
/// struct Config { sender: String }
///
/// let state = State::new().with(Config { sender: "noreply@example.com".into() }).with(42u32);
/// assert_eq!(state.get::<Config>().map(|c| c.sender.as_str()), Some("noreply@example.com"));
/// assert_eq!(state.get::<u32>(), Some(&42));
/// assert!(state.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct State {
    values: Arc<HashMap<TypeId, Entry>>,
}

#[derive(Clone)]
struct Entry {
    type_name: &'static str,
    value: Arc<dyn Any + Send + Sync>,
}

impl State {
    /// No state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing any earlier value of the same type.
    ///
    /// Values are looked up by their exact type: to swap an implementation
    /// in tests, store a trait object (`Arc<dyn Mailer>`) and ask for that.
    pub fn with<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        let entry = Entry {
            type_name: type_name::<T>(),
            value: Arc::new(value),
        };
        Arc::make_mut(&mut self.values).insert(TypeId::of::<T>(), entry);
        self
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.value.downcast_ref()
    }

    /// The value of type `T`, or an error that names `T` and says how to provide it.
    pub fn require<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.get().ok_or_else(|| MissingState {
            type_name: type_name::<T>(),
            held: self.type_names(),
        })
    }

    /// The types held, sorted.
    pub(crate) fn type_names(&self) -> Vec<&'static str> {
        let mut types: Vec<_> = self.values.values().map(|entry| entry.type_name).collect();
        types.sort_unstable();
        types
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for State {
    /// The types held, sorted (the values need not be `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("types", &self.type_names()).finish()
    }
}

/// A handler asked for state of a type the worker was not given.
///
/// `?` turns it into a [`JobError`](crate::JobError), so the attempt fails
/// (and is retried) with a message naming the type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no state of type `{type_name}` (the state holds {}): values are found by their exact type, so store exactly this type (e.g. `Arc<dyn Trait>`, not `Arc<Impl>`) from the worker's setup hook (`warren::main!(setup = ...)` with `State::new().with(value)`), or in tests give it to `InMemoryBroker::with_state` or `TestContext::with_state`",
    held_list(.held)
)]
#[non_exhaustive]
pub struct MissingState {
    type_name: &'static str,
    held: Vec<&'static str>,
}

fn held_list(held: &[&str]) -> String {
    if held.is_empty() {
        "nothing".to_owned()
    } else {
        held.iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl MissingState {
    /// The Rust type that was asked for.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The Rust types the state does hold, sorted.
    pub fn held(&self) -> &[&'static str] {
        &self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_value_of_a_type_replaces_the_earlier_one_and_clones_share() {
        let first = State::new().with(1u8);
        let second = first.clone().with(2u8).with("text");
        assert_eq!(first.get::<u8>(), Some(&1), "the clone was changed, not the original");
        assert_eq!(second.get::<u8>(), Some(&2));
        assert_eq!(second.len(), 2);
        assert_eq!(format!("{second:?}"), r#"State { types: ["&str", "u8"] }"#);
    }

    #[test]
    fn missing_state_names_the_type_and_how_to_provide_it() {
        struct Database;
        let error = State::new().require::<Database>().err().expect("no database");
        assert!(error.type_name().ends_with("Database"), "{}", error.type_name());
        let text = error.to_string();
        assert!(text.contains("::Database`"), "{text}");
        assert!(text.contains("setup"), "{text}");
        assert!(text.contains("the state holds nothing"), "{text}");

        let state = State::new().with(Arc::new(1u8));
        let Err(held) = state.require::<Arc<dyn Any + Send + Sync>>() else {
            panic!("an Arc<u8> is not an Arc<dyn Any>");
        };
        assert_eq!(held.held(), ["alloc::sync::Arc<u8>"]);
        assert!(
            held.to_string().contains("the state holds `alloc::sync::Arc<u8>`"),
            "{held}"
        );
    }
}
