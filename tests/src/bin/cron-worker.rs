//! A worker binary with periodic jobs every second, for the scheduler's
//! tests: a binary of its own, so that the other tests' workers do not
//! stand for election. `tick` is a `#[job(cron)]` job on queue `ticks`;
//! `greet` has two named schedules with different arguments, on queue
//! `greetings`, so that a worker of one queue does not fire the other's.

use warren::prelude::*;

/// Prints `tick id=<job id>` each second.
#[derive(Debug, Default, Serialize, Deserialize, Job)]
#[job(queue = "ticks", cron = "* * * * * *", timezone = "Europe/Paris")]
struct Tick;

impl Handler for Tick {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("tick id={}", ctx.job_id());
        Ok(())
    }
}

/// Prints `greet lang=<lang> id=<job id>`.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "greetings")]
struct Greet {
    lang: String,
}

impl Handler for Greet {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        println!("greet lang={} id={}", self.lang, ctx.job_id());
        Ok(())
    }
}

warren::schedule!(
    name = "greet_en",
    cron = "* * * * * *",
    job = Greet { lang: "en".to_owned() }
);
warren::schedule!(
    name = "greet_fr",
    cron = "* * * * * *",
    timezone = "Europe/Paris",
    job = Greet { lang: "fr".to_owned() }
);

warren::main!();
