//! Writes the `impl warren::Job` of a checked job type and submits its
//! registration to the worker binary's inventory.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::ext::IdentExt;

use crate::attr::Attrs;
use crate::diagnostics::Diagnostics;
use crate::fallback;
use crate::valid::{self, BodyFormat, Job, QueueType};

/// The whole expansion of `#[derive(Job)]` on `input`.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut diagnostics = Diagnostics::new();
    let attrs = Attrs::parse(&input.attrs, &mut diagnostics);
    let contract = attrs.contract;
    let job = valid::validate(input, attrs, &mut diagnostics);
    match diagnostics.finish() {
        Ok(()) => impl_job(&job),
        // Implement `Job` (and `Contract`) anyway, so that the user sees
        // what is wrong with the attribute and not also every use of the
        // type failing for want of an impl.
        Err(errors) => fallback::expand(input, contract, errors),
    }
}

fn impl_job(job: &Job<'_>) -> TokenStream {
    let ident = job.ident;
    let where_clause = job.where_clause;
    let name = &job.name;
    let queue = match &job.queue {
        Some(queue) => quote!(#queue),
        None => quote!(::warren::DEFAULT_QUEUE),
    };

    // Only the options the attribute sets, so the framework's defaults (and
    // any change to them) apply to the rest.
    let timeout = job.timeout_millis.map(|millis| {
        let millis = Literal::u64_unsuffixed(millis);
        quote!(.with_timeout(::core::time::Duration::from_millis(#millis)))
    });
    let retries = job.retries.map(|retries| {
        let retries = Literal::u32_unsuffixed(retries);
        quote!(.with_retries(#retries))
    });
    let backoff = job.backoff_millis.map(|millis| {
        let millis = Literal::u64_unsuffixed(millis);
        quote!(.with_backoff(::core::time::Duration::from_millis(#millis)))
    });
    let format = job.format.map(|format| match format {
        BodyFormat::Json => quote!(.with_format(::warren::BodyFormat::Json)),
        BodyFormat::Text => quote!(.with_format(::warren::BodyFormat::Text)),
    });
    let queue_default = job.queue_default.then(|| quote!(.with_queue_default()));
    let priority = job.priority.map(|priority| {
        let priority = Literal::u8_unsuffixed(priority);
        quote!(.with_priority(#priority))
    });
    let unique_for = job.unique_for_millis.map(|millis| {
        let millis = Literal::u64_unsuffixed(millis);
        quote!(.with_unique_for(::core::time::Duration::from_millis(#millis)))
    });
    let cron = job.cron.as_ref().map(|cron| quote!(.with_cron(#cron)));
    let timezone = job.timezone.as_ref().map(|timezone| quote!(.with_timezone(#timezone)));
    let max_priority = job.max_priority.map(|max| {
        let max = Literal::u8_unsuffixed(max);
        quote!(.with_max_priority(#max))
    });
    let queue_type = job.queue_type.map(|queue_type| match queue_type {
        QueueType::Classic => quote!(.with_queue_type(::warren::QueueType::Classic)),
        QueueType::Quorum => quote!(.with_queue_type(::warren::QueueType::Quorum)),
    });

    // `Registration::of` requires `Handler`; spanned at the type's name, a
    // missing `impl Handler` is reported there rather than at the derive.
    // A contract registers without one, for `warren::handler!` to bind.
    let (registration, contract) = if job.contract {
        let registration = quote!(::warren::__private::Registration::contract::<#ident>);
        let contract = quote! {
            #[automatically_derived]
            impl ::warren::Contract for #ident #where_clause {}
        };
        (registration, Some(contract))
    } else {
        let registration = quote_spanned!(ident.span()=> ::warren::__private::Registration::of::<#ident>);
        (registration, None)
    };
    // A periodic job is enqueued with its `Default` value: without one, the
    // error points at the type.
    let periodic = if job.cron.is_some() {
        Some(quote_spanned!(ident.span()=> .with_default::<#ident>()))
    } else {
        None
    };
    let type_name = ident.unraw().to_string();

    quote! {
        #[automatically_derived]
        impl ::warren::Job for #ident #where_clause {
            const NAME: &'static str = #name;
            const QUEUE: &'static str = #queue;
            const OPTIONS: ::warren::JobOptions = ::warren::JobOptions::new()
                #timeout
                #retries
                #backoff
                #format
                #queue_default
                #queue_type
                #priority
                #max_priority
                #unique_for
                #cron
                #timezone;
        }
        #contract
        ::warren::__private::inventory::submit! {
            #registration(::core::concat!(::core::module_path!(), "::", #type_name))#periodic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn expand(input: DeriveInput) -> String {
        derive(&input).to_string()
    }

    #[test]
    fn defaults_leave_every_option_to_the_framework() {
        let expanded = expand(parse_quote!(
            struct ResizeImage {
                path: String,
            }
        ));
        let expected = quote! {
            #[automatically_derived]
            impl ::warren::Job for ResizeImage {
                const NAME: &'static str = "resize_image";
                const QUEUE: &'static str = ::warren::DEFAULT_QUEUE;
                const OPTIONS: ::warren::JobOptions = ::warren::JobOptions::new();
            }
            ::warren::__private::inventory::submit! {
                ::warren::__private::Registration::of::<ResizeImage>(::core::concat!(::core::module_path!(), "::", "ResizeImage"))
            }
        };
        assert_eq!(expanded, expected.to_string());
    }

    #[test]
    fn every_key_becomes_a_constant_or_an_option() {
        let expanded = expand(parse_quote!(
            #[job(name = "resize", queue = "images", retries = 5, backoff = "2s", timeout = "30s")]
            #[job(format = "text", queue_default, priority = 2, max_priority = 5, unique_for = "1h")]
            enum ResizeImage {
                Small,
            }
        ));
        let options = quote! {
            const OPTIONS: ::warren::JobOptions = ::warren::JobOptions::new()
                .with_timeout(::core::time::Duration::from_millis(30000))
                .with_retries(5)
                .with_backoff(::core::time::Duration::from_millis(2000))
                .with_format(::warren::BodyFormat::Text)
                .with_queue_default()
                .with_priority(2)
                .with_max_priority(5)
                .with_unique_for(::core::time::Duration::from_millis(3600000));
        };
        assert!(expanded.contains(&options.to_string()), "{expanded}");
        assert!(
            expanded.contains(r#"const NAME : & 'static str = "resize" ;"#),
            "{expanded}"
        );
        assert!(
            expanded.contains(r#"const QUEUE : & 'static str = "images" ;"#),
            "{expanded}"
        );
    }

    #[test]
    fn a_contract_registers_without_a_handler_and_implements_contract() {
        let expanded = expand(parse_quote!(
            #[job(contract, queue = "images")]
            struct ResizeImage {
                path: String,
            }
        ));
        let contract = quote! {
            #[automatically_derived]
            impl ::warren::Contract for ResizeImage {}
            ::warren::__private::inventory::submit! {
                ::warren::__private::Registration::contract::<ResizeImage>(::core::concat!(::core::module_path!(), "::", "ResizeImage"))
            }
        };
        assert!(expanded.contains(&contract.to_string()), "{expanded}");
        assert!(!expanded.contains("Registration :: of"), "{expanded}");
    }

    #[test]
    fn a_contract_with_mistakes_still_implements_contract() {
        let expanded = expand(parse_quote!(
            #[job(contract, retries = "5")]
            struct ResizeImage;
        ));
        assert_eq!(expanded.matches("compile_error").count(), 1, "{expanded}");
        assert!(
            expanded.contains("impl :: warren :: Contract for ResizeImage"),
            "{expanded}"
        );
        assert!(!expanded.contains("inventory"), "{expanded}");
    }

    #[test]
    fn mistakes_expand_to_errors_and_a_fallback_impl_without_registration() {
        let expanded = expand(parse_quote!(
            #[job(retries = "5", queue = "amq.jobs")]
            struct ResizeImage;
        ));
        assert_eq!(expanded.matches("compile_error").count(), 2, "{expanded}");
        assert!(expanded.contains("impl :: warren :: Job for ResizeImage"), "{expanded}");
        assert!(!expanded.contains("inventory"), "{expanded}");
        assert!(!expanded.contains("Contract"), "{expanded}");
    }

    #[test]
    fn unions_and_generic_types_get_no_impl_at_all() {
        for input in [
            parse_quote!(
                union Bits {
                    int: u32,
                }
            ),
            parse_quote!(
                struct Resize<T> {
                    image: T,
                }
            ),
        ] {
            let expanded = expand(input);
            assert!(expanded.contains("compile_error"), "{expanded}");
            assert!(!expanded.contains("impl"), "{expanded}");
        }
    }
}
