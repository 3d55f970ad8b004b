use warren::prelude::*;

// A default priority on a queue that takes none: RabbitMQ would ignore it.
#[derive(Serialize, Deserialize, Job)]
#[job(priority = 5)]
struct PageOncall;

// Above what the queue takes: RabbitMQ would cap it.
#[derive(Serialize, Deserialize, Job)]
#[job(queue = "urgent", priority = 11, max_priority = 10)]
struct Escalate;

impl Handler for PageOncall {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

impl Handler for Escalate {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
