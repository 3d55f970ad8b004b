//! Sign-ups, as an application uses warren: a job that enqueues a follow-up
//! ([`SignUp`]), a job that uses shared state ([`SendWelcomeEmail`] and its
//! [`Mailer`]) and fails and is retried when the mail server is down, and a
//! producer ([`sign_up`]) a web handler would call, a periodic job
//! ([`DailyDigest`]), and a job with arguments run on schedules of their
//! own ([`TeamReport`], with `warren::schedule!`).
//!
//! The tests at the bottom run them with `warren::testing`, without RabbitMQ,
//! the way `framework/docs/testing.md` recommends:
//!
//! ```text
//! cargo test -p warren-examples
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use warren::EnqueueError;
use warren::prelude::*;

/// Sends email. The worker's [`setup`] provides one as `Arc<dyn Mailer>`;
/// tests provide a fake.
pub trait Mailer: Send + Sync {
    /// Sends one message.
    fn send(&self, to: &str, subject: &str) -> Result<(), MailError>;
}

/// A mail server that did not take a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError(pub String);

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mail server: {}", self.0)
    }
}

impl std::error::Error for MailError {}

/// The worker's mailer: prints what it would send.
#[derive(Debug)]
pub struct LogMailer {
    /// The sender address.
    pub from: String,
}

impl Mailer for LogMailer {
    fn send(&self, to: &str, subject: &str) -> Result<(), MailError> {
        println!("mail from {} to {to}: {subject}", self.from);
        Ok(())
    }
}

/// Builds the worker's shared state once at start: `warren::main!(setup = ...)`
/// in `src/bin/worker.rs`. The sender comes from `MAIL_FROM`.
pub async fn setup() -> Result<State, Infallible> {
    let from = std::env::var("MAIL_FROM").unwrap_or_else(|_| "noreply@example.com".to_owned());
    let mailer: Arc<dyn Mailer> = Arc::new(LogMailer { from });
    Ok(State::new().with(mailer))
}

/// A user signed up: welcome them (a follow-up job, so a slow mail server
/// never holds up the sign-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Job)]
#[job(queue = "signups")]
pub struct SignUp {
    /// The user's id.
    pub user: u64,
    /// Their email address.
    pub email: String,
}

impl Handler for SignUp {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        // The account work would go here; then the follow-up.
        ctx.client()
            .enqueue(SendWelcomeEmail {
                user: self.user,
                to: self.email,
            })
            .await?;
        Ok(())
    }
}

/// Sends the welcome email through the worker's [`Mailer`]; a mail server
/// outage is retried (five times, from 30 s), a bad address is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Job)]
#[job(queue = "emails", retries = 5, backoff = "30s")]
pub struct SendWelcomeEmail {
    /// The user's id.
    pub user: u64,
    /// Where to send it.
    pub to: String,
}

impl Handler for SendWelcomeEmail {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        if !self.to.contains('@') {
            return Err(JobError::reject(format!("not an email address: {:?}", self.to)));
        }
        let mailer: &Arc<dyn Mailer> = ctx.state()?;
        mailer.send(&self.to, "Welcome!")?;
        Ok(())
    }
}

/// Counts yesterday's sign-ups every morning at 8:00, Paris time: a
/// periodic job. One worker process of the fleet enqueues it each day
/// (`worker schedule list` shows when it ran and runs next); at most one
/// digest per day is enqueued (`unique_for`), even if someone also
/// enqueues one by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Job)]
#[job(
    queue = "signups",
    cron = "0 0 8 * * *",
    timezone = "Europe/Paris",
    unique_for = "1h"
)]
pub struct DailyDigest;

impl Handler for DailyDigest {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let mailer: &Arc<dyn Mailer> = ctx.state()?;
        mailer.send("team@example.com", "Yesterday's sign-ups")?;
        Ok(())
    }
}

/// Mails a team its weekly sign-up report. One job type, several
/// schedules: each `warren::schedule!` below enqueues it with the team it
/// names, under a name of its own (`worker schedule list` shows both;
/// `worker schedule pause team_report_sales` pauses the sales one only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Job)]
#[job(queue = "signups")]
pub struct TeamReport {
    /// The team, which gets `<team>@example.com`.
    pub team: String,
}

impl Handler for TeamReport {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let mailer: &Arc<dyn Mailer> = ctx.state()?;
        mailer.send(&format!("{}@example.com", self.team), "This week's sign-ups")?;
        Ok(())
    }
}

// Mondays at 9:00, each team in its own time zone.
warren::schedule!(
    name = "team_report_sales",
    cron = "0 0 9 * * MON",
    timezone = "Europe/Paris",
    job = TeamReport {
        team: "sales".to_owned()
    },
);
warren::schedule!(
    name = "team_report_support",
    cron = "0 0 9 * * MON",
    timezone = "America/New_York",
    job = TeamReport {
        team: "support".to_owned()
    },
);

