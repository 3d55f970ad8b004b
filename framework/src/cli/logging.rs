//! warren's log output: a `tracing` subscriber writing to stderr through a
//! non-blocking writer, and panics reported as log events.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use super::LogFormat;

/// Lines formatted but not yet written, at most: past it, logging waits for
/// the writer (it never drops a line).
const QUEUED_LINES: usize = 8_192;

/// Bytes the writer thread gathers before a write to stderr; it writes
/// sooner whenever the queue runs empty.
const WRITE_BUFFER: usize = 64 * 1024;

/// The writer of [`init_logging`]'s subscriber, once installed: the exit's
/// last line goes through it, after the lines still queued.
static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Keeps [`init_logging`]'s writer thread: dropping it writes out the lines
/// still queued. Hold it until `main` returns.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer: hold it until main returns (`let _logging = …`)"]
pub struct LogGuard {
    _writer: WorkerGuard,
}

/// Installs warren's log output as the program's global `tracing`
/// subscriber: lines on stderr in `format`, at the levels `RUST_LOG` sets,
/// by default `info` and nothing of lapin's (the AMQP library logs every
/// closed connection and channel as an error with a debug dump, while
/// warren reports each failure it acts on itself; `RUST_LOG=info,lapin=debug`
/// shows them). Call it once, early in `main`, unless the program sets up
/// logging itself: nothing else in warren installs a subscriber. A
/// subscriber installed before stays, and this does nothing.
///
/// Lines are formatted on the thread that logs and written by a thread of
/// their own, so a slow terminal or pipe does not slow jobs down (when the
/// writer falls behind, logging waits rather than drop lines). Keep the
/// returned guard until `main` returns: dropping it writes out the queued
/// lines.
///
/// With this subscriber installed, a panic (a handler's, say) is logged as
/// one ERROR event, with the job's fields when it happens in a job, rather
/// than printed as Rust's raw message: `--log-format json` stays one JSON
/// object per line. Its backtrace, when `RUST_BACKTRACE` asks for one, is a
/// field of that event.
pub fn init_logging(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    // The writer thread takes every line queued, then flushes: through a
    // buffer, a burst of lines is a few writes to stderr rather than one per
    // line, so the writer keeps up with the job threads and a short queue
    // does (the default queue of 128,000 lines is allocated whole, 3.5 MiB
    // of an idle worker's memory).
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("warren-log")
        .finish(std::io::BufWriter::with_capacity(WRITE_BUFFER, std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(std::io::stderr().is_terminal());
    // A subscriber installed before (the program's own, or a test's) wins.
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if installed.is_ok() {
        let _ = WRITER.set(writer);
        std::panic::set_hook(Box::new(log_panic));
    }
    LogGuard { _writer: guard }
}

/// The panic hook: one ERROR event, in the span that panicked.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let location = info
        .location()
        .map(|location| format!("{}:{}", location.file(), location.line()))
        .unwrap_or_default();
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        tracing::error!(panic = message, location, backtrace = %backtrace, "panicked");
    } else {
        tracing::error!(panic = message, location, "panicked");
    }
}

/// Writes `line` to stderr, after the log lines queued before it.
pub(crate) fn write_line(line: &str) {
    let text = format!("{line}\n");
    // A closed stderr leaves nowhere to say it; the exit code still does.
    match WRITER.get() {
        Some(writer) => {
            let _ = writer.make_writer().write_all(text.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}
