use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(contarct, queue = "images")]
struct ResizeImage {
    path: String,
}

fn main() {}
