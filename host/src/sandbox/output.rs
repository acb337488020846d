//! A guest's stdout and stderr: each complete line goes to the server log,
//! tagged with the procedure and request id, and the last few KiB are kept so
//! a trap can report what the guest printed (a Rust panic message).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::config::MAX_GUEST_OUTPUT_BYTES;
use crate::logtext::loggable;

/// How much of the latest output a trap report carries.
const TAIL_BYTES: usize = 4096;

/// One output stream of one call. Cloning shares the stream.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Inner>>);

struct Inner {
    procedure: Arc<str>,
    request_id: u64,
    stream: &'static str,
    /// The line being written, not yet logged.
    line: Vec<u8>,
    /// Bytes logged so far; past [`MAX_GUEST_OUTPUT_BYTES`] output is dropped.
    logged: usize,
    dropped: usize,
    tail: Vec<u8>,
}

impl GuestOutput {
    pub fn new(procedure: Arc<str>, request_id: u64, stream: &'static str) -> Self {
        GuestOutput(Arc::new(Mutex::new(Inner {
            procedure,
            request_id,
            stream,
            line: Vec::new(),
            logged: 0,
            dropped: 0,
            tail: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs a last unterminated line and how much was dropped.
    pub fn flush_log(&self) {
        let mut inner = self.lock();
        if !inner.line.is_empty() {
            let line = std::mem::take(&mut inner.line);
            inner.log_line(&line);
        }
        if inner.dropped > 0 {
            tracing::warn!(
                target: "guest",
                procedure = &*inner.procedure,
                request_id = inner.request_id,
                stream = inner.stream,
                "{} bytes of output dropped (limit {MAX_GUEST_OUTPUT_BYTES} bytes per call)",
                inner.dropped
            );
            inner.dropped = 0;
        }
    }

    /// Starts the stream's next call (a reused instance's), tagged
    /// `request_id`, with its own output budget and trap tail.
    pub fn next_call(&self, request_id: u64) {
        let mut inner = self.lock();
        inner.request_id = request_id;
        inner.line.clear();
        inner.logged = 0;
        inner.dropped = 0;
        inner.tail.clear();
    }

    /// The last `TAIL_BYTES` bytes written, as text.
    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.lock().tail).trim_end().to_owned()
    }

    /// Keeps `text` for the trap report as if the guest had written it,
    /// without logging it (it was logged already: an error-level `host.log`
    /// line, which is where a guest without WASI reports its panic).
    pub fn keep(&self, text: &str) {
        let mut inner = self.lock();
        inner.keep(text.as_bytes());
        inner.keep(b"\n");
    }

    #[cfg(test)]
    fn write_all(&self, bytes: &[u8]) {
        self.lock().write(bytes);
    }
}

impl Inner {
    fn keep(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL_BYTES {
            let excess = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..excess);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.keep(bytes);
        let room = MAX_GUEST_OUTPUT_BYTES.saturating_sub(self.logged + self.line.len());
        let kept = &bytes[..bytes.len().min(room)];
        self.dropped += bytes.len() - kept.len();
        let mut rest = kept;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            let line = std::mem::take(&mut self.line);
            self.log_line(&line);
            rest = &rest[pos + 1..];
        }
        self.line.extend_from_slice(rest);
    }

    fn log_line(&mut self, line: &[u8]) {
        self.logged += line.len() + 1;
        tracing::info!(
            target: "guest",
            procedure = &*self.procedure,
            request_id = self.request_id,
            stream = self.stream,
            "{}",
            loggable(&String::from_utf8_lossy(line))
        );
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.lock().write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything logged in this test process, in the text format the server
    /// writes. A global subscriber, not a scoped one: tracing caches per
    /// callsite whether anyone listens, and a scoped subscriber raced with
    /// the other tests' threads over that cache (a line went missing).
    fn process_log() -> &'static Mutex<Vec<u8>> {
        static SINK: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
        SINK.get_or_init(|| {
            #[derive(Clone)]
            struct Sink(Arc<Mutex<Vec<u8>>>);
            impl io::Write for Sink {
                fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                    self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
                    Ok(buf.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let sink = Arc::new(Mutex::new(Vec::new()));
            let writer = Sink(sink.clone());
            let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other test sets a global subscriber");
            sink
        })
    }

    #[test]
    fn a_guest_cannot_forge_or_flood_log_lines() {
        let sink = process_log();
        let out = GuestOutput::new("p".into(), 7_777_001, "stdout");
        out.write_all(b"ok\rINFO wasmrpc: deployed \x1b[2J\n");
        out.write_all(&vec![b'y'; 10_000]);
        out.flush_log();
        let all = String::from_utf8(sink.lock().unwrap().clone()).unwrap();
        let log: String = all.lines().filter(|l| l.contains("request_id=7777001")).map(|l| format!("{l}\n")).collect();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(lines[0].contains(r"ok\rINFO wasmrpc: deployed \u{1b}[2J procedure="), "{}", lines[0]);
        assert!(!log.contains('\r') && !log.contains('\x1b'), "{log}");
        assert!(lines[1].len() < crate::config::MAX_LOG_TEXT_BYTES + 200, "{}", lines[1].len());
        let note = format!("... ({} more bytes) procedure=", 10_000 - crate::config::MAX_LOG_TEXT_BYTES);
        assert!(lines[1].contains(&note), "{}", lines[1]);
    }

    #[test]
    fn keeps_the_tail_and_bounds_what_is_logged() {
        let out = GuestOutput::new("p".into(), 1, "stderr");
        out.write_all(b"first line\nsecond");
        assert_eq!(out.tail(), "first line\nsecond");
        let big = vec![b'x'; MAX_GUEST_OUTPUT_BYTES * 2];
        out.write_all(&big);
        let inner = out.lock();
        assert!(inner.logged + inner.line.len() <= MAX_GUEST_OUTPUT_BYTES);
        assert!(inner.dropped >= MAX_GUEST_OUTPUT_BYTES);
        assert_eq!(inner.tail.len(), TAIL_BYTES);
    }
}
