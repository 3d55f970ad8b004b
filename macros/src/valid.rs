//! Checks what the `#[job(...)]` attributes say and the shape of the type,
//! and turns them into the `Job` the expansion is written from.

use heck::ToSnakeCase;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Ident, WhereClause};

use crate::attr::Attrs;
use crate::diagnostics::Diagnostics;

/// The longest job name: it travels in the message's `type` property, an AMQP
/// short string.
const MAX_NAME_LEN: usize = 255;

/// The longest queue name. RabbitMQ allows 255 bytes; the rest is room for
/// the suffixes warren appends (such as `.dead`) and for a queue prefix.
const MAX_QUEUE_LEN: usize = 200;

/// A job type that passed every check: what the expansion needs.
pub(crate) struct Job<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) where_clause: Option<&'a WhereClause>,
    pub(crate) name: String,
    /// `None`: `warren::DEFAULT_QUEUE`.
    pub(crate) queue: Option<String>,
    pub(crate) timeout_millis: Option<u64>,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff_millis: Option<u64>,
    pub(crate) format: Option<BodyFormat>,
    pub(crate) queue_default: bool,
    pub(crate) queue_type: Option<QueueType>,
    /// Registered without a handler: `warren::handler!` binds one elsewhere.
    pub(crate) contract: bool,
    pub(crate) priority: Option<u8>,
    pub(crate) max_priority: Option<u8>,
    pub(crate) unique_for_millis: Option<u64>,
    pub(crate) cron: Option<String>,
    pub(crate) timezone: Option<String>,
}

/// `warren::QueueType`, as named in `#[job(queue_type = "...")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueType {
    Classic,
    Quorum,
}

/// `warren::BodyFormat`, as named in `#[job(format = "...")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Text,
}

