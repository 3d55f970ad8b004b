//! `warren::schedule!(name = "...", cron = "...", timezone = "...", job = <expr>)`:
//! reads the keys, checks the literals (the expression's type is for the
//! compiler to check: it must be a `Job`), and submits a
//! `ScheduleDeclaration` to the registry's inventory.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use crate::attr::edit_distance;
use crate::diagnostics::Diagnostics;
use crate::valid::{check_cron, check_timezone};

/// The keys, in the order errors list them.
const KEYS: [&str; 4] = ["name", "cron", "timezone", "job"];

/// The longest schedule name: `warren.schedule.<name>.paused` must leave
/// room for a queue prefix within AMQP's 255 bytes. The framework checks
/// the same bound for schedules built at run time.
const MAX_NAME_LEN: usize = 200;

/// One `key = value` of the macro's input.
struct Entry {
    key: Ident,
    value: Expr,
}

impl Parse for Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.parse()?;
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(Entry { key, value })
    }
}

/// The macro's input, parsed.
struct Input(Punctuated<Entry, Token![,]>);

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Punctuated::parse_terminated(input).map(Input)
    }
}

/// A check of a literal's value: why not, if it is wrong.
type Check = fn(&str) -> Result<(), String>;

/// A schedule whose literals passed the checks.
struct Schedule {
    name: LitStr,
    cron: LitStr,
    timezone: Option<LitStr>,
    job: Expr,
}

/// Expands `schedule!(...)`, or reports every mistake in it.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<Input>(input).and_then(validate) {
        Ok(schedule) => submit(&schedule),
        Err(error) => error.into_compile_error(),
    }
}

/// Checks the keys and literals, all at once.
fn validate(input: Input) -> syn::Result<Schedule> {
    let mut diagnostics = Diagnostics::new();
    let (mut name, mut cron, mut timezone, mut job) = (None, None, None, None);
    let mut seen = Vec::new();
    for Entry { key, value } in input.0 {
        let key_name = key.to_string();
        if !KEYS.contains(&key_name.as_str()) {
            diagnostics.push(syn::Error::new_spanned(&key, unknown_key_message(&key_name)));
            continue;
        }
        if seen.contains(&key_name) {
            diagnostics.push(syn::Error::new_spanned(&key, format!("`{key_name}` is given twice")));
            continue;
        }
        seen.push(key_name.clone());
        if key_name == "job" {
            job = Some(value);
            continue;
        }
        let Some(lit) = string(&value) else {
            diagnostics.push(syn::Error::new_spanned(
                &value,
                format!(
                    "`{key_name}` takes a string literal, like {key_name} = \"{}\"",
                    example(&key_name)
                ),
            ));
            continue;
        };
        match key_name.as_str() {
            "name" => name = Some(lit),
            "cron" => cron = Some(lit),
            _ => timezone = Some(lit),
        }
    }
    // A key given with a wrong value was reported above, not as missing.
    for missing in ["name", "cron", "job"] {
        if !seen.iter().any(|key| key == missing) {
            diagnostics.push(syn::Error::new(
                Span::call_site(),
                format!(
                    "warren::schedule! needs `{missing}`: write it like warren::schedule!(name = \"nightly_report\", \
                     cron = \"0 0 3 * * *\", timezone = \"Europe/Paris\", job = Report {{ .. }})"
                ),
            ));
        }
    }
    let checks: [(&Option<LitStr>, Check); 3] = [(&name, check_name), (&cron, check_cron), (&timezone, check_timezone)];
    for (lit, check) in checks {
        if let Some(lit) = lit
            && let Err(problem) = check(&lit.value())
        {
            diagnostics.push(syn::Error::new_spanned(lit, problem));
        }
    }
    diagnostics.finish()?;
    match (name, cron, job) {
        (Some(name), Some(cron), Some(job)) => Ok(Schedule {
            name,
            cron,
            timezone,
            job,
        }),
        // Reported above: `finish` returned the error.
        _ => Err(syn::Error::new(Span::call_site(), "warren::schedule! is incomplete")),
    }
}

