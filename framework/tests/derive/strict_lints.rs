//! The expansion passes the lints this workspace holds its own code to, so a
//! crate with the same settings can derive `Job`.

#![forbid(unsafe_code)]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    unused_qualifications
)]
#![deny(clippy::all)]

use warren::prelude::*;

/// Compresses a video.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "videos", timeout = "30s", retries = 3, format = "json", queue_default)]
pub struct CompressVideo {
    /// Where the video is.
    pub path: String,
}

impl Handler for CompressVideo {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// Sends a text message; declared as a contract, its handler bound below.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(contract, queue = "texts")]
pub struct SendText {
    /// To whom.
    pub to: String,
}

async fn send_text(_job: SendText, _ctx: &JobContext) -> Result<(), JobError> {
    Ok(())
}

warren::handler!(SendText => send_text);

#[test]
fn names_follow_the_types() {
    assert_eq!(CompressVideo::NAME, "compress_video");
    assert_eq!(SendText::NAME, "send_text");
}
