//! Any bytes as the payload of a content-header frame, the frame that
//! carries a delivery's properties and headers: parsed with the frame parser
//! lapin runs (the patched `amq-protocol-types` underneath), on a thread
//! with the stack of lapin's I/O thread; what parses goes through warren's
//! reading of a delivery, and the retry and dead letter it would publish
//! fitted to its 32 KiB publishing frames and to RabbitMQ's 128 KiB.
//!
//! `cargo fuzz run content_header` (fuzz/README.md).

#![no_main]

use amq_protocol::frame::{AMQPFrame, parse_frame};
use libfuzzer_sys::fuzz_target;

/// The stack of lapin's `lapin-io-loop` thread: Rust's default for spawned
/// threads. Parsing that overflows it aborts a worker.
const IO_THREAD_STACK: usize = 2 * 1024 * 1024;

/// Frame type of a content header (AMQP 0-9-1, 4.2.3).
const FRAME_HEADER: u8 = 2;
/// The octet every AMQP frame ends with.
const FRAME_END: u8 = 0xCE;

fuzz_target!(|payload: &[u8]| {
    let frame = content_header_frame(payload);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("lapin-io-loop".to_owned())
            .stack_size(IO_THREAD_STACK)
            .spawn_scoped(scope, || {
                if let Ok((_, AMQPFrame::Header(_, header))) = parse_frame(&frame[..]) {
                    for frame_max in [32 * 1024, 128 * 1024] {
                        warren::__private::inspect_delivery(&header.properties, frame_max);
                    }
                }
            })
            .expect("spawning the parsing thread")
            .join()
            // libfuzzer-sys aborts on any panic: a failed join never returns.
            .expect("a panic aborts the fuzzer before the join");
    });
});

/// `payload` framed as lapin receives it: type, channel 1, size, payload, end.
fn content_header_frame(payload: &[u8]) -> Vec<u8> {
    let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.push(FRAME_HEADER);
    frame.extend_from_slice(&1u16.to_be_bytes());
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(FRAME_END);
    frame
}