/// Checks `input` and its parsed attributes, recording every problem in
/// `diagnostics`. What comes back is only meaningful if none was recorded.
pub(crate) fn validate<'a>(input: &'a DeriveInput, attrs: Attrs, diagnostics: &mut Diagnostics) -> Job<'a> {
    check_shape(input, diagnostics);

    let name = match attrs.name {
        Some(lit) => {
            let name = lit.value();
            if let Err(problem) = check_name(&name) {
                diagnostics.push(syn::Error::new_spanned(lit, problem));
            }
            name
        }
        None => {
            let name = default_name(&input.ident);
            if let Err(problem) = check_name(&name) {
                let message = match first_invalid_char(&name) {
                    Some(c) => format!("the job name made from the type name, \"{name}\", cannot contain {c:?}"),
                    None => format!("the type name does not make a valid job name: {problem}"),
                };
                let message = format!("{message}; set a name with #[job(name = \"...\")]");
                diagnostics.push(syn::Error::new_spanned(&input.ident, message));
            }
            name
        }
    };

    let queue = attrs.queue.map(|lit| {
        let queue = lit.value();
        if let Err(problem) = check_queue(&queue) {
            diagnostics.push(syn::Error::new_spanned(lit, problem));
        }
        queue
    });

    let timeout_millis = attrs
        .timeout
        .and_then(|lit| match parse_duration("timeout", &lit.value()) {
            Ok(millis) => Some(millis),
            Err(problem) => {
                diagnostics.push(syn::Error::new_spanned(lit, problem));
                None
            }
        });

    let retries = attrs.retries.and_then(|lit| {
        // syn reads `-1` as one negative literal when it ends the attribute
        // (elsewhere it is an expression, which `attr` rejects).
        let message = if lit.base10_digits().starts_with('-') {
            "`retries` cannot be negative".to_owned()
        } else if !matches!(lit.suffix(), "" | "u32") {
            "`retries` is a u32; write the number without a suffix, like #[job(retries = 5)]".to_owned()
        } else {
            match lit.base10_parse::<u32>() {
                Ok(retries) => return Some(retries),
                Err(_) => format!("`retries` can be at most {}", u32::MAX),
            }
        };
        diagnostics.push(syn::Error::new_spanned(lit, message));
        None
    });

    let backoff_millis = attrs
        .backoff
        .and_then(|lit| match parse_duration("backoff", &lit.value()) {
            Ok(millis) => Some(millis),
            Err(problem) => {
                diagnostics.push(syn::Error::new_spanned(lit, problem));
                None
            }
        });

    let format = attrs.format.and_then(|lit| match lit.value().as_str() {
        "json" => Some(BodyFormat::Json),
        "text" => Some(BodyFormat::Text),
        other => {
            let message = format!("unknown format \"{other}\": expected \"json\" or \"text\"");
            diagnostics.push(syn::Error::new_spanned(lit, message));
            None
        }
    });

    let queue_type = attrs.queue_type.and_then(|lit| match parse_queue_type(&lit.value()) {
        Ok(queue_type) => Some(queue_type),
        Err(problem) => {
            diagnostics.push(syn::Error::new_spanned(lit, problem));
            None
        }
    });

    let priority = attrs.priority.and_then(|lit| match parse_priority("priority", &lit) {
        Ok(priority) => Some((priority, lit)),
        Err(problem) => {
            diagnostics.push(syn::Error::new_spanned(lit, problem));
            None
        }
    });
    let max_priority = attrs.max_priority.and_then(|lit| {
        let checked = parse_priority("max_priority", &lit).and_then(|max| {
            check_max_priority(max, queue_type.unwrap_or(QueueType::Classic))?;
            Ok(max)
        });
        match checked {
            Ok(max) => Some(max),
            Err(problem) => {
                diagnostics.push(syn::Error::new_spanned(lit, problem));
                None
            }
        }
    });
    let priority = priority.and_then(|(priority, lit)| match check_priority(priority, max_priority) {
        Ok(()) => Some(priority),
        Err(problem) => {
            diagnostics.push(syn::Error::new_spanned(lit, problem));
            None
        }
    });

    let unique_for_millis =
        attrs.unique_for.and_then(
            |lit| match parse_duration("unique_for", &lit.value()).and_then(check_unique_for) {
                Ok(millis) => Some(millis),
                Err(problem) => {
                    diagnostics.push(syn::Error::new_spanned(lit, problem));
                    None
                }
            },
        );

    let cron_given = attrs.cron.is_some();
    let cron = attrs.cron.and_then(|lit| match check_cron(&lit.value()) {
        Ok(()) => Some(lit.value()),
        Err(problem) => {
            diagnostics.push(syn::Error::new_spanned(lit, problem));
            None
        }
    });
    let timezone = attrs.timezone.and_then(|lit| {
        let problem = if !cron_given {
            Some(
                "`timezone` is the time zone of a `cron` schedule: add #[job(cron = \"...\")] or leave it out"
                    .to_owned(),
            )
        } else {
            check_timezone(&lit.value()).err()
        };
        match problem {
            None => Some(lit.value()),
            Some(problem) => {
                diagnostics.push(syn::Error::new_spanned(lit, problem));
                None
            }
        }
    });

    Job {
        ident: &input.ident,
        where_clause: input.generics.where_clause.as_ref(),
        name,
        queue,
        timeout_millis,
        retries,
        backoff_millis,
        format,
        queue_default: attrs.queue_default,
        queue_type,
        contract: attrs.contract,
        priority,
        max_priority,
        unique_for_millis,
        cron,
        timezone,
    }
}

/// Whether `expression` is a cron expression the scheduler reads: five
/// fields (minute first) or six (second first), as croner parses them.
pub(crate) fn check_cron(expression: &str) -> Result<(), String> {
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build();
    parser.parse(expression).map(|_| ()).map_err(|error| {
        format!(
            "invalid cron expression \"{expression}\": {error}; write it like \"0 */5 * * * *\" \
             (second minute hour day-of-month month day-of-week) or with five fields from the minute"
        )
    })
}

/// Whether `timezone` looks like an IANA time zone name (`Europe/Paris`,
/// `UTC`). Whether the tz database knows it is checked when a worker starts.
pub(crate) fn check_timezone(timezone: &str) -> Result<(), String> {
    let well_formed = !timezone.is_empty()
        && timezone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
        && !timezone.starts_with('/')
        && !timezone.ends_with('/');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "invalid time zone \"{timezone}\": write an IANA name like \"Europe/Paris\" or \"UTC\""
        ))
    }
}

