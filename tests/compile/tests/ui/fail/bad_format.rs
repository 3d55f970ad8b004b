use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(format = "xml")]
struct ResizeImage {
    path: String,
}

#[derive(Serialize, Deserialize, Job)]
#[job(format = text)]
struct Caption(String);

fn main() {}
