//! A call's state: what the store of one instance holds while it serves one
//! call (who is calling, the memory limiter, the call's place in its call
//! tree, and each linked capability's per-call state), how that store is
//! made, and the wall-clock deadline its guest code runs under.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use super::bindings::wasmrpc::procedure::host::Level;
use super::call::Dispatcher;
use super::engine::MAX_TABLE_ELEMENTS;
use super::output::GuestOutput;

/// The per-call store data.
pub(crate) struct CallState {
    /// WASI and the stdout it writes to, made at the guest's first WASI
    /// call: a component built without WASI (`wasmrpc component`) never
    /// pays for them (`capabilities/wasi.rs`).
    pub(super) wasi: Option<(WasiCtx, GuestOutput)>,
    /// Also kept for a trap report, with error-level log lines.
    pub(super) stderr: GuestOutput,
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) procedure: Arc<str>,
    pub(super) request_id: u64,
    /// `host.log` and `host.log-packed` (`capabilities/log.rs`).
    pub(super) log: LogState,
    pub(super) tree: Tree,
    /// The version's outbound grant, limits and counters: `Some` only for
    /// a component that imports `wasi:http` (`capabilities/http.rs`).
    pub(super) outbound: Option<Arc<super::capabilities::http::Outbound>>,
    /// `wasi:http` state, made at the guest's first use of it.
    pub(super) http: Option<Box<super::capabilities::http::HttpCall>>,
}

/// A call's log budget and the line `log-packed` is sending (used by
/// `capabilities/log.rs`).
#[derive(Default)]
pub(super) struct LogState {
    /// Bytes of log messages so far, and messages dropped past the budget.
    pub(super) bytes: usize,
    pub(super) dropped: usize,
    /// The line `host.log-packed` is sending, and its level (of its first chunk).
    pub(super) line: Option<(Level, Vec<u8>)>,
}

/// This call's place in its call tree.
pub(super) struct Tree {
    pub(super) depth: u32,
    pub(super) deadline: Instant,
    /// The tree's nested-call count; made at the first nested call of a
    /// top-level call, so a call that makes none allocates nothing.
    pub(super) budget: Option<Arc<AtomicU64>>,
    /// Where the guest's calls go; `None` while `describe` runs at deploy.
    pub(super) dispatcher: Option<Arc<dyn Dispatcher>>,
    /// Set when a nested call failed after the tree's deadline: this call
    /// then ends with -32001 too, whatever the guest answers.
    pub(super) deadline_hit: bool,
    /// This call's span, the parent of its nested calls' spans and of its
    /// outgoing requests (`crate::trace`); `None` when not traced.
    pub(super) trace: Option<crate::trace::Span>,
}

impl CallState {
    /// The state of a call of `procedure` tagged `request_id`, at its place `tree`.
    pub(super) fn new(
        procedure: Arc<str>,
        request_id: u64,
        stderr: GuestOutput,
        memory_limit: u64,
        tree: Tree,
    ) -> CallState {
        CallState {
            wasi: None,
            stderr,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: memory_limit, refused: false, bytes: 0 },
            procedure,
            request_id,
            log: LogState::default(),
            tree,
            outbound: None,
            http: None,
        }
    }

    /// Readies the state of a reused instance (`reuse.rs`) for its next
    /// call, tagged `request_id`, at its place `tree`: what is per call
    /// starts again (output and log budgets, outgoing HTTP counts), what the
    /// guest holds (its WASI context, its resources, its memory) is kept.
    pub(super) fn next_call(&mut self, request_id: u64, tree: Tree) {
        self.request_id = request_id;
        self.tree = tree;
        self.limiter.refused = false;
        self.log = LogState::default();
        self.http = None;
        self.stderr.next_call(request_id);
        if let Some((_, stdout)) = &self.wasi {
            stdout.next_call(request_id);
        }
    }
}

/// A store for `state`, its memory limited by `state.limiter`.
pub(super) fn new_store(engine: &Engine, state: CallState) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store
}

/// Stops the store's guest code at `deadline`: the epoch ticker makes it
/// check every tick, and yield to the reactor meanwhile.
pub(super) fn set_deadline(store: &mut Store<CallState>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlinePassed))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

/// Raised from the epoch callback when a call's wall-clock deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("time limit reached")]
pub(super) struct DeadlinePassed;

/// Refuses memory growth past the limit and remembers that it did, so the
/// call is reported as a memory-limit hit (-32002) whatever trap follows.
pub(super) struct MemoryLimiter {
    limit: u64,
    pub(super) refused: bool,
    /// The linear memory the instance holds: every size it was allowed to
    /// grow by, from its creation (a memory never shrinks).
    pub(super) bytes: u64,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.refused = true;
            return Ok(false);
        }
        self.bytes += desired.saturating_sub(current) as u64;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
