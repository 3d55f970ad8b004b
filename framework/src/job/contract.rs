//! Job types declared in one crate and handled in another.
//!
//! A producer needs a job's type (its fields, name, queue and options) but
//! not its handler, whose dependencies may be heavy; and the orphan rule
//! forbids `impl Handler for other_crate::Job` in the worker's crate. So a
//! job type can be declared a contract (`#[job(contract)]`): it registers
//! without a handler, and the worker crate binds one to it with
//! [`handler!`](crate::handler), which submits a [`BoundHandler`] that
//! [`Registry::from_inventory`](crate::Registry::from_inventory) joins to the
//! job's registration by type.

use std::any::TypeId;
use std::fmt;
use std::future::Future;

use crate::job::codec;
use crate::job::registry::{Attempt, Start};
use crate::{Job, JobContext, JobError};

/// A job type declared with `#[job(contract)]`: it has no [`Handler`]
/// of its own, and the crate that runs it binds one with
/// [`handler!`](crate::handler).
///
/// `#[derive(Job)]` implements it; there is nothing to write by hand.
///
/// [`Handler`]: crate::Handler
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a contract job, so `warren::handler!` cannot bind a handler to it",
    label = "not declared with #[job(contract)]",
    note = "add #[job(contract)] to the job type's derive, or implement `warren::Handler` for it in the crate that declares it"
)]
pub trait Contract: Job {}

/// A handler that [`handler!`](crate::handler) bound to a contract job.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct BoundHandler {
    pub(crate) job: fn() -> TypeId,
    pub(crate) job_type: fn() -> &'static str,
    /// The handler's path, for messages that name it.
    pub(crate) handler: fn() -> &'static str,
    pub(crate) start: Start,
}

impl BoundHandler {
    /// The binding of a handler to contract job `J`: `handler` names it,
    /// `start` (written by `handler!` with [`start`]) runs it.
    pub const fn new<J: Contract>(handler: fn() -> &'static str, start: fn(&[u8], JobContext) -> Attempt) -> Self {
        BoundHandler {
            job: TypeId::of::<J>,
            job_type: std::any::type_name::<J>,
            handler,
            start,
        }
    }
}

impl fmt::Debug for BoundHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundHandler")
            .field("job", &(self.job_type)())
            .field("handler", &(self.handler)())
            .finish_non_exhaustive()
    }
}

inventory::collect!(BoundHandler);

/// Decodes `body` as `J` and starts the bound handler on it: the body of
/// the `start` function `handler!` writes.
#[doc(hidden)]
pub fn start<J, F, Fut>(body: &[u8], ctx: JobContext, handler: F) -> Attempt
where
    J: Contract,
    F: FnOnce(J, JobContext) -> Fut,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    let job = codec::decode::<J>(body)?;
    Ok(Box::pin(handler(job, ctx)))
}

/// Binds an async function as the handler of a contract job, in the crate
/// that runs it.
///
/// The job type comes from a contract crate, declared with
/// `#[job(contract)]` and no [`Handler`](crate::Handler); the function takes
/// the job and its context, like [`Handler::perform`](crate::Handler::perform):
///
/// ```
/// use warren::prelude::*;
///
/// // In the contract crate, which producers depend on too:
/// #[derive(Debug, Serialize, Deserialize, Job)]
/// #[job(contract, queue = "images")]
/// pub struct ResizeImage { pub path: String, pub width: u32 }
///
/// // In the worker's crate:
/// async fn resize_image(job: ResizeImage, ctx: &JobContext) -> Result<(), JobError> {
///     println!("resizing {} to {}px (attempt {})", job.path, job.width, ctx.attempt());
///     Ok(())
/// }
///
/// warren::handler!(ResizeImage => resize_image);
/// # let registry = warren::Registry::from_inventory().unwrap();
/// # assert!(registry.get("resize_image").unwrap().handler().unwrap().ends_with("::resize_image"));
/// ```
///
/// A program that links the job finds it in its
/// [`Registry`](crate::Registry) with this handler. Each contract job has
/// at most one handler per program: a second one makes the registry fail,
/// naming both. A worker that serves the job's queue with no handler bound
/// refuses to start and names the job; a producer needs none.
///
/// The handler must be a path to an `async fn(Job, &JobContext) ->
/// Result<(), JobError>` (or a function returning such a `Send` future);
/// unit tests call it directly, with a
/// [`TestContext`](crate::testing::TestContext).
#[macro_export]
macro_rules! handler {
    ($job:ty => $handler:path $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::__private::BoundHandler::new::<$job>(
                || ::core::any::type_name_of_val(&$handler),
                |body, ctx| {
                    $crate::__private::start_bound::<$job, _, _>(body, ctx, |job, ctx| async move {
                        // Typed here, so that a handler returning something
                        // else is one error, about its return type.
                        let outcome: ::core::result::Result<(), $crate::JobError> = $handler(job, &ctx).await;
                        outcome
                    })
                },
            )
        }
    };
}
