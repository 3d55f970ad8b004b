//! The RabbitMQ work-queue tutorial ("tutorial two"), the warren way.
//!
//! [`Task`] is the tutorial's message: plain text, one second of work per
//! `.` in it. It declares itself the default job of `task_queue`, so the
//! tutorial's own producer (plain text, no `type` property) feeds a warren
//! worker, and its plain-text body feeds the tutorial's worker.
//!
//! ```text
//! cargo run -p warren-examples --bin worker -- work --prefetch 1
//! cargo run -p warren-examples --bin new_task -- "A task that takes three seconds..."
//! ```
//!
//! `scripts/demo` runs two workers and shows round-robin and fair dispatch.
//!
//! [`signup`] shows the jobs of an application (a follow-up job, shared
//! state, retries) and how their handlers are tested without a broker.

pub mod signup;

use std::time::Duration;

use warren::prelude::*;

/// A task from the tutorial: its text, and a second of work per `.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Job)]
#[job(queue = "task_queue", format = "text", queue_default, timeout = "1h")]
pub struct Task(pub String);

impl Task {
    /// How long the task "works": one second per `.` in its text.
    pub fn work_time(&self) -> Duration {
        let dots = self.0.chars().filter(|c| *c == '.').count();
        Duration::from_secs(dots as u64)
    }
}

impl Handler for Task {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let worker = ctx.worker_id();
        println!("[{worker}] [x] Received {}", self.0);
        tokio::time::sleep(self.work_time()).await;
        println!("[{worker}] [x] Done");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use warren::testing::InMemoryBroker;

    #[test]
    fn a_task_works_one_second_per_dot() {
        assert_eq!(Task("Hello World!".into()).work_time(), Duration::ZERO);
        assert_eq!(Task("Third message...".into()).work_time(), Duration::from_secs(3));
    }

    // Paused time: the handler's three seconds of "work" pass at once.
    #[tokio::test(start_paused = true)]
    async fn a_task_sent_as_plain_text_runs_to_completion() {
        let broker = InMemoryBroker::new();
        broker.client().enqueue(Task("Third message...".into())).await.unwrap();
        assert_eq!(
            broker.enqueued_jobs()[0].body,
            b"Third message...",
            "plain text on the wire"
        );

        let drained = broker.drain().await.unwrap();
        assert_eq!(drained.done::<Task>(), 1);
    }
}
