use warren::prelude::*;

// Not a cron expression, a time zone that is not a name, and a time zone
// without a schedule.
#[derive(Default, Serialize, Deserialize, Job)]
#[job(queue = "a", cron = "every day at 3")]
struct Nightly;

#[derive(Default, Serialize, Deserialize, Job)]
#[job(queue = "b", cron = "0 0 3 * * *", timezone = "Paris, France")]
struct Local;

#[derive(Default, Serialize, Deserialize, Job)]
#[job(queue = "c", timezone = "Europe/Paris")]
struct Unscheduled;

impl Handler for Nightly {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for Local {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for Unscheduled {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
