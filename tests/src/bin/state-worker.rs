//! A worker binary with a setup hook: `warren::main!(setup = ...)` with the
//! jobs of `src/state_jobs.rs`.

#[path = "../state_jobs.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "job fields are read only by the tests that enqueue them"
)]
mod state_jobs;

warren::main!(setup = state_jobs::setup);
