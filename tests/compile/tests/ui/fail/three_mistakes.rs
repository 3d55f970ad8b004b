//! Every mistake is reported at once, and nothing else: the type still
//! implements `Job`, so code that uses it adds no errors of its own.

use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "amq.images", retries = "5")]
#[job(timout = "30s")]
struct ResizeImage {
    path: String,
}

impl Handler for ResizeImage {
    async fn perform(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

fn wire_name<J: Job>() -> &'static str {
    J::NAME
}

fn main() {
    let _ = (wire_name::<ResizeImage>(), ResizeImage::QUEUE);
}