/// The longest `unique_for`: RabbitMQ's message TTL is a 32-bit count of
/// milliseconds, and a lock longer than its 24 days is a lock for ever in
/// practice.
const MAX_UNIQUE_FOR_MILLIS: u64 = u32::MAX as u64;

/// Whether a lock may last `millis`.
fn check_unique_for(millis: u64) -> Result<u64, String> {
    if millis < 1000 {
        return Err("`unique_for` must be at least 1s".into());
    }
    if millis > MAX_UNIQUE_FOR_MILLIS {
        return Err("`unique_for` can be at most 49days (RabbitMQ's longest message TTL)".into());
    }
    Ok(millis)
}

/// Reads a priority key's value: a `u8`, as AMQP's `priority` property is.
fn parse_priority(key: &str, lit: &syn::LitInt) -> Result<u8, String> {
    if lit.base10_digits().starts_with('-') {
        return Err(format!("`{key}` cannot be negative"));
    }
    if !matches!(lit.suffix(), "" | "u8") {
        return Err(format!(
            "`{key}` is a u8; write the number without a suffix, like #[job({key} = 5)]"
        ));
    }
    lit.base10_parse::<u8>()
        .map_err(|_| format!("`{key}` can be at most 255 (RabbitMQ's highest priority)"))
}

/// Whether a queue of `queue_type` can take priorities up to `max`.
pub(crate) fn check_max_priority(max: u8, queue_type: QueueType) -> Result<(), String> {
    if max == 0 {
        return Err("`max_priority` must be at least 1; leave it out for a queue without priorities".into());
    }
    if queue_type == QueueType::Quorum {
        // Quorum queues have no `x-max-priority`: before RabbitMQ 3.12 they
        // ignore priorities, from 3.12 they know two (normal and high).
        return Err(
            "a quorum queue cannot take `max_priority`: RabbitMQ supports x-max-priority \
                    only on classic queues; use queue_type = \"classic\""
                .into(),
        );
    }
    Ok(())
}

/// Whether a job's default `priority` fits the queue's `max_priority`.
pub(crate) fn check_priority(priority: u8, max: Option<u8>) -> Result<(), String> {
    match max {
        None => Err(format!(
            "`priority` needs a queue that takes priorities: add #[job(max_priority = N)] with N >= {priority} \
             (to every job of the queue)"
        )),
        Some(max) if priority > max => Err(format!(
            "`priority` {priority} is above the queue's `max_priority` {max}; RabbitMQ would treat it as {max}"
        )),
        Some(_) => Ok(()),
    }
}

/// Reads `queue_type = "..."`: the queue types warren declares job queues as.
pub(crate) fn parse_queue_type(text: &str) -> Result<QueueType, String> {
    match text {
        "classic" => Ok(QueueType::Classic),
        "quorum" => Ok(QueueType::Quorum),
        // RabbitMQ's third type, named here so the error says why not.
        "stream" => Err(
            "a job queue cannot be a stream: a stream keeps every message for every \
                         reader instead of handing each job to one worker; expected \"classic\" or \"quorum\""
                .into(),
        ),
        other => Err(format!(
            "unknown queue type \"{other}\": expected \"classic\" or \"quorum\""
        )),
    }
}

/// Whether the fallback may implement `Job` for this type: not for a union
/// or a generic type, where the impl would only add errors of its own.
pub(crate) fn can_implement(input: &DeriveInput) -> bool {
    !matches!(input.data, Data::Union(_)) && input.generics.params.is_empty()
}

fn check_shape(input: &DeriveInput, diagnostics: &mut Diagnostics) {
    if let Data::Union(union) = &input.data {
        let message = "a job must be a struct or an enum, not a union: a union cannot be serialized";
        diagnostics.push(syn::Error::new_spanned(union.union_token, message));
    }
    if !input.generics.params.is_empty() {
        // A job is found by its name when a message arrives, so the name has
        // to stand for one concrete type: `Resize<Png>` and `Resize<Jpeg>`
        // cannot both be `resize`.
        let message = "a job type cannot have generic parameters or lifetimes: \
                       it is registered once, under one name, as one concrete type";
        diagnostics.push(syn::Error::new_spanned(&input.generics, message));
    }
}

