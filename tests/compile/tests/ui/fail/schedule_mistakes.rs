use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "reports")]
struct Report {
    region: String,
}

impl Handler for Report {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

// A name that cannot be a queue name, not a cron expression, a time zone
// that is not a name, and a key that does not exist.
warren::schedule!(
    name = "report eu",
    cron = "every day at 7",
    timezone = "Paris, France",
    jobs = Report { region: "eu".into() },
);

// No cron expression; a name that is not a literal.
warren::schedule!(name = NAME, job = Report { region: "us".into() });

// A value that is not a job.
warren::schedule!(name = "report_asia", cron = "0 0 7 * * *", job = "asia");

fn main() {}
