//! The jobs and setup hook of the `state-worker` binary, a worker made with
//! `warren::main!(setup = ...)`. Included (`#[path]`) by the binary, which
//! runs them, and by `tests/state.rs`, which enqueues them.

use warren::prelude::*;

/// What the setup hook builds: the text `GREETING` says, or `hello`.
#[derive(Debug)]
pub struct Greeting(pub String);

/// State the setup hook never provides.
#[derive(Debug)]
pub struct Database;

/// Builds the worker's state; fails with `database unreachable at <url>`
/// when `STATE_WORKER_DATABASE_DOWN` is set to that url, and panics when
/// `STATE_WORKER_PANIC` is set.
pub async fn setup() -> Result<State, String> {
    if let Ok(url) = std::env::var("STATE_WORKER_DATABASE_DOWN") {
        return Err(format!("database unreachable at {url}"));
    }
    if std::env::var("STATE_WORKER_PANIC").is_ok() {
        panic!("config file missing");
    }
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned());
    Ok(State::new().with(Greeting(greeting)))
}

/// Prints `greeted seq=<n> greeting=<the state's text>`.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "state")]
pub struct Greet {
    pub seq: u32,
}

impl Handler for Greet {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let Greeting(text) = ctx.state()?;
        println!("greeted seq={} greeting={text}", self.seq);
        Ok(())
    }
}

/// Asks for [`Database`], which the worker does not have; never retried.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(queue = "state", retries = 0)]
pub struct Query {
    pub seq: u32,
}

impl Handler for Query {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let Database = ctx.state()?;
        Ok(())
    }
}
