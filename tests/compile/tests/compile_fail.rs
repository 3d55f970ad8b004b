//! How `#[derive(Job)]` reports each mistake (`ui/fail`, checked against the
//! `.stderr` beside each case). Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p warren-compile-tests`, then read it.

#[test]
fn each_mistake_is_reported_where_it_was_made() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail/*.rs");
}
