//! What `#[derive(Job)]` accepts, one module per case, each checked by
//! running it. (How it reports mistakes: the compile-fail cases of
//! `tests/compile`.) All cases share one binary and so one registry: their
//! job names and queues are distinct.

mod all_keys;
mod contract;
mod defaults;
mod enum_job;
mod in_fn_body;
mod in_module;
pub mod strict_lints;
mod text_newtype;
