//! How jobs become message bodies and back, per [`BodyFormat`].

use serde_json::Value;

use crate::{BodyFormat, Error, Job};

/// Encodes a job as the body of its message.
pub(crate) fn encode<J: Job>(job: &J) -> Result<Vec<u8>, Error> {
    let encode_error = |reason: String| Error::Encode { job: J::NAME, reason };
    match J::OPTIONS.format {
        BodyFormat::Json => serde_json::to_vec(job).map_err(|e| encode_error(e.to_string())),
        BodyFormat::Text => match serde_json::to_value(job) {
            Ok(Value::String(text)) => Ok(text.into_bytes()),
            Ok(other) => Err(encode_error(format!(
                "format = \"text\" needs a job that serialises to a string, but it serialises to {}",
                kind_of(&other)
            ))),
            Err(e) => Err(encode_error(e.to_string())),
        },
    }
}

/// A message body that does not decode as the job type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    reason: String,
}

impl DecodeError {
    pub(crate) fn new(reason: String) -> Self {
        DecodeError { reason }
    }
}

/// Decodes a message body into a job; the error says why it could not.
pub(crate) fn decode<J: Job>(body: &[u8]) -> Result<J, String> {
    match J::OPTIONS.format {
        BodyFormat::Json => serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                // Valid JSON of another shape: most often a job enqueued
                // before its fields changed.
                format!(
                    "the body does not match job `{}`: {e} (if its fields changed, messages enqueued before need the new fields to be optional or #[serde(default)])",
                    J::NAME
                )
            } else {
                format!("invalid JSON for job `{}`: {e}", J::NAME)
            }
        }),
        BodyFormat::Text => {
            let text =
                std::str::from_utf8(body).map_err(|e| format!("body of text job `{}` is not UTF-8: {e}", J::NAME))?;
            serde_json::from_value(Value::String(text.to_owned()))
                .map_err(|e| format!("invalid text for job `{}`: {e}", J::NAME))
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::JobOptions;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Greeting(String);
    impl Job for Greeting {
        const NAME: &'static str = "greeting";
        const QUEUE: &'static str = "q";
        const OPTIONS: JobOptions = JobOptions::new().with_format(BodyFormat::Text);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Resize {
        width: u32,
    }
    impl Job for Resize {
        const NAME: &'static str = "resize";
        const QUEUE: &'static str = "q";
        const OPTIONS: JobOptions = JobOptions::new();
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct NotText {
        width: u32,
    }
    impl Job for NotText {
        const NAME: &'static str = "not_text";
        const QUEUE: &'static str = "q";
        const OPTIONS: JobOptions = JobOptions::new().with_format(BodyFormat::Text);
    }

    #[test]
    fn text_jobs_are_the_plain_string_on_the_wire() {
        let body = encode(&Greeting("Hello World!".into())).unwrap();
        assert_eq!(body, b"Hello World!");
        assert_eq!(decode::<Greeting>(b"a.b..").unwrap(), Greeting("a.b..".into()));
    }

    #[test]
    fn json_jobs_round_trip() {
        let body = encode(&Resize { width: 640 }).unwrap();
        assert_eq!(body, br#"{"width":640}"#);
        assert_eq!(decode::<Resize>(&body).unwrap(), Resize { width: 640 });
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let error = decode::<Resize>(b"not json").unwrap_err();
        assert!(error.starts_with("invalid JSON for job `resize`"), "{error}");
        // Valid JSON of another shape: a job enqueued before its fields changed.
        let error = decode::<Resize>(b"{\"height\": 480}").unwrap_err();
        assert!(
            error.starts_with("the body does not match job `resize`: missing field `width`"),
            "{error}"
        );
        assert!(error.contains("#[serde(default)]"), "{error}");
        let error = decode::<Greeting>(&[0xff, 0xfe]).unwrap_err();
        assert!(error.contains("not UTF-8"), "{error}");
    }

    #[test]
    fn a_text_job_that_is_not_a_string_cannot_be_encoded() {
        let error = encode(&NotText { width: 1 }).unwrap_err();
        assert!(error.to_string().contains("serialises to an object"), "{error}");
    }
}
