//! The work-queue worker: warren's generated worker binary, running [`Task`]s.
//!
//! ```text
//! cargo run -p warren-examples --bin worker -- work --workers 1 --prefetch 1
//! cargo run -p warren-examples --bin worker -- jobs
//! ```
//!
//! [`Task`]: warren_examples::Task

// The jobs live in the library; naming one links it, and with it the job
// registrations (a crate nothing refers to is not linked at all).
#[allow(
    unused_imports,
    reason = "referenced only so that the library and its jobs are linked"
)]
use warren_examples::Task as _;

warren::main!();
