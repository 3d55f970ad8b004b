//! The `#[derive(Job)]` and `schedule!` macros of [warren](https://docs.rs/warren).
//!
//! Use it through the `warren` crate, as `warren::Job` or from
//! `warren::prelude`: the generated code refers to `::warren`, so this crate
//! on its own is of no use.
//!
//! The macro works in three steps, one module each: `attr` reads the
//! `#[job(...)]` attributes, `valid` checks what they say, and `expand`
//! writes the `impl warren::Job` and the registration. Every mistake is
//! reported at the token that caused it, all of them at once; `fallback`
//! keeps them from cascading into "`Job` is not implemented" errors.

mod attr;
mod diagnostics;
mod expand;
mod fallback;
mod schedule;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `warren::Job` for a struct or enum and registers it with the
/// worker binary. Documented on the re-export, `warren::Job`.
#[proc_macro_derive(Job, attributes(job))]
pub fn derive_job(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

/// Registers a schedule that enqueues a job value with given arguments.
/// Documented on the re-export, `warren::schedule!`.
#[proc_macro]
pub fn schedule(input: TokenStream) -> TokenStream {
    schedule::expand(input.into()).into()
}
