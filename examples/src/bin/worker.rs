//! The examples' worker: warren's generated worker binary, running the
//! tutorial's [`Task`]s and the sign-up jobs, whose mailer its setup hook
//! builds.
//!
//! ```text
//! cargo run -p warren-examples --bin worker -- work --workers 1 --prefetch 1
//! cargo run -p warren-examples --bin worker -- jobs
//! ```
//!
//! [`Task`]: warren_examples::Task

// Naming the library's setup hook also links the library, and with it the
// job registrations (a crate nothing refers to is not linked at all).
warren::main!(setup = warren_examples::signup::setup);
