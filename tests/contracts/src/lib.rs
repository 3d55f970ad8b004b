//! Job types shared by a producer and a worker, kept apart from their
//! handlers as a team keeps them in a contract crate: the integration tests
//! enqueue them without any handler, and the `contract-worker` binary of
//! `warren-tests` binds one to `Thumbnail` with `warren::handler!`.

use warren::prelude::*;

/// Makes a thumbnail; `contract-worker` runs it.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(contract, queue = "thumbnails", retries = 0)]
pub struct Thumbnail {
    /// The image.
    pub path: String,
    /// The thumbnail's width in pixels.
    pub width: u32,
}

/// Archives a file; no binary binds a handler to it, so a worker that
/// serves its queue refuses to start.
#[derive(Debug, Clone, Serialize, Deserialize, Job)]
#[job(contract, queue = "archive")]
pub struct Archive {
    /// The file.
    pub path: String,
}
