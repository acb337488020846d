//! `wasmrpc:procedure/host` (0.1.0 on): a guest's log lines, `log` with a
//! string and `log-packed` with scalars only (32 bytes per host call, so a
//! component without string imports needs no shim instance). Lines go to
//! the server log tagged with the procedure and request id, within the
//! call's output budget; error-level lines are kept for a trap report.

use wasmtime::component::HasSelf;

use super::Capability;
use crate::config::MAX_GUEST_OUTPUT_BYTES;
use crate::logtext::loggable;
use crate::sandbox::bindings::wasmrpc::procedure::host::{self, Host, Level};
use crate::sandbox::state::CallState;

pub(in crate::sandbox) const CAPABILITY: Capability = Capability {
    described: "`wasmrpc:procedure/host`",
    serves: |name| name.starts_with("wasmrpc:procedure/host@0.1."),
    link: |linker| host::add_to_linker::<_, HasSelf<_>>(linker, |s| s),
};

impl Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        self.write_log(level, &message);
    }

    fn log_packed(&mut self, level: Level, len: u8, last: bool, b0: u64, b1: u64, b2: u64, b3: u64) {
        let (_, line) = self.log.line.get_or_insert_with(|| (level, Vec::new()));
        // A line longer than the whole output budget is cut there.
        if line.len() < MAX_GUEST_OUTPUT_BYTES {
            let words = [b0, b1, b2, b3].map(u64::to_le_bytes);
            line.extend(words.as_flattened().iter().take(usize::from(len)));
        }
        if last {
            self.flush_log_line();
        }
    }
}

impl CallState {
    /// Logs the line `log-packed` has sent so far (a call may trap mid-line).
    pub(in crate::sandbox) fn flush_log_line(&mut self) {
        if let Some((level, line)) = self.log.line.take() {
            self.write_log(level, &String::from_utf8_lossy(&line));
        }
    }

    fn write_log(&mut self, level: Level, message: &str) {
        // Log messages share the per-call output budget with stdout and stderr.
        if self.log.bytes >= MAX_GUEST_OUTPUT_BYTES {
            self.log.dropped += 1;
            return;
        }
        self.log.bytes += message.len();
        let message = loggable(message);
        let procedure = &*self.procedure;
        let request_id = self.request_id;
        match level {
            Level::Trace => tracing::trace!(target: "guest", procedure, request_id, "{message}"),
            Level::Debug => tracing::debug!(target: "guest", procedure, request_id, "{message}"),
            Level::Info => tracing::info!(target: "guest", procedure, request_id, "{message}"),
            Level::Warn => tracing::warn!(target: "guest", procedure, request_id, "{message}"),
            Level::Error => {
                tracing::error!(target: "guest", procedure, request_id, "{message}");
                // A trap report carries it as it carries stderr: a guest
                // built without WASI reports its panic this way.
                self.stderr.keep(message.as_ref());
            }
        }
    }
}
