use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(queue_default = true)]
struct ResizeImage {
    path: String,
}

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "images", queue_default(true))]
struct CropImage {
    path: String,
}

fn main() {}