/// The name of a job that does not set one: the type's name in snake_case,
/// `ResizeImage` → `resize_image`.
pub(crate) fn default_name(ident: &Ident) -> String {
    ident.unraw().to_string().to_snake_case()
}

/// Whether `name` may be a job's wire name.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a job name cannot be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a job name can be at most {MAX_NAME_LEN} bytes long; this one is {}",
            name.len()
        ));
    }
    check_chars("a job name", name)
}

/// Whether `queue` may be a job's queue.
pub(crate) fn check_queue(queue: &str) -> Result<(), String> {
    if queue.is_empty() {
        return Err("a queue name cannot be empty; leave `queue` out to use the default queue".into());
    }
    if queue.len() > MAX_QUEUE_LEN {
        return Err(format!(
            "a queue name can be at most {MAX_QUEUE_LEN} bytes long, leaving room for suffixes \
             such as `.dead`; this one is {}",
            queue.len()
        ));
    }
    if queue.starts_with("amq.") {
        return Err("queue names starting with `amq.` are reserved by RabbitMQ".into());
    }
    check_chars("a queue name", queue)
}

fn check_chars(what: &str, name: &str) -> Result<(), String> {
    match first_invalid_char(name) {
        Some(c) => Err(format!(
            "{what} cannot contain {c:?}; use ASCII letters, digits, `_`, `-`, `.` and `:`"
        )),
        None => Ok(()),
    }
}

/// Names are kept to characters that need no quoting anywhere they show up:
/// AMQP properties, the management UI, shell command lines, metric labels.
fn first_invalid_char(name: &str) -> Option<char> {
    name.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
}

