use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
#[job(contract = true)]
struct ResizeImage {
    path: String,
}

#[derive(Serialize, Deserialize, Job)]
#[job(queue = "images", contract(yes))]
struct SendEmail {
    to: String,
}

fn main() {}
