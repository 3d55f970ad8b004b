//! Any bytes as the body of a JSON job and of text jobs, decoded as a worker
//! does before it runs the handler, on a thread with the 2 MiB stack of a
//! worker's threads. A body that does not decode is an error (the worker
//! dead-letters it as `undecodable`), never a panic or an overflow.
//!
//! `cargo fuzz run body` (fuzz/README.md).

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use warren::prelude::*;

/// A JSON job with a field of each shape serde reads differently.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "fuzz")]
struct Record {
    id: u64,
    name: String,
    score: f64,
    tags: Vec<String>,
    parent: Option<Box<Record>>,
    attributes: BTreeMap<String, i32>,
    kind: Kind,
}

/// An externally tagged enum: unit, newtype, tuple and struct variants.
#[derive(Debug, Serialize, Deserialize)]
enum Kind {
    Plain,
    Sized(u32),
    Pair(i8, bool),
    Named { width: u16, height: u16 },
}

/// A text job: the body is the string.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "fuzz", format = "text")]
struct Line(String);

/// A text job read as one of fixed words.
#[derive(Debug, Serialize, Deserialize, Job)]
#[job(queue = "fuzz", format = "text")]
enum Command {
    Start,
    Stop,
}

macro_rules! handled {
    ($($job:ty),*) => {$(
        impl Handler for $job {
            async fn perform(self, _: &JobContext) -> Result<(), JobError> {
                Ok(())
            }
        }
    )*};
}
handled!(Record, Line, Command);

/// The stack of a spawned thread, as worker threads have.
const WORKER_STACK: usize = 2 * 1024 * 1024;

fuzz_target!(|body: &[u8]| {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn_scoped(scope, || {
                let _ = warren::__private::decode_body::<Record>(body);
                let _ = warren::__private::decode_body::<Line>(body);
                let _ = warren::__private::decode_body::<Command>(body);
            })
            .expect("spawning the decoding thread")
            .join()
            // libfuzzer-sys aborts on any panic: a failed join never returns.
            .expect("a panic aborts the fuzzer before the join");
    });
});
