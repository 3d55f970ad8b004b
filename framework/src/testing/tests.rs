//! The harness's own tests: recording, assertions, drains, virtual time.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::testing::{DrainError, InMemoryBroker, RunOutcome, TestContext};
use crate::{DeadReason, EnqueueOptions, Error, Handler, Job, JobContext, JobError, JobId, Registry, State};

/// Counts attempts, per test: the tests of this module run in parallel.
#[derive(Debug, Default)]
struct Attempts(AtomicU32);

impl Attempts {
    fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// What `Welcome` sent, per test.
#[derive(Debug, Default)]
struct Outbox(Mutex<Vec<String>>);

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "signups")]
struct SignUp {
    email: String,
}

impl Handler for SignUp {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.client()
            .enqueue_in(Duration::from_secs(3600), Welcome { email: self.email })
            .await?;
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "emails")]
struct Welcome {
    email: String,
}

impl Handler for Welcome {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let outbox: &Outbox = ctx.state()?;
        outbox.0.lock().unwrap().push(self.email);
        Ok(())
    }
}

/// Fails its first `failures` attempts.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "payments", retries = 3, backoff = "10s")]
struct Flaky {
    failures: u32,
}

impl Handler for Flaky {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        let attempt = ctx.state::<Attempts>()?.next();
        if attempt <= self.failures {
            return Err(JobError::msg(format!("gateway down (attempt {attempt})")));
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "payments")]
enum Misbehave {
    Panic,
    Reject,
    Hang,
}

