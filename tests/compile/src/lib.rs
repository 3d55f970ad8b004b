//! How `#[derive(Job)]` reports each mistake: the compile-fail cases in
//! `tests/ui/fail`, each checked against the `.stderr` beside it.
