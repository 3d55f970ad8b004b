//! Compile tests of `#[derive(Job)]`: what it accepts (`ui/pass`, which also
//! run) and how it reports each mistake (`ui/fail`, checked against the
//! `.stderr` beside each case). Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p warren-jobs --test compiletest`, then read it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