impl Handler for Misbehave {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        match self {
            Misbehave::Panic => panic!("card number overflow"),
            Misbehave::Reject => Err(JobError::reject("no such card")),
            Misbehave::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

/// Enqueues itself again, forever.
#[derive(Debug, Serialize, Deserialize, Job)]
struct Ping;

impl Handler for Ping {
    async fn perform(self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.client().enqueue(Ping).await?;
        Ok(())
    }
}

/// Serialises to a shape it cannot be read back from.
#[derive(Debug, Serialize, Deserialize, Job)]
struct Lossy {
    #[serde(skip_serializing)]
    secret: String,
}

impl Handler for Lossy {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn panic_text(run: impl FnOnce()) -> String {
    let panic = catch_unwind(AssertUnwindSafe(run)).expect_err("the assertion fails");
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn enqueues_are_recorded_with_their_queue_delay_and_overrides() {
    let broker = InMemoryBroker::new();
    let client = broker.client();
    let id = client
        .enqueue(SignUp {
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    client
        .enqueue_in(
            Duration::from_secs(60),
            Welcome {
                email: "ada@example.com".into(),
            },
        )
        .await
        .unwrap();
    client
        .enqueue_with(Flaky { failures: 0 }, EnqueueOptions::new().retries(7))
        .await
        .unwrap();
    let ids = client
        .enqueue_many([1, 2].map(|n| Welcome {
            email: format!("{n}@example.com"),
        }))
        .await
        .unwrap();

    assert_eq!(broker.len(), 5);
    assert_eq!(broker.count::<Welcome>(), 3);
    assert_eq!(broker.count_in("emails"), 3);
    assert_eq!(broker.count_in("signups"), 1);
    let signup = broker.assert_enqueued_one::<SignUp>();
    assert_eq!(signup.email, "ada@example.com");
    let welcomes = broker.assert_enqueued::<Welcome>(3);
    assert_eq!(welcomes[2].email, "2@example.com");

    let jobs = broker.enqueued_jobs();
    assert_eq!((jobs[0].id, jobs[0].name.as_str(), jobs[0].attempt), (id, "sign_up", 1));
    assert_eq!(
        jobs[0].body, br#"{"email":"ada@example.com"}"#,
        "the body as on the wire"
    );
    assert_eq!(jobs[1].due_in, Duration::from_secs(60));
    assert!(
        jobs[1].header("warren-eta").is_some(),
        "a delayed job carries its due time"
    );
    assert_eq!(jobs[2].header("warren-retries").as_deref(), Some("7"));
    assert_eq!(jobs[3].id, ids[0]);
}

#[tokio::test]
async fn failed_assertions_list_what_was_enqueued() {
    let broker = InMemoryBroker::new();
    broker
        .client()
        .enqueue(SignUp {
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();

    let text = panic_text(|| {
        broker.assert_enqueued::<Welcome>(1);
    });
    assert!(text.contains("expected 1 `welcome` job(s) enqueued, found 0"), "{text}");
    assert!(text.contains(r#"`sign_up` on `signups` (id "#), "{text}");
    assert!(text.contains(r#"{"email":"ada@example.com"}"#), "{text}");
    let text = panic_text(|| broker.assert_queue_len("emails", 2));
    assert!(text.contains("expected 2 job(s) on queue `emails`, found 0"), "{text}");
    let text = panic_text(|| broker.assert_empty());
    assert!(text.contains("enqueued (1):"), "{text}");
    broker.clear();
    broker.assert_empty();
    let text = panic_text(|| {
        broker.assert_enqueued_one::<SignUp>();
    });
    assert!(text.contains("nothing is enqueued"), "{text}");
}

#[tokio::test]
async fn a_job_that_cannot_round_trip_fails_where_it_is_enqueued() {
    let broker = InMemoryBroker::new();
    let error = broker
        .client()
        .enqueue(Lossy {
            secret: "s3cret".into(),
        })
        .await
        .expect_err("cannot decode what it encodes");
    assert!(matches!(error.error(), Error::Encode { job: "lossy", .. }), "{error}");
    assert!(error.to_string().contains("missing field `secret`"), "{error}");
    assert_eq!(error.into_job().secret, "s3cret", "the job is handed back");
    broker.assert_empty();
}

#[tokio::test]
async fn drain_runs_follow_up_jobs_and_skips_their_delay_on_the_virtual_clock() {
    let broker = InMemoryBroker::new().with_state(State::new().with(Outbox::default()));
    broker
        .client()
        .enqueue(SignUp {
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();

    let started = Instant::now();
    let drained = broker.drain().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "no real waiting");
    assert_eq!(drained.done::<SignUp>(), 1);
    assert_eq!(drained.done::<Welcome>(), 1);
    let welcome = drained.runs_of::<Welcome>()[0];
    assert_eq!(welcome.at, Duration::from_secs(3600), "run when due, an hour in");
    assert_eq!(welcome.queue, "emails");
    assert_eq!(broker.elapsed(), Duration::from_secs(3600));
    let outbox: &Outbox = broker.state().get().unwrap();
    assert_eq!(*outbox.0.lock().unwrap(), ["ada@example.com"]);
    broker.assert_empty();
}

#[tokio::test]
async fn retries_run_after_their_backoff_in_virtual_time_until_the_job_succeeds() {
    let broker = InMemoryBroker::new().with_state(State::new().with(Attempts::default()));
    let id = broker.client().enqueue(Flaky { failures: 2 }).await.unwrap();

    let drained = broker.drain().await.unwrap();
    let runs = drained.runs_of::<Flaky>();
    assert_eq!(runs.iter().map(|run| run.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(runs.iter().all(|run| run.id == id), "one job id across attempts");
    let RunOutcome::Retried { delay, error } = &runs[0].outcome else {
        panic!("the first attempt is retried: {runs:?}");
    };
    assert_eq!(error, "gateway down (attempt 1)");
    // backoff = "10s": 5–10 s, then 10–20 s, with jitter.
    assert!(
        (Duration::from_secs(5)..=Duration::from_secs(10)).contains(delay),
        "{delay:?}"
    );
    let second_wait = runs[2].at - runs[1].at;
    assert!(
        (Duration::from_secs(10)..=Duration::from_secs(20)).contains(&second_wait),
        "{second_wait:?}"
    );
    assert_eq!(runs[2].outcome, RunOutcome::Done);
    assert!(broker.dead_letters().is_empty());
}

#[tokio::test]
async fn a_job_out_of_retries_fails_the_drain_with_its_error_or_is_dead_lettered_on_request() {
    let broker = InMemoryBroker::new().with_state(State::new().with(Attempts::default()));
    let client = broker.client();
    let id = client
        .enqueue_with(Flaky { failures: 100 }, EnqueueOptions::new().retries(1))
        .await
        .unwrap();

    let error = broker.drain().await.expect_err("the job fails for good");
    let DrainError::JobFailed {
        name,
        id: failed,
        attempts,
        reason,
        error: text,
        ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(
        (name.as_str(), *failed, *attempts, *reason),
        ("flaky", id, 2, DeadReason::Failed)
    );
    assert_eq!(text, "gateway down (attempt 2)");
    let message = error.to_string();
    assert!(message.contains(&format!("job `flaky` (id {id})")), "{message}");
    assert!(message.contains("drain_allowing_failures"), "{message}");
    assert_eq!(broker.dead_letters().len(), 1);

    client.enqueue(Misbehave::Panic).await.unwrap();
    client.enqueue(Misbehave::Reject).await.unwrap();
    client
        .enqueue(SignUp {
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    let drained = broker.drain_allowing_failures().await.unwrap();
    let runs = drained.runs_of::<Misbehave>();
    assert_eq!(
        runs.len(),
        5,
        "a panic is retried like an error (3 retries), a rejection is not"
    );
    assert_eq!(drained.done::<SignUp>(), 1, "the drain carried on");
    let dead = broker.dead_letters();
    let reasons: Vec<_> = dead
        .iter()
        .map(|letter| (letter.name.as_str(), letter.reason, letter.attempts))
        .collect();
    // In the order they died: the rejection at once, the others after their retries.
    assert_eq!(
        reasons,
        [
            ("flaky", DeadReason::Failed, 2),
            ("misbehave", DeadReason::Rejected, 1),
            ("misbehave", DeadReason::Panic, 4),
            ("welcome", DeadReason::Failed, 4)
        ]
    );
    assert_eq!(dead[1].error, "no such card");
    assert_eq!(dead[2].error, "panicked: card number overflow");
    assert!(matches!(dead[1].decode::<Misbehave>(), Ok(Misbehave::Reject)));
    let welcome = drained.runs_of::<Welcome>();
    assert_eq!(welcome.len(), 4);
    assert!(
        matches!(&welcome[3].outcome, RunOutcome::Dead { reason: DeadReason::Failed, error } if error.contains("no state of type")),
        "no Outbox was given: {welcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_past_its_timeout_fails_and_paused_time_makes_that_instant() {
    let broker = InMemoryBroker::new();
    broker
        .client()
        .enqueue_with(Misbehave::Hang, EnqueueOptions::new().retries(0))
        .await
        .unwrap();
    broker.drain_allowing_failures().await.unwrap();
    let dead = broker.dead_letters();
    assert_eq!(
        (dead[0].reason, dead[0].error.as_str()),
        (DeadReason::Timeout, "timed out after 10m")
    );
}

#[tokio::test]
async fn jobs_that_enqueue_each_other_forever_stop_at_the_step_limit() {
    let broker = InMemoryBroker::new().with_max_steps(25);
    broker.client().enqueue(Ping).await.unwrap();
    let error = broker.drain().await.expect_err("endless");
    let message = error.to_string();
    assert!(
        message.starts_with("drain stopped after 25 attempts with 1 job(s) still enqueued"),
        "{message}"
    );
    assert!(message.contains("ping, ping"), "{message}");
}

/// A job declared in a contract crate, with its handler bound in the
/// worker's (here, both in this module).
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(contract, queue = "receipts")]
struct SendReceipt {
    order: u64,
}

async fn send_receipt(job: SendReceipt, ctx: &JobContext) -> Result<(), JobError> {
    let outbox: &Outbox = ctx.state()?;
    outbox
        .0
        .lock()
        .unwrap()
        .push(format!("receipt for order {}", job.order));
    Ok(())
}

crate::handler!(SendReceipt => send_receipt);

#[tokio::test]
async fn an_explicit_registry_limits_what_drains() {
    let only_signups = Registry::builder().job::<SignUp>().build().unwrap();
    let broker = InMemoryBroker::new().with_registry(only_signups);
    broker
        .client()
        .enqueue(SignUp {
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    let error = broker.drain().await.expect_err("welcome is not registered");
    let message = error.to_string();
    assert!(message.contains("job `welcome`"), "{message}");
    assert!(message.contains("(unknown_job): no job named `welcome`"), "{message}");
}

#[tokio::test]
async fn a_built_registry_drains_contract_jobs_through_their_bound_handler() {
    let registry = Registry::builder()
        .job::<SignUp>()
        .contract::<SendReceipt>()
        .build()
        .unwrap();
    let bound = registry.get("send_receipt").expect("registered");
    assert!(bound.is_contract());
    assert!(bound.handler().unwrap().ends_with("::send_receipt"), "{bound:?}");

    let outbox = State::new().with(Outbox::default());
    let broker = InMemoryBroker::new().with_state(outbox).with_registry(registry);
    let client = broker.client();
    client.enqueue(SendReceipt { order: 7 }).await.unwrap();
    client
        .enqueue(SignUp {
            email: "ada@example.com".into(),
        })
        .await
        .unwrap();
    let drained = broker.drain_allowing_failures().await.unwrap();
    assert_eq!(drained.runs.len(), 3, "{drained:?}");
    let sent = broker.state().get::<Outbox>().unwrap();
    assert_eq!(*sent.0.lock().unwrap(), ["receipt for order 7"]);
    // Welcome, enqueued by SignUp, is not among the jobs named.
    let dead = broker.dead_letters();
    assert_eq!((dead.len(), dead[0].name.as_str()), (1, "welcome"));
    assert_eq!(dead[0].reason, DeadReason::UnknownJob);
}

#[tokio::test]
async fn the_linked_registry_binds_the_handler_and_enqueue_raw_takes_contract_jobs() {
    let linked = Registry::from_inventory().unwrap();
    let job = linked.get("send_receipt").expect("linked");
    assert!(job.is_contract() && job.has_handler());

    let outbox = State::new().with(Outbox::default());
    let broker = InMemoryBroker::new().with_state(outbox);
    broker
        .client()
        .enqueue_raw("send_receipt", r#"{"order": 8}"#, EnqueueOptions::new())
        .await
        .unwrap();
    assert_eq!(broker.assert_enqueued_one::<SendReceipt>().order, 8);
    broker.drain().await.unwrap();
    let sent = broker.state().get::<Outbox>().unwrap();
    assert_eq!(*sent.0.lock().unwrap(), ["receipt for order 8"]);
}

#[tokio::test]
async fn a_test_context_gives_the_handler_its_id_attempt_state_and_the_broker() {
    let broker = InMemoryBroker::new();
    let id = JobId::new();
    let ctx = broker.context::<SignUp>().job_id(id).attempt(3).build();
    assert_eq!(
        (ctx.job_id(), ctx.attempt(), ctx.job_name(), ctx.queue()),
        (id, 3, "sign_up", "signups")
    );
    SignUp {
        email: "ada@example.com".into(),
    }
    .perform(&ctx)
    .await
    .unwrap();
    let welcome = broker.assert_enqueued_one::<Welcome>();
    assert_eq!(welcome.email, "ada@example.com");
    assert_eq!(broker.enqueued_jobs()[0].due_in, Duration::from_secs(3600));

    let error = Welcome { email: "x".into() }
        .perform(&TestContext::new().build())
        .await
        .expect_err("no outbox");
    let text = error.to_string();
    assert!(
        text.contains("no state of type `warren::testing::tests::Outbox`"),
        "{text}"
    );

    let outbox = State::new().with(Outbox::default());
    let ctx = TestContext::new().job::<Welcome>().with_state(outbox).build();
    Welcome {
        email: "ada@example.com".into(),
    }
    .perform(&ctx)
    .await
    .unwrap();
    let sent = ctx.shared_state().get::<Outbox>().unwrap();
    assert_eq!(sent.0.lock().unwrap().len(), 1);
}
