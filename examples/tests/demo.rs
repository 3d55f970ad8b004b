//! The README's first command, `scripts/demo`, runs and shows what it
//! promises. It runs the binaries cargo built for this test
//! (`WARREN_DEMO_BIN_DIR`) instead of building its own: a `cargo build`
//! from inside `cargo test` resolves other features and compiles much of
//! the dependency graph a second time.

use std::path::{Path, PathBuf};
use std::process::Command;

use warren_tests::TestBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_queue_demo_shows_round_robin_then_fair_dispatch() {
    let broker = TestBroker::new().await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bins = Path::new(env!("CARGO_BIN_EXE_worker"))
        .parent()
        .expect("the binaries' directory")
        .to_owned();
    assert!(bins.join("new_task").exists(), "cargo built new_task beside worker");
    let prefix = broker.prefix().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(root.join("scripts/demo"))
            .env("WARREN_DEMO_BIN_DIR", bins)
            .env("WARREN_QUEUE_PREFIX", prefix)
            .output()
    })
    .await
    .expect("join")
    .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("each worker got five tasks, every other one: round-robin."),
        "{stdout}"
    );
    assert!(stdout.contains("ran all nine short tasks while worker"), "{stdout}");
    assert_eq!(stdout.matches(" [x] Sent ").count(), 20, "{stdout}");
}
