//! The worker binary of the integration tests: `warren::main!()` with the
//! jobs of `src/jobs.rs`.

#[path = "../jobs.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "job fields are read only by the tests that enqueue them"
)]
mod jobs;

warren::main!();
