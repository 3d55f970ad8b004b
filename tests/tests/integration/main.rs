//! warren's integration tests against a real RabbitMQ, linked as one binary
//! with a module per topic. Each test works in its own queues (a
//! `TestBroker` prefix) or its own vhost (`TestVhost`), so tests of different
//! topics run side by side; the one test that restarts a broker (a node of
//! its own) is `#[ignore]`d here and run by `scripts/test`, which starts
//! that node.

#[path = "../../src/jobs.rs"]
#[allow(dead_code, unreachable_pub, reason = "shared with the test-worker binary")]
mod jobs;
#[path = "../../src/state_jobs.rs"]
#[allow(dead_code, unreachable_pub, reason = "shared with the state-worker binary")]
mod state_jobs;

mod bad_messages;
mod broker_restart;
mod broker_state;
mod cli;
mod cli_errors;
mod client;
mod cluster;
mod coalesced_acks;
mod config_errors;
mod connection_recovery;
mod contracts;
mod dashboard;
mod dead_cli;
mod dead_letters;
mod dead_poison;
mod delays;
mod dispatch;
mod embedded;
mod hostile;
mod interop;
mod memory;
mod observe;
mod outcome_unknown;
mod poison_faults;
mod priorities;
mod quorum;
mod retries;
mod rolling_deploy;
mod schedule;
mod shutdown;
mod state;
mod supervision;
mod tls;
mod traces;
mod unique;
mod worker_kill;