fn unknown_key_message(key: &str) -> String {
    let suggestion = KEYS
        .into_iter()
        .map(|known| (edit_distance(key, known), known))
        .filter(|&(distance, _)| distance <= 2)
        .min()
        .map_or_else(|| ".".to_owned(), |(_, known)| format!(": did you mean `{known}`?"));
    let known = KEYS.map(|known| format!("`{known}`")).join(", ");
    format!("unknown key `{key}` in warren::schedule!(...){suggestion} The keys are {known}")
}

/// The string literal `value` is, if it is one.
fn string(value: &Expr) -> Option<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Some(lit.clone()),
        Expr::Group(group) => string(&group.expr),
        _ => None,
    }
}

/// An example value of `key`.
fn example(key: &str) -> &'static str {
    match key {
        "cron" => "0 0 3 * * *",
        "timezone" => "Europe/Paris",
        _ => "nightly_report",
    }
}

/// Whether `name` may name a schedule: it goes into queue names
/// (`warren.schedule.<name>`) and job ids, as a job's name does.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a schedule name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a schedule name can be at most {MAX_NAME_LEN} bytes long; this one is {}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        Some(c) => Err(format!(
            "a schedule name cannot contain {c:?}; use ASCII letters, digits, `_`, `-`, `.` and `:`"
        )),
        None => Ok(()),
    }
}

/// The submission: a `ScheduleDeclaration` whose function builds the
/// schedule, evaluating and encoding the job once, when the registry
/// collects it.
fn submit(schedule: &Schedule) -> TokenStream {
    let Schedule {
        name,
        cron,
        timezone,
        job,
    } = schedule;
    let timezone = timezone.as_ref().map(|timezone| quote!(.timezone(#timezone)));
    quote! {
        ::warren::__private::inventory::submit! {
            ::warren::__private::ScheduleDeclaration::new(|| {
                ::warren::Schedule::new(#name, #cron, #job) #timezone
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(input: TokenStream) -> Vec<String> {
        match syn::parse2::<Input>(input).and_then(validate) {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    #[test]
    fn a_complete_schedule_passes() {
        let input = quote!(
            name = "sales_eu",
            cron = "0 0 7 * * *",
            timezone = "Europe/Paris",
            job = Report { region: "eu".into() },
        );
        assert!(errors(input).is_empty());
        assert!(errors(quote!(name = "sales", cron = "0 7 * * *", job = Report::default())).is_empty());
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let found = errors(quote!(
            name = "sales eu",
            cron = "0 0 25 * * *",
            timezone = "Europe Paris",
            jobs = Report,
        ));
        assert_eq!(found.len(), 5, "{found:#?}");
        assert_eq!(
            found[0],
            "unknown key `jobs` in warren::schedule!(...): did you mean `job`? The keys are `name`, `cron`, \
             `timezone`, `job`"
        );
        assert!(found[1].contains("needs `job`"), "{found:#?}");
        assert!(found[2].contains("a schedule name cannot contain ' '"), "{found:#?}");
        assert!(
            found[3].contains("invalid cron expression \"0 0 25 * * *\""),
            "{found:#?}"
        );
        assert!(found[4].contains("invalid time zone \"Europe Paris\""), "{found:#?}");
    }

    #[test]
    fn keys_take_literals_once() {
        let found = errors(quote!(name = NAME, name = "a", cron = "* * * * * *", job = Report));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("`name` takes a string literal"), "{found:#?}");
        assert!(found[1].contains("`name` is given twice"), "{found:#?}");
        assert!(errors(quote!(name = "", cron = "* * * * * *", job = Report))[0].contains("cannot be empty"));
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(errors(quote!(name = #long, cron = "* * * * * *", job = Report))[0].contains("at most 200 bytes"));
    }
}
