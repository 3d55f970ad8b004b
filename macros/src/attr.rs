//! Reads the `#[job(...)]` attributes: which keys are given, each with a value
//! of the right kind. Whether a value makes sense (a valid queue name, a
//! duration that parses) is for `valid` to say.

use std::collections::HashSet;

use quote::{ToTokens, quote};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, Meta, Token, UnOp};

use crate::diagnostics::Diagnostics;

/// A key of `#[job(...)]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Name,
    Queue,
    Timeout,
    Retries,
    Backoff,
    Format,
    QueueDefault,
    QueueType,
    Contract,
    Priority,
    MaxPriority,
    UniqueFor,
    Cron,
    Timezone,
}

impl Key {
    /// Every key, in the order the unknown-key error lists them.
    const ALL: [Key; 14] = [
        Key::Name,
        Key::Queue,
        Key::Timeout,
        Key::Retries,
        Key::Backoff,
        Key::Format,
        Key::QueueDefault,
        Key::QueueType,
        Key::Contract,
        Key::Priority,
        Key::MaxPriority,
        Key::UniqueFor,
        Key::Cron,
        Key::Timezone,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Queue => "queue",
            Key::Timeout => "timeout",
            Key::Retries => "retries",
            Key::Backoff => "backoff",
            Key::Format => "format",
            Key::QueueDefault => "queue_default",
            Key::QueueType => "queue_type",
            Key::Contract => "contract",
            Key::Priority => "priority",
            Key::MaxPriority => "max_priority",
            Key::UniqueFor => "unique_for",
            Key::Cron => "cron",
            Key::Timezone => "timezone",
        }
    }

    /// How the key is written, for errors to show.
    fn example(self) -> &'static str {
        match self {
            Key::Name => "name = \"resize_image\"",
            Key::Queue => "queue = \"images\"",
            Key::Timeout => "timeout = \"30s\"",
            Key::Retries => "retries = 5",
            Key::Backoff => "backoff = \"10s\"",
            Key::Format => "format = \"json\"",
            Key::QueueDefault => "queue_default",
            Key::QueueType => "queue_type = \"quorum\"",
            Key::Contract => "contract",
            Key::Priority => "priority = 5",
            Key::MaxPriority => "max_priority = 10",
            Key::UniqueFor => "unique_for = \"10m\"",
            Key::Cron => "cron = \"0 */5 * * * *\"",
            Key::Timezone => "timezone = \"Europe/Paris\"",
        }
    }
}

/// What the `#[job(...)]` attributes of one type say. A key whose value was
/// of the wrong kind is left out, its error recorded.
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) queue: Option<LitStr>,
    pub(crate) timeout: Option<LitStr>,
    pub(crate) retries: Option<LitInt>,
    pub(crate) backoff: Option<LitStr>,
    pub(crate) format: Option<LitStr>,
    pub(crate) queue_default: bool,
    pub(crate) queue_type: Option<LitStr>,
    /// Declared without a handler, which another crate binds.
    pub(crate) contract: bool,
    pub(crate) priority: Option<LitInt>,
    pub(crate) max_priority: Option<LitInt>,
    pub(crate) unique_for: Option<LitStr>,
    pub(crate) cron: Option<LitStr>,
    pub(crate) timezone: Option<LitStr>,
}

impl Attrs {
    /// Reads every `#[job(...)]` among `attrs`; the keys of several such
    /// attributes merge. Other attributes (`#[serde]`, docs) are skipped.
    pub(crate) fn parse(attrs: &[Attribute], diagnostics: &mut Diagnostics) -> Self {
        let mut parser = Parser {
            attrs: Attrs::default(),
            seen: HashSet::new(),
            diagnostics,
        };
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("job")) {
            // A syntax error (`#[job(name "x")]`) leaves nothing to go on in
            // this attribute, but the others are still read.
            let entries = attr
                .meta
                .require_list()
                .and_then(|list| list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated));
            match entries {
                Ok(entries) => entries.into_iter().for_each(|entry| parser.entry(entry)),
                Err(error) => parser.diagnostics.push(error),
            }
        }
        parser.attrs
    }
}

struct Parser<'a> {
    attrs: Attrs,
    /// Keys met so far, across attributes, to catch one given twice.
    seen: HashSet<Key>,
    diagnostics: &'a mut Diagnostics,
}