/// What a web handler calls when a user signs up: enqueues [`SignUp`].
pub async fn sign_up(client: &Client, user: u64, email: &str) -> Result<JobId, EnqueueError<SignUp>> {
    client
        .enqueue(SignUp {
            user,
            email: email.to_owned(),
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use warren::testing::{InMemoryBroker, RunOutcome};

    use super::*;

    /// A mailer that records what it sends, failing the first `outage` sends.
    #[derive(Debug, Default)]
    struct FakeMailer {
        outage: Mutex<u32>,
        sent: Mutex<Vec<String>>,
    }

    impl FakeMailer {
        fn down_for(sends: u32) -> Arc<Self> {
            Arc::new(FakeMailer {
                outage: Mutex::new(sends),
                ..FakeMailer::default()
            })
        }

        fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Mailer for FakeMailer {
        fn send(&self, to: &str, subject: &str) -> Result<(), MailError> {
            let mut outage = self.outage.lock().unwrap();
            if *outage > 0 {
                *outage -= 1;
                return Err(MailError("421 try again later".into()));
            }
            self.sent.lock().unwrap().push(format!("{to}: {subject}"));
            Ok(())
        }
    }

    /// A broker whose handlers get `mailer`.
    fn broker_with(mailer: &Arc<FakeMailer>) -> InMemoryBroker {
        let mailer: Arc<dyn Mailer> = mailer.clone();
        InMemoryBroker::new().with_state(State::new().with(mailer))
    }

    #[tokio::test]
    async fn signing_up_enqueues_a_welcome_email() {
        let broker = InMemoryBroker::new();
        let ctx = broker.context::<SignUp>().build();

        SignUp {
            user: 7,
            email: "ada@example.com".into(),
        }
        .perform(&ctx)
        .await
        .unwrap();

        let email = broker.assert_enqueued_one::<SendWelcomeEmail>();
        assert_eq!(
            email,
            SendWelcomeEmail {
                user: 7,
                to: "ada@example.com".into()
            }
        );
        broker.assert_queue_len("emails", 1);
    }

    #[tokio::test]
    async fn the_welcome_email_goes_through_the_workers_mailer() {
        let mailer = FakeMailer::down_for(0);
        let broker = broker_with(&mailer);
        let ctx = broker.context::<SendWelcomeEmail>().build();

        SendWelcomeEmail {
            user: 7,
            to: "ada@example.com".into(),
        }
        .perform(&ctx)
        .await
        .unwrap();

        assert_eq!(mailer.sent(), ["ada@example.com: Welcome!"]);
    }

    #[tokio::test]
    async fn the_producer_enqueues_a_sign_up() {
        let broker = InMemoryBroker::new();
        sign_up(&broker.client(), 7, "ada@example.com").await.unwrap();
        assert_eq!(broker.assert_enqueued_one::<SignUp>().email, "ada@example.com");
    }

    #[tokio::test]
    async fn a_mail_server_outage_is_retried_until_the_email_goes_out() {
        let mailer = FakeMailer::down_for(2);
        let broker = broker_with(&mailer);
        broker
            .client()
            .enqueue(SendWelcomeEmail {
                user: 7,
                to: "ada@example.com".into(),
            })
            .await
            .unwrap();

        let drained = broker.drain().await.unwrap();

        let runs = drained.runs_of::<SendWelcomeEmail>();
        assert_eq!(runs.len(), 3, "two failures, then the email: {runs:#?}");
        assert!(matches!(
            &runs[0].outcome,
            RunOutcome::Retried { error, .. } if error == "mail server: 421 try again later"
        ));
        assert_eq!(runs[2].outcome, RunOutcome::Done);
        assert_eq!(mailer.sent(), ["ada@example.com: Welcome!"]);
        // backoff = "30s": the retries waited at least 15 s + 30 s, on the virtual clock.
        assert!(broker.elapsed() >= Duration::from_secs(45), "{:?}", broker.elapsed());
    }

    #[tokio::test]
    async fn a_whole_sign_up_runs_from_the_producer_to_the_mailer() {
        let mailer = FakeMailer::down_for(0);
        let broker = broker_with(&mailer);

        sign_up(&broker.client(), 7, "ada@example.com").await.unwrap();
        broker.drain().await.unwrap();

        assert_eq!(mailer.sent(), ["ada@example.com: Welcome!"]);
        broker.assert_empty();
    }

    #[tokio::test]
    async fn a_bad_address_is_dead_lettered_at_once() {
        let mailer = FakeMailer::down_for(0);
        let broker = broker_with(&mailer);
        sign_up(&broker.client(), 8, "not-an-address").await.unwrap();

        let error = broker.drain().await.unwrap_err();
        assert!(error.to_string().contains("not an email address"), "{error}");

        let dead = broker.dead_letters();
        assert_eq!((dead[0].reason, dead[0].attempts), (warren::DeadReason::Rejected, 1));
        assert_eq!(dead[0].decode::<SendWelcomeEmail>().unwrap().user, 8);
        assert!(mailer.sent().is_empty());
    }

    #[tokio::test]
    async fn each_team_report_schedule_mails_its_own_team() {
        let registry = warren::Registry::from_inventory().unwrap();
        let reports: Vec<_> = registry
            .schedules()
            .iter()
            .filter(|schedule| schedule.job() == TeamReport::NAME)
            .collect();
        assert_eq!(reports.len(), 2);
        for (schedule, team) in reports.into_iter().zip(["sales", "support"]) {
            let job: TeamReport = serde_json::from_slice(schedule.body().unwrap()).unwrap();
            let mailer = FakeMailer::down_for(0);
            let broker = broker_with(&mailer);
            job.perform(&broker.context::<TeamReport>().build()).await.unwrap();
            assert_eq!(mailer.sent(), [format!("{team}@example.com: This week's sign-ups")]);
        }
    }
}
