//! What `#[derive(Job)]` expands to when the input has mistakes: the errors,
//! and a `Job` impl with default values so that uses of the type compile and
//! the errors that show are the ones about the attribute.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::valid;

/// The errors, plus a placeholder `impl warren::Job` where one can be written.
///
/// The type is not registered: a worker built despite the errors must not
/// run a job under a name or queue the user did not ask for. (It cannot be
/// built anyway; this only keeps the error list short.) A type meant as a
/// contract gets its `impl warren::Contract` too, so that
/// its `warren::handler!` does not add an error of its own.
pub(crate) fn expand(input: &DeriveInput, contract: bool, errors: syn::Error) -> TokenStream {
    let errors = errors.into_compile_error();
    if !valid::can_implement(input) {
        return errors;
    }
    let ident = &input.ident;
    let where_clause = &input.generics.where_clause;
    let name = valid::default_name(ident);
    let contract = contract.then(|| {
        quote! {
            #[automatically_derived]
            impl ::warren::Contract for #ident #where_clause {}
        }
    });
    quote! {
        #errors
        #[automatically_derived]
        impl ::warren::Job for #ident #where_clause {
            const NAME: &'static str = #name;
            const QUEUE: &'static str = ::warren::DEFAULT_QUEUE;
            const OPTIONS: ::warren::JobOptions = ::warren::JobOptions::new();
        }
        #contract
    }
}
