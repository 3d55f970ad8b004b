use warren::prelude::*;

#[derive(Serialize, Deserialize, Job)]
struct Resize<T> {
    image: T,
}

#[derive(Serialize, Deserialize, Job)]
struct Borrowed<'a> {
    path: &'a str,
}

fn main() {}
