use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
struct ResizeImage {
    path: String,
}

fn main() {}