impl Parser<'_> {
    fn entry(&mut self, entry: Meta) {
        let path = entry.path();
        let Some(key) = Key::ALL.into_iter().find(|key| path.is_ident(key.as_str())) else {
            let key = path.to_token_stream().to_string().replace(' ', "");
            self.error(path, unknown_key_message(&key));
            return;
        };
        if !self.seen.insert(key) {
            let message = format!(
                "`{}` is set twice; give each key once across all #[job(...)] attributes",
                key.as_str()
            );
            self.error(path, message);
            return;
        }

        let expected_string = || format!("expected a string, like #[job({})]", key.example());
        match (key, entry) {
            (Key::QueueDefault, Meta::Path(_)) => self.attrs.queue_default = true,
            (Key::Contract, Meta::Path(_)) => self.attrs.contract = true,
            (flag @ (Key::QueueDefault | Key::Contract), Meta::NameValue(entry)) => {
                let (eq_token, value) = (entry.eq_token, entry.value);
                self.error(quote!(#eq_token #value), takes_no_value(flag));
            }
            (flag @ (Key::QueueDefault | Key::Contract), Meta::List(entry)) => {
                let parentheses = entry.delimiter.span().join();
                self.diagnostics
                    .push(syn::Error::new(parentheses, takes_no_value(flag)));
            }
            (_, entry @ (Meta::Path(_) | Meta::List(_))) => {
                self.error(
                    entry,
                    format!("`{}` needs a value, like #[job({})]", key.as_str(), key.example()),
                );
            }
            (Key::Name, Meta::NameValue(entry)) => self.attrs.name = self.string(entry.value, expected_string()),
            (Key::Queue, Meta::NameValue(entry)) => self.attrs.queue = self.string(entry.value, expected_string()),
            (Key::Timeout, Meta::NameValue(entry)) => {
                let expected = "expected a duration string like \"30s\", \"5m\" or \"1h 30m\"";
                self.attrs.timeout = self.string(entry.value, expected.into());
            }
            (Key::Backoff, Meta::NameValue(entry)) => {
                let expected = "expected a duration string like \"10s\" (the wait before the first retry)";
                self.attrs.backoff = self.string(entry.value, expected.into());
            }
            (Key::Format, Meta::NameValue(entry)) => {
                self.attrs.format = self.string(entry.value, "expected \"json\" or \"text\"".into());
            }
            (Key::QueueType, Meta::NameValue(entry)) => {
                self.attrs.queue_type = self.string(entry.value, "expected \"classic\" or \"quorum\"".into());
            }
            (Key::UniqueFor, Meta::NameValue(entry)) => {
                let expected = "expected a duration string like \"10m\" (the longest a key stays taken)";
                self.attrs.unique_for = self.string(entry.value, expected.into());
            }
            (Key::Cron, Meta::NameValue(entry)) => self.attrs.cron = self.string(entry.value, expected_string()),
            (Key::Timezone, Meta::NameValue(entry)) => {
                self.attrs.timezone = self.string(entry.value, expected_string());
            }
            (Key::Retries, Meta::NameValue(entry)) => self.attrs.retries = self.integer(key, entry.value),
            (Key::Priority, Meta::NameValue(entry)) => self.attrs.priority = self.integer(key, entry.value),
            (Key::MaxPriority, Meta::NameValue(entry)) => self.attrs.max_priority = self.integer(key, entry.value),
        }
    }

    fn string(&mut self, value: Expr, expected: String) -> Option<LitStr> {
        match ungroup(value) {
            Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Some(lit),
            other => {
                self.error(other, expected);
                None
            }
        }
    }

    fn integer(&mut self, key: Key, value: Expr) -> Option<LitInt> {
        match ungroup(value) {
            Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => Some(lit),
            negative @ Expr::Unary(ExprUnary { op: UnOp::Neg(_), .. }) => {
                self.error(negative, format!("`{}` cannot be negative", key.as_str()));
                None
            }
            other => {
                self.error(other, format!("expected an integer, like #[job({})]", key.example()));
                None
            }
        }
    }

    fn error(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.diagnostics.push(syn::Error::new_spanned(tokens, message));
    }
}

/// The error for a value given to a flag (`queue_default`, `contract`).
fn takes_no_value(flag: Key) -> String {
    format!("`{0}` is a flag and takes no value: write #[job({0})]", flag.as_str())
}

fn unknown_key_message(key: &str) -> String {
    let known = Key::ALL.map(|known| format!("`{}`", known.as_str())).join(", ");
    let suggestion = Key::ALL
        .into_iter()
        .map(|known| (edit_distance(key, known.as_str()), known.as_str()))
        .filter(|&(distance, _)| distance <= 2)
        .min()
        .map_or_else(|| ".".to_owned(), |(_, known)| format!(": did you mean `{known}`?"));
    format!("unknown key `{key}` in #[job(...)]{suggestion} The known keys are {known}")
}

/// Levenshtein distance, for suggesting the key a typo was meant to be.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A value that came in through a `macro_rules!` fragment (`$name:literal`)
/// is wrapped in an invisible group; look through it.
fn ungroup(mut expr: Expr) -> Expr {
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    expr
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn parse(attrs: &[Attribute]) -> (Attrs, Vec<String>) {
        let mut diagnostics = Diagnostics::new();
        let parsed = Attrs::parse(attrs, &mut diagnostics);
        let errors = match diagnostics.finish() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, errors)
    }

    #[test]
    fn keys_of_several_attributes_merge() {
        let (attrs, errors) = parse(&[
            parse_quote!(#[job(name = "a", queue = "q")]),
            parse_quote!(#[serde(rename_all = "camelCase")]),
            parse_quote!(#[job(retries = 3, queue_default, queue_type = "quorum", contract)]),
            parse_quote!(#[job(priority = 2, max_priority = 10)]),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attrs.name.map(|lit| lit.value()).as_deref(), Some("a"));
        assert_eq!(attrs.queue.map(|lit| lit.value()).as_deref(), Some("q"));
        assert_eq!(
            attrs.retries.map(|lit| lit.base10_digits().to_owned()).as_deref(),
            Some("3")
        );
        assert!(attrs.queue_default && attrs.contract);
        assert_eq!(attrs.queue_type.map(|lit| lit.value()).as_deref(), Some("quorum"));
        assert!(attrs.timeout.is_none() && attrs.format.is_none());
        assert_eq!(
            attrs.priority.map(|lit| lit.base10_digits().to_owned()).as_deref(),
            Some("2")
        );
        assert_eq!(
            attrs.max_priority.map(|lit| lit.base10_digits().to_owned()).as_deref(),
            Some("10")
        );
    }

    #[test]
    fn priorities_are_integers() {
        let (attrs, errors) = parse(&[parse_quote!(#[job(max_priority = -1, priority = "high")])]);
        assert_eq!(
            errors,
            [
                "`max_priority` cannot be negative",
                "expected an integer, like #[job(priority = 5)]"
            ]
        );
        assert!(attrs.priority.is_none() && attrs.max_priority.is_none());
    }

    #[test]
    fn reports_every_mistake() {
        let (attrs, errors) = parse(&[
            parse_quote!(#[job(nmae = "a", retries = "5", timeout = 30)]),
            parse_quote!(#[job(retries = 1, queue_default = true, name, format(json))]),
            parse_quote!(#[job(queue_type = quorum)]),
        ]);
        assert_eq!(errors.len(), 8, "{errors:?}");
        assert!(errors[0].starts_with("unknown key `nmae`"), "{}", errors[0]);
        assert!(errors[0].contains("`queue_default`"), "{}", errors[0]);
        assert!(errors[1].starts_with("expected an integer"), "{}", errors[1]);
        assert!(errors[2].starts_with("expected a duration string"), "{}", errors[2]);
        assert!(errors[3].starts_with("`retries` is set twice"), "{}", errors[3]);
        assert!(errors[4].contains("takes no value"), "{}", errors[4]);
        assert!(errors[5].starts_with("`name` needs a value"), "{}", errors[5]);
        assert!(errors[6].starts_with("`format` needs a value"), "{}", errors[6]);
        assert_eq!(errors[7], "expected \"classic\" or \"quorum\"");
        assert!(attrs.retries.is_none() && attrs.timeout.is_none() && !attrs.queue_default);
        assert!(attrs.queue_type.is_none());
    }

    #[test]
    fn contract_is_a_flag() {
        let (attrs, errors) = parse(&[
            parse_quote!(#[job(contract = true)]),
            parse_quote!(#[job(contract(yes))]),
        ]);
        assert_eq!(
            errors,
            [
                "`contract` is a flag and takes no value: write #[job(contract)]",
                "`contract` is set twice; give each key once across all #[job(...)] attributes",
            ]
        );
        assert!(!attrs.contract);
        let typo = unknown_key_message("contarct");
        assert!(
            typo.starts_with("unknown key `contarct` in #[job(...)]: did you mean `contract`?"),
            "{typo}"
        );
    }

    #[test]
    fn unknown_keys_suggest_the_nearest_known_one() {
        assert_eq!(edit_distance("timout", "timeout"), 1);
        assert_eq!(edit_distance("qeue", "queue"), 1);
        assert_eq!(edit_distance("", "name"), 4);
        let typo = unknown_key_message("retires");
        assert!(
            typo.starts_with(
                "unknown key `retires` in #[job(...)]: did you mean `retries`? The known keys are `name`,"
            ),
            "{typo}"
        );
        let unrelated = unknown_key_message("urgency");
        assert!(
            unrelated.starts_with("unknown key `urgency` in #[job(...)]. The known keys are"),
            "{unrelated}"
        );
    }

    #[test]
    fn a_syntax_error_does_not_hide_other_attributes() {
        let (_, errors) = parse(&[
            parse_quote!(#[job(name "a")]),
            parse_quote!(#[job(queue = 1)]),
            parse_quote!(#[job]),
        ]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[1].starts_with("expected a string"), "{}", errors[1]);
    }
}
