use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(retries = -1)]
struct ResizeImage {
    path: String,
}

// Not last in the attribute, `-1` reaches the macro as an expression.
#[derive(Serialize, Deserialize, Job)]
#[job(retries = -1, queue = "images")]
struct CropImage {
    path: String,
}

fn main() {}
