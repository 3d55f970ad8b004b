//! What the commands print for their reader: one writer for stdout that
//! stops quietly when the reader has gone.
//!
//! A reader that stops early (`dead list | head -1`, `jobs | head`) had
//! what it wanted: the write fails with a broken pipe, which is neither a
//! panic (as `println!` makes it) nor an error to report. A command that
//! was changing something (`dead retry`) finishes its work either way.

use std::fmt::Display;
use std::io::{self, ErrorKind, Write};

/// Writes `line` and a newline to stdout, flushed: a listing piped into a
/// slow reader shows each line as it is known. A reader that has gone is
/// `Ok`; any other failure (a full disk) is the caller's to report.
pub(crate) fn line(line: impl Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    ignore_closed(writeln!(out, "{line}").and_then(|()| out.flush()))
}

/// `result`, with a write to a reader that has gone counted as done.
pub(crate) fn ignore_closed(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if is_closed(&error) => Ok(()),
        result => result,
    }
}

/// Whether `error` says the reader of the output has gone.
pub(crate) fn is_closed(error: &io::Error) -> bool {
    error.kind() == ErrorKind::BrokenPipe
}
