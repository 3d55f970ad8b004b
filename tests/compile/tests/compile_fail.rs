//! How `#[derive(Job)]` reports each mistake (`ui/fail`, checked against the
//! `.stderr` beside each case). Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p warren-compile-tests -- --ignored`,
//! then read it.
//!
//! Ignored in a plain `cargo test`: trybuild runs a cargo build of its own,
//! which needs no broker, so `scripts/test` runs it beside the broker tests
//! instead of after them (`-- --ignored`).

#[test]
#[ignore = "a cargo build of its own: scripts/test runs it beside the broker tests"]
fn each_mistake_is_reported_where_it_was_made() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail/*.rs");
}
