//! The warren side of `warren-bench`: warren's generated worker binary,
//! running the bench jobs. `warren-bench` spawns it with `work`, as a user
//! runs a worker.
//!
//! ```text
//! cargo run --release -p warren-bench --bin bench-worker -- jobs
//! ```

// Naming the library links it, and with it the job registrations (a crate
// nothing refers to is not linked at all).
use warren_bench as _;

warren::main!();