/// Parses a duration key (`timeout = "..."`, `backoff = "..."`) into whole
/// milliseconds, rounding down.
pub(crate) fn parse_duration(key: &str, text: &str) -> Result<u64, String> {
    let duration = humantime::parse_duration(text).map_err(|error| {
        // humantime's unit errors already show what to write; the others
        // ("expected number at 0") need an example.
        let example = match error {
            humantime::DurationError::UnknownUnit { .. } => "",
            _ => "; write it like \"30s\", \"5m\" or \"1h 30m\"",
        };
        format!("invalid duration \"{text}\": {error}{example}")
    })?;
    match u64::try_from(duration.as_millis()) {
        Ok(0) => Err(format!("{key} must be at least 1ms")),
        Ok(millis) => Ok(millis),
        Err(_) => Err(format!("{key} \"{text}\" is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    #[test]
    fn default_name_is_the_type_name_in_snake_case() {
        let name = |ident: &str| default_name(&Ident::new(ident, Span::call_site()));
        assert_eq!(name("ResizeImage"), "resize_image");
        assert_eq!(name("Task"), "task");
        assert_eq!(name("HTTPRequest"), "http_request");
        assert_eq!(name("SendEmailV2"), "send_email_v2");
        assert_eq!(default_name(&Ident::new_raw("Match", Span::call_site())), "match");
    }

    #[test]
    fn job_names() {
        for good in ["resize_image", "billing.invoice:v2", "a-b", "X", &"n".repeat(255)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_name(""), Err("a job name cannot be empty".into()));
        assert!(check_name(&"n".repeat(256)).unwrap_err().contains("at most 255 bytes"));
        let bad_char = check_name("resize image").unwrap_err();
        assert!(bad_char.contains("cannot contain ' '"), "{bad_char}");
        assert!(check_name("größe").unwrap_err().contains("'ö'"));
        assert!(check_name("a/b").is_err());
    }

    #[test]
    fn queue_names() {
        for good in ["default", "images", "billing.high-priority", "a:b_c", &"q".repeat(200)] {
            assert_eq!(check_queue(good), Ok(()), "{good}");
        }
        assert!(check_queue("").unwrap_err().contains("cannot be empty"));
        assert!(check_queue(&"q".repeat(201)).unwrap_err().contains("at most 200 bytes"));
        assert!(check_queue("amq.images").unwrap_err().contains("reserved by RabbitMQ"));
        // Only the `amq.` prefix is reserved, not the letters.
        assert_eq!(check_queue("amqp-images"), Ok(()));
        assert!(check_queue("images!").unwrap_err().contains("'!'"));
    }

    #[test]
    fn queue_types() {
        assert_eq!(parse_queue_type("classic"), Ok(QueueType::Classic));
        assert_eq!(parse_queue_type("quorum"), Ok(QueueType::Quorum));
        assert_eq!(
            parse_queue_type("Quorum"),
            Err("unknown queue type \"Quorum\": expected \"classic\" or \"quorum\"".into())
        );
        assert!(parse_queue_type("stream").unwrap_err().contains("cannot be a stream"));
        assert!(parse_queue_type("").unwrap_err().starts_with("unknown queue type \"\""));
    }

    #[test]
    fn cron_expressions_and_time_zones() {
        assert_eq!(check_cron("0 */5 * * * *"), Ok(()));
        assert_eq!(check_cron("*/5 * * * *"), Ok(()));
        assert_eq!(check_cron("* * * * * *"), Ok(()));
        assert!(
            check_cron("every minute")
                .unwrap_err()
                .starts_with("invalid cron expression \"every minute\"")
        );
        assert!(check_cron("61 * * * *").is_err());
        assert_eq!(check_timezone("Europe/Paris"), Ok(()));
        assert_eq!(check_timezone("UTC"), Ok(()));
        assert_eq!(check_timezone("America/Argentina/Buenos_Aires"), Ok(()));
        assert!(check_timezone("Paris, France").is_err());
        assert!(check_timezone("").is_err());
    }

    #[test]
    fn unique_for() {
        assert_eq!(
            parse_duration("unique_for", "10m").and_then(check_unique_for),
            Ok(600_000)
        );
        assert!(check_unique_for(999).unwrap_err().contains("at least 1s"));
        assert!(
            check_unique_for(u64::from(u32::MAX) + 1)
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn priorities() {
        assert_eq!(check_priority(3, Some(10)), Ok(()));
        assert_eq!(check_priority(10, Some(10)), Ok(()));
        assert!(
            check_priority(11, Some(10))
                .unwrap_err()
                .contains("above the queue's `max_priority` 10")
        );
        assert!(
            check_priority(1, None)
                .unwrap_err()
                .contains("add #[job(max_priority = N)]")
        );
        assert_eq!(check_max_priority(10, QueueType::Classic), Ok(()));
        assert!(
            check_max_priority(0, QueueType::Classic)
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            check_max_priority(5, QueueType::Quorum)
                .unwrap_err()
                .contains("quorum queue")
        );
        let lit = |text: &str| syn::LitInt::new(text, proc_macro2::Span::call_site());
        assert_eq!(parse_priority("priority", &lit("7")), Ok(7));
        assert!(
            parse_priority("priority", &lit("256"))
                .unwrap_err()
                .contains("at most 255")
        );
        assert!(
            parse_priority("priority", &lit("5u32"))
                .unwrap_err()
                .contains("is a u8")
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_duration("timeout", "30s"), Ok(30_000));
        assert_eq!(parse_duration("timeout", "1h 30m"), Ok(5_400_000));
        assert_eq!(parse_duration("timeout", "1500us"), Ok(1));
        assert_eq!(
            parse_duration("timeout", "0s"),
            Err("timeout must be at least 1ms".into())
        );
        assert_eq!(
            parse_duration("timeout", "999us"),
            Err("timeout must be at least 1ms".into())
        );
        let unparsable = parse_duration("timeout", "thirty seconds").unwrap_err();
        assert!(
            unparsable.starts_with("invalid duration \"thirty seconds\": "),
            "{unparsable}"
        );
        assert!(parse_duration("timeout", "30").is_err());
        assert_eq!(
            parse_duration("timeout", "20000000000000000s"),
            Err("timeout \"20000000000000000s\" is too long".into())
        );
    }
}
