//! The WebAssembly side of a call: the wasmtime engine, checking an uploaded
//! component against `wit/procedure.wit`, and running one call in a fresh,
//! limited instance. Nothing here knows about HTTP or JSON-RPC envelopes; only
//! the [`registry`](crate::registry) uses this module: [`Sandbox::compile`]
//! at deploy, [`Sandbox::call`] for every call.
//!
//! Guests run on the tokio worker through wasmtime's async support. Measured
//! on the prototype (see issue 2): the sync API on a worker panics when a
//! guest writes to stderr, and a runaway guest held a whole worker thread;
//! `spawn_blocking` cost about 16 us more CPU per call. With async, epoch
//! interruption makes a busy guest yield to the reactor every tick, and the
//! wall-clock deadline covers host waits (a guest's sleep) as well.
//!
//! A guest may call other procedures (`client.call`): the call goes to a
//! [`Client`] (the registry) and comes back here as a call with a nested
//! [`CallContext`]: a fresh instance of its own, the tree's deadline, no
//! call slot of its own (its ancestors hold one; waiting for another could
//! deadlock a full server), bounded instead by the call depth and the
//! tree's nested-call budget.
//!
//! While the server has idle time, the next call's instance is made ahead,
//! and a used one dropped, off the answer's path (`sandbox/ready.rs`); each
//! instance still serves exactly one call.

mod output;
mod ready;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::{self, Config, MAX_GUEST_OUTPUT_BYTES, OVERLOAD_WAIT};
use crate::logtext::loggable;
use crate::metrics::ProcStats;
pub use output::GuestOutput;
use ready::Ready;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "procedure",
        imports: { "wasmrpc:procedure/client.call": async },
        exports: { default: async },
    });
}

use bindings::wasmrpc::procedure::client;
use bindings::wasmrpc::procedure::host::{Host, Level};
use bindings::{Procedure, ProcedurePre};

/// The interface every procedure must export (0.1.0 to 0.1.2 are all
/// accepted: wasmtime links semver-compatible versions).
pub const STUB_EXPORT: &str = "wasmrpc:procedure/stub@0.1.2";
const STUB_PREFIX: &str = "wasmrpc:procedure/stub@0.1.";
/// The wasmrpc interfaces a procedure may import: `host` (0.1.0 on) and
/// `client` (0.1.1 on).
const IMPORT_PREFIXES: &[&str] = &["wasmrpc:procedure/host@0.1.", "wasmrpc:procedure/client@0.1."];
/// WASI 0.2 packages a procedure may import. The host links them all and grants
/// nothing (no files, sockets, environment or arguments); clocks and random work.
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// Instances kept beyond the call limit, for `describe` during deploys.
const DEPLOY_SLOTS: u32 = 16;
/// Bytes of an instance's memory kept resident between calls in the pool:
/// resetting them with memset is cheaper than unmapping and faulting them in
/// again (the prototype measured 6.7 us against 22 us per instantiate + call).
const KEEP_RESIDENT_BYTES: usize = 1 << 20;
/// Table elements per table in the pool (Rust guests need a few hundred;
/// interpreters compiled to Wasm need more).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// JSON-RPC's "Internal error".
const INTERNAL_ERROR: i32 = -32603;

/// Why a call did not produce a result; each case becomes one JSON-RPC code.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the procedure trapped: {reason}")]
    Trapped { reason: String, stderr: String },
    #[error("the procedure ran past its time limit of {0:?}")]
    TimedOut(Duration),
    #[error("the procedure tried to grow its memory past the limit of {limit_mib} MiB")]
    MemoryLimit { limit_mib: u64 },
    #[error("the server is over its limit of {0} concurrent calls; retry later")]
    Overloaded(usize),
    #[error("the procedure returned invalid JSON: {0}")]
    InvalidOutput(String),
    /// A nested call past `--max-call-depth`.
    #[error("calls nest at most {0} deep (--max-call-depth)")]
    CallDepth(u32),
    /// A nested call past `--max-nested-calls` in one call tree.
    #[error("a top-level call may make at most {0} nested calls (--max-nested-calls)")]
    NestedCalls(u32),
    /// The procedure's own error, passed through unchanged.
    #[error("{message}")]
    Guest { code: i32, message: String, data: Option<String> },
    /// No procedure of that name is deployed, or it has no such method.
    #[error("method not found")]
    MethodNotFound,
}

impl CallError {
    /// The JSON-RPC error code of this failure (the contract's table): the
    /// same whether the caller is an HTTP client or another procedure.
    pub fn code(&self) -> i32 {
        match self {
            CallError::Trapped { .. } => -32000,
            CallError::TimedOut(_) => -32001,
            CallError::MemoryLimit { .. } => -32002,
            CallError::Overloaded(_) => -32003,
            CallError::InvalidOutput(_) => INTERNAL_ERROR,
            CallError::CallDepth(_) | CallError::NestedCalls(_) => -32004,
            CallError::MethodNotFound => -32601,
            CallError::Guest { code, .. } => *code,
        }
    }
}

/// Who is calling, for the guest's log lines, and where the call sits in
/// its call tree.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The top-level request's id, shared by every call of its tree.
    pub request_id: u64,
    /// `None` for a top-level call (from a request, or a deploy's `describe`).
    nested: Option<Nested>,
}

/// What a nested call inherits from its caller.
#[derive(Debug, Clone)]
struct Nested {
    /// 1 for a call made by the top-level call, 2 for one made by that callee, ...
    depth: u32,
    /// The top-level call's deadline: the whole tree stops there.
    deadline: Instant,
    /// Nested calls started so far by the whole tree.
    budget: Arc<AtomicU64>,
    /// The calling procedure's name.
    caller: Arc<str>,
}

impl CallContext {
    /// A top-level call, tagged `request_id` in the logs.
    pub fn new(request_id: u64) -> Self {
        CallContext { request_id, nested: None }
    }

    /// 0 for a top-level call, else how deep in the call tree this one is.
    pub fn depth(&self) -> u32 {
        self.nested.as_ref().map_or(0, |n| n.depth)
    }

    /// The procedure that made this (nested) call.
    pub fn caller(&self) -> Option<&Arc<str>> {
        self.nested.as_ref().map(|n| &n.caller)
    }
}

/// A nested call's failure as the calling guest gets it (`call-error` in
/// wit/procedure.wit): the JSON-RPC error object an outside client would
/// get for the same call; `data` is JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    pub code: i32,
    pub message: String,
    pub data: Option<String>,
}

/// A boxed future, as a [`Client`] returns it (the call recurses through the
/// sandbox, so its type must be erased somewhere).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a guest's `client.call` goes: implemented by the registry (see
/// `rpc.rs`: a nested call is dispatched like a request's call), so that the
/// sandbox does not depend on it.
pub trait Client: Send + Sync {
    /// Calls `method` (`module.method`) with `params` (JSON text) as the
    /// nested call `ctx`.
    fn call<'a>(
        self: Arc<Self>,
        method: &'a str,
        params: &'a str,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<String, ErrorObject>>;
}

/// A deployed version, compiled and pre-linked: instantiating it is all a call does.
#[derive(Clone)]
pub struct Loaded {
    pre: ProcedurePre<CallState>,
    /// The procedure's name, made once per deploy and shared by every call's
    /// log lines and output streams.
    name: Arc<str>,
    /// Method names (without the module prefix) from `describe`.
    pub methods: Arc<HashSet<String>>,
    /// Names this version among the ready instances: dropped with the
    /// version, which lets [`Ready`] drop the instances made for it.
    key: Arc<()>,
}

/// A component that passed every check at deploy, not yet described.
pub struct Compiled {
    pub component: Component,
    pre: ProcedurePre<CallState>,
}

/// Why an upload is not a procedure: the message says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidModule(pub String);

/// The engine and the linker shared by every call, plus the call-slot bound:
/// the Wasm side of the server (not to be confused with tokio's runtime).
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    time_limit: Duration,
    memory_limit_bytes: u64,
    slots: Semaphore,
    max_calls: usize,
    max_call_depth: u32,
    max_nested_calls: u32,
    ready: Arc<Ready<ReadyInstance>>,
}

/// A fresh instance and its store, made ahead of a call (see `sandbox/ready.rs`).
struct ReadyInstance {
    store: Store<CallState>,
    instance: Procedure,
}

impl Sandbox {
    /// Builds the engine (pooling allocator sized from `config`, falling back to
    /// on-demand allocation where the pool cannot be reserved) and the linker.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        // Each ready instance may be held while a used one waits in its
        // background task to be dropped, after its call freed its slot.
        let ready = u32::try_from(config.ready_instances).unwrap_or(u32::MAX).saturating_mul(2);
        let instances = config.pool_instances.unwrap_or_else(|| pool_instances(config)).saturating_add(ready);
        let pagemap = pagemap_scan(config.pagemap_scan, &std::fs::read_to_string("/proc/swaps").unwrap_or_default());
        let engine = match Engine::new(&engine_config(config, Some(instances), pagemap)) {
            Ok(engine) => engine,
            Err(err) if config.pool_instances.is_some() => {
                return Err(anyhow!("cannot reserve a pool of {instances} instances: {err:#}"));
            }
            Err(err) => {
                tracing::warn!("pooling allocator unavailable ({err:#}); using on-demand allocation");
                Engine::new(&engine_config(config, None, pagemap))?
            }
        };
        start_epoch_ticker(&engine, config.epoch_tick);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::wasmrpc::procedure::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        client::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        Ok(Sandbox {
            engine,
            linker,
            time_limit: config.time_limit,
            memory_limit_bytes: config.memory_limit_bytes,
            slots: Semaphore::new(config.max_concurrent_calls),
            max_calls: config.max_concurrent_calls,
            max_call_depth: config.max_call_depth,
            max_nested_calls: config.max_nested_calls,
            ready: Arc::new(Ready::new(config.ready_instances, config::ready_instances_per_procedure())),
        })
    }

    /// A key that changes whenever compiled code from this engine would not load
    /// in another (wasmtime version, settings, CPU features).
    pub fn compatibility_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Compiles `bytes` and checks that they are a procedure component. CPU-heavy:
    /// call from a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, InvalidModule> {
        check_header(bytes)?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| InvalidModule(format!("not a valid WebAssembly component: {e:#}")))?;
        self.check(component)
    }

    /// Loads compiled code written by [`Compiled::serialize`] with a compatible engine.
    pub fn load_compiled(&self, path: &std::path::Path) -> anyhow::Result<Compiled> {
        // SAFETY: the file is one this server wrote atomically into its own
        // data dir (`storage`), named by the module's hash and this engine's
        // compatibility key; wasmtime checks its header and engine settings.
        // The data dir is trusted like the binary itself.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(&self.engine, path) }.map_err(anyhow::Error::from)?;
        self.check(component).map_err(|e| anyhow!(e.0))
    }

    fn check(&self, component: Component) -> Result<Compiled, InvalidModule> {
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            check_import(name)?;
        }
        if !ty.exports(&self.engine).any(|(name, _)| name.starts_with(STUB_PREFIX)) {
            return Err(InvalidModule(format!(
                "missing export `{STUB_EXPORT}`: a procedure must implement the stub \
                 interface of wit/procedure.wit (see the wasmrpc-guest SDK)"
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| InvalidModule(format!("the component's imports do not link: {e:#}")))?;
        let pre = ProcedurePre::new(pre)
            .map_err(|e| InvalidModule(format!("the component's exports do not match {STUB_EXPORT}: {e:#}")))?;
        Ok(Compiled { component, pre })
    }

    /// Runs `describe` once in a fresh instance.
    pub async fn describe(&self, name: &str, compiled: &Compiled, ctx: CallContext) -> Result<String, CallError> {
        self.run(Op::Describe { procedure: name.into(), pre: &compiled.pre }, ctx).await
    }

    /// Runs one call in a fresh instance of `loaded`; records the time the
    /// instance took to create in `stats`. The guest's own calls go to `client`.
    pub async fn call(
        &self,
        loaded: &Loaded,
        method: &str,
        params: &str,
        ctx: CallContext,
        stats: &Arc<ProcStats>,
        client: Arc<dyn Client>,
    ) -> Result<String, CallError> {
        self.run(Op::Call { loaded, stats, client, method, params }, ctx).await
    }

    async fn run(&self, op: Op<'_>, ctx: CallContext) -> Result<String, CallError> {
        let nested = ctx.nested.is_some();
        let (_slot, deadline) = match &ctx.nested {
            // A nested call runs on its ancestors' slot, within their deadline.
            Some(nested) => {
                if nested.depth > self.max_call_depth {
                    return Err(CallError::CallDepth(self.max_call_depth));
                }
                // Refused calls count too; 64 bits do not wrap in any time limit.
                if nested.budget.fetch_add(1, Ordering::Relaxed) >= u64::from(self.max_nested_calls) {
                    return Err(CallError::NestedCalls(self.max_nested_calls));
                }
                (None, nested.deadline)
            }
            // A free slot is taken at once; only a full server pays for the timer.
            None => {
                let slot = match self.slots.try_acquire() {
                    Ok(slot) => slot,
                    Err(_) => tokio::time::timeout(OVERLOAD_WAIT, self.slots.acquire())
                        .await
                        .map_err(|_| CallError::Overloaded(self.max_calls))?
                        .map_err(|_| CallError::Overloaded(self.max_calls))?,
                };
                (Some(slot), Instant::now() + self.time_limit)
            }
        };
        let (procedure, pre, client, stats) = match &op {
            Op::Describe { procedure, pre } => (procedure.clone(), *pre, None, None),
            Op::Call { loaded, stats, client, .. } => {
                (loaded.name.clone(), &loaded.pre, Some(client.clone()), Some(*stats))
            }
        };
        let stderr = GuestOutput::new(procedure.clone(), ctx.request_id, "stderr");
        let tree =
            Tree { depth: ctx.depth(), deadline, budget: ctx.nested.map(|n| n.budget), client, deadline_hit: false };
        let state = CallState::new(procedure.clone(), ctx.request_id, stderr.clone(), self.memory_limit_bytes, tree);
        // A ready instance (made ahead, never called) gets this call's state
        // whole; otherwise the instance is made here.
        let ready = match &op {
            Op::Call { loaded, .. } => self.ready.take(&loaded.key),
            Op::Describe { .. } => None,
        };
        let (mut store, ready) = match ready {
            Some(ReadyInstance { mut store, instance }) => {
                *store.data_mut() = state;
                (store, Some(instance))
            }
            None => (new_store(&self.engine, state), None),
        };
        set_deadline(&mut store, deadline);

        let work = async {
            let instance = match ready {
                Some(instance) => instance,
                None => {
                    let started = Instant::now();
                    let instance = pre.instantiate_async(&mut store).await?;
                    if let Some(stats) = stats {
                        stats.record_instantiate(started.elapsed());
                    }
                    instance
                }
            };
            let stub = instance.wasmrpc_procedure_stub();
            match op {
                Op::Describe { .. } => stub.call_describe(&mut store).await.map(Ok),
                Op::Call { method, params, .. } => stub.call_call(&mut store, method, params).await,
            }
        };
        // A nested call runs inside its top-level call's timeout, which
        // ends at the same deadline and drops the whole tree: a timer of its
        // own would only add work. (The epoch callback stops guest code
        // at the deadline either way.)
        let outcome = if nested { Ok(work.await) } else { until(deadline, work).await };
        store.data_mut().flush_log_line();
        if let Some((_, stdout)) = &store.data().wasi {
            stdout.flush_log();
        }
        stderr.flush_log();
        let dropped = store.data().log_dropped;
        if dropped > 0 {
            let state = store.data();
            tracing::warn!(
                target: "guest",
                procedure = &*state.procedure,
                request_id = state.request_id,
                "{dropped} log messages dropped (limit {MAX_GUEST_OUTPUT_BYTES} bytes per call)"
            );
        }
        let result = match outcome {
            Err(TimedOut) => Err(CallError::TimedOut(self.time_limit)),
            // A nested call ran out of the tree's time: the tree has, whatever
            // the guest answered after.
            Ok(_) if store.data().tree.deadline_hit => Err(CallError::TimedOut(self.time_limit)),
            Ok(Ok(Ok(json))) => Ok(json),
            Ok(Ok(Err(e))) => Err(CallError::Guest { code: e.code, message: e.message, data: e.data }),
            Ok(Err(err)) => Err(self.classify(err, store.data().limiter.refused, &stderr)),
        };
        if let Op::Call { loaded, stats, .. } = op {
            self.recycle(store, loaded, stats);
        }
        result
    }

    /// Drops the used `store` and makes a ready instance of `loaded` for
    /// the next call, in a task of its own (see `sandbox/ready.rs`), if the
    /// server has idle time: if a tokio worker has parked since the last
    /// call. A server that never parks has none, and the task would only
    /// add work (two ready instances without this check cost 13 us more CPU
    /// per call at 64 connections); the store is then dropped in place. With
    /// ready instances off, nothing but that drop happens here: no runtime
    /// metrics are read and no shared counter is written.
    fn recycle(&self, used: Store<CallState>, loaded: &Loaded, stats: &Arc<ProcStats>) {
        if !self.ready.enabled() || !self.ready.idle_since_last_call() || !self.ready.start_task() {
            return;
        }
        let ready = self.ready.clone();
        let (loaded, stats, engine) = (loaded.clone(), stats.clone(), self.engine.clone());
        let (memory_limit, time_limit) = (self.memory_limit_bytes, self.time_limit);
        tokio::spawn(async move {
            drop(used);
            let (make, evicted) = ready.reserve(&loaded.key);
            drop(evicted);
            if make {
                let procedure = loaded.name.clone();
                // Placeholders until a call takes it and sets its own state.
                let stderr = GuestOutput::new(procedure.clone(), 0, "stderr");
                let deadline = Instant::now() + time_limit;
                let tree = Tree { depth: 0, deadline, budget: None, client: None, deadline_hit: false };
                let mut store = new_store(&engine, CallState::new(procedure, 0, stderr, memory_limit, tree));
                set_deadline(&mut store, deadline);
                let started = Instant::now();
                match loaded.pre.instantiate_async(&mut store).await {
                    // Its start-up used no WASI: nothing in its state is
                    // tied to this placeholder call.
                    Ok(instance) if store.data().wasi.is_none() => {
                        stats.record_instantiate(started.elapsed());
                        ready.put(&loaded.key, ReadyInstance { store, instance });
                    }
                    _ => ready.unreserve(),
                }
            }
            ready.end_task();
        });
    }

    /// Tells apart why wasmtime stopped a call.
    fn classify(&self, err: wasmtime::Error, memory_refused: bool, stderr: &GuestOutput) -> CallError {
        if memory_refused {
            return CallError::MemoryLimit { limit_mib: self.memory_limit_bytes >> 20 };
        }
        if err.is::<DeadlinePassed>() {
            return CallError::TimedOut(self.time_limit);
        }
        let text = format!("{err:#}");
        if text.contains("concurrent") && text.contains("limit") {
            // The instance pool is exhausted.
            return CallError::Overloaded(self.max_calls);
        }
        let reason = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => text,
        };
        CallError::Trapped { reason, stderr: stderr.tail() }
    }
}

impl Compiled {
    /// The compiled code, for the on-disk cache.
    pub fn serialize(&self) -> anyhow::Result<Vec<u8>> {
        self.component.serialize().map_err(anyhow::Error::from).context("serialising compiled code")
    }

    /// Ready to serve, once `describe` has named its methods.
    pub fn into_loaded(self, name: &str, methods: HashSet<String>) -> Loaded {
        Loaded { pre: self.pre, name: name.into(), methods: Arc::new(methods), key: Arc::new(()) }
    }
}

enum Op<'a> {
    /// `describe` of a module being deployed.
    Describe { procedure: Arc<str>, pre: &'a ProcedurePre<CallState> },
    /// A call of a deployed version, whose guest calls go to `client`.
    Call { loaded: &'a Loaded, stats: &'a Arc<ProcStats>, client: Arc<dyn Client>, method: &'a str, params: &'a str },
}

/// Raised from the epoch callback when a call's wall-clock deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("time limit reached")]
struct DeadlinePassed;

/// The per-call store data: WASI with nothing granted, the memory limiter,
/// who is calling, for the guest's log lines, and the call tree, for the
/// guest's own calls.
struct CallState {
    /// WASI and the stdout it writes to, made at the guest's first WASI
    /// call: a component built without WASI (`wasmrpc component`) never
    /// pays for them.
    wasi: Option<(WasiCtx, GuestOutput)>,
    /// Also kept for a trap report, with error-level log lines.
    stderr: GuestOutput,
    table: ResourceTable,
    limiter: MemoryLimiter,
    procedure: Arc<str>,
    request_id: u64,
    /// Bytes of `host.log` messages so far, and messages dropped past the budget.
    log_bytes: usize,
    log_dropped: usize,
    /// The line `host.log-packed` is sending, and its level (of its first chunk).
    log_line: Option<(Level, Vec<u8>)>,
    tree: Tree,
}

/// This call's place in its call tree.
struct Tree {
    depth: u32,
    deadline: Instant,
    /// The tree's nested-call count; made at the first nested call of a
    /// top-level call, so a call that makes none allocates nothing.
    budget: Option<Arc<AtomicU64>>,
    /// Where the guest's calls go; `None` while `describe` runs at deploy.
    client: Option<Arc<dyn Client>>,
    /// Set when a nested call failed after the tree's deadline: this call
    /// then ends with -32001 too, whatever the guest answers.
    deadline_hit: bool,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (wasi, _) = self.wasi.get_or_insert_with(|| {
            let stdout = GuestOutput::new(self.procedure.clone(), self.request_id, "stdout");
            (WasiCtx::builder().stdout(stdout.clone()).stderr(self.stderr.clone()).build(), stdout)
        });
        WasiCtxView { ctx: wasi, table: &mut self.table }
    }
}

impl Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        self.write_log(level, &message);
    }

    fn log_packed(&mut self, level: Level, len: u8, last: bool, b0: u64, b1: u64, b2: u64, b3: u64) {
        let (_, line) = self.log_line.get_or_insert_with(|| (level, Vec::new()));
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
    /// The state of a call of `procedure` tagged `request_id`, at its place `tree`.
    fn new(procedure: Arc<str>, request_id: u64, stderr: GuestOutput, memory_limit: u64, tree: Tree) -> CallState {
        CallState {
            wasi: None,
            stderr,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: memory_limit, refused: false },
            procedure,
            request_id,
            log_bytes: 0,
            log_dropped: 0,
            log_line: None,
            tree,
        }
    }

    /// Logs the line `log-packed` has sent so far (a call may trap mid-line).
    fn flush_log_line(&mut self) {
        if let Some((level, line)) = self.log_line.take() {
            self.write_log(level, &String::from_utf8_lossy(&line));
        }
    }

    fn write_log(&mut self, level: Level, message: &str) {
        // Log messages share the per-call output budget with stdout and stderr.
        if self.log_bytes >= MAX_GUEST_OUTPUT_BYTES {
            self.log_dropped += 1;
            return;
        }
        self.log_bytes += message.len();
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

impl client::Host for CallState {
    async fn call(&mut self, method: String, params: String) -> Result<String, client::CallError> {
        let Some(client) = self.tree.client.clone() else {
            return Err(client::CallError {
                code: INTERNAL_ERROR,
                message: "procedures cannot be called while `describe` runs (at deploy)".into(),
                data: None,
            });
        };
        let ctx = CallContext {
            request_id: self.request_id,
            nested: Some(Nested {
                depth: self.tree.depth + 1,
                deadline: self.tree.deadline,
                budget: self.tree.budget.get_or_insert_with(Default::default).clone(),
                caller: self.procedure.clone(),
            }),
        };
        let outcome = client.call(&method, &params, ctx).await;
        if outcome.is_err() && Instant::now() >= self.tree.deadline {
            self.tree.deadline_hit = true;
        }
        outcome.map_err(|e| client::CallError { code: e.code, message: e.message, data: e.data })
    }
}

/// `work`, or `Err(TimedOut)` once `deadline` has passed: what
/// `tokio::time::timeout_at` does, except that the timer is only made if
/// `work` does not finish in its first poll (a guest waiting on the host, or
/// yielding at an epoch tick). Most calls finish in one poll, and a new timer
/// earlier than every other one wakes the worker parked on tokio's driver
/// to re-arm it: one `write` to its eventfd, a wake-up of the other core and
/// another `epoll_wait` per call, measured with `strace -c` at 1 connection.
async fn until<F: Future>(deadline: Instant, work: F) -> Result<F::Output, TimedOut> {
    let mut work = std::pin::pin!(work);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        timer.as_mut().poll(cx).map(|()| Err(TimedOut))
    })
    .await
}

/// [`until`]'s deadline passed.
struct TimedOut;

/// A store for `state`, its memory limited by `state.limiter`.
fn new_store(engine: &Engine, state: CallState) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store
}

/// Stops the store's guest code at `deadline`: the epoch ticker makes it
/// check every tick, and yield to the reactor meanwhile.
fn set_deadline(store: &mut Store<CallState>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlinePassed))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

/// Refuses memory growth past the limit and remembers that it did, so the
/// call is reported as a memory-limit hit (-32002) whatever trap follows.
struct MemoryLimiter {
    limit: u64,
    refused: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Whether the pool resets memory through PAGEMAP_SCAN, given the flag and the
/// text of `/proc/swaps`.
///
/// The scan finds the dirty pages that are present in memory. A dirty page
/// that has been swapped out is neither reset nor decommitted (wasmtime PR
/// #14357), so the next instance in that slot could read the previous call's
/// data. Until a wasmtime release fixes that, active swap turns the scan off:
/// every kept-resident page is then cleared, which costs time, not safety.
fn pagemap_scan(allowed: bool, proc_swaps: &str) -> Enabled {
    let swap_devices: Vec<&str> = proc_swaps.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    if !allowed {
        tracing::info!("memory reset by PAGEMAP_SCAN is off (--no-pagemap-scan)");
        Enabled::No
    } else if !swap_devices.is_empty() {
        tracing::warn!(
            swap = swap_devices.join(", "),
            "swap is active: memory reset by PAGEMAP_SCAN is off, since it would miss swapped-out \
             pages a call dirtied and leave them for the next call (wasmtime PR #14357)"
        );
        Enabled::No
    } else {
        Enabled::Auto
    }
}

/// Instances the pool must hold: every call slot with a full chain of
/// nested calls below it (a guest waits for its nested call, so a tree has
/// at most one instance per level at a time), plus [`DEPLOY_SLOTS`].
fn pool_instances(config: &Config) -> u32 {
    let per_slot = config.max_call_depth.saturating_add(1);
    u32::try_from(config.max_concurrent_calls)
        .unwrap_or(u32::MAX)
        .saturating_mul(per_slot)
        .min(u32::MAX / 8)
        .saturating_add(DEPLOY_SLOTS)
}

fn engine_config(config: &Config, pool_instances: Option<u32>, pagemap: Enabled) -> wasmtime::Config {
    let mut cfg = wasmtime::Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    if !config.guard_pages {
        // Explicit bounds checks, no guard pages. With guard pages, wasmtime
        // must make a reused slot's memory inaccessible again past the
        // initial size at every instantiate, and accessible again when the
        // guest grows (Rust's allocator grows memory on every call that
        // allocates): two mprotect calls per call, each taking the process's
        // mmap lock for writing and flushing the TLB of every core with an
        // IPI. A profile of the server at 64 connections found them (with
        // the lock waits and IPIs) as the largest cost of a call outside the
        // call itself. Without guard pages a slot stays accessible up to the
        // largest size it reached, and compiled code checks each access
        // against the memory's current size instead (as safe: wasmtime's
        // supported mode for hosts without virtual memory tricks). Measured
        // (one binary, two servers, alternating): math.add at 64 connections
        // 14.5k -> 21.5k calls/s and 110 -> 73 us of CPU per call; the 10 KB
        // json.invoice call runs about 12% slower at 1 connection.
        cfg.signals_based_traps(false).memory_guard_size(0);
    }
    if let Some(n) = pool_instances {
        let mut pool = PoolingAllocationConfig::default();
        let memory_limit = usize::try_from(config.memory_limit_bytes).unwrap_or(usize::MAX);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(memory_limit)
            .table_elements(MAX_TABLE_ELEMENTS)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(pagemap);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
fn start_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmrpc-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!("cannot start the epoch thread: {e}"));
}

/// Tells apart "not Wasm at all" and "a core module" before the compiler's
/// less specific messages.
fn check_header(bytes: &[u8]) -> Result<(), InvalidModule> {
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(InvalidModule(
            "not a WebAssembly file: it does not start with the `\\0asm` magic bytes \
             (upload the .wasm built with `cargo build --release --target wasm32-wasip2`)"
                .into(),
        ));
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(InvalidModule(
            "this is a core WebAssembly module, not a component: build it with \
             `--target wasm32-wasip2` or wrap it with `wasmrpc component`"
                .into(),
        ));
    }
    Ok(())
}

/// Allows WASI 0.2.x and the wasmrpc interfaces; names anything else.
fn check_import(name: &str) -> Result<(), InvalidModule> {
    if IMPORT_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
        return Ok(());
    }
    if let Some(rest) = name.strip_prefix("wasi:") {
        let (package, version) = match rest.split_once('/') {
            Some((package, iface)) => (package, iface.split_once('@').map(|(_, v)| v)),
            None => (rest, None),
        };
        if WASI_PACKAGES.contains(&package) && version.is_some_and(|v| v.starts_with("0.2.")) {
            return Ok(());
        }
    }
    Err(InvalidModule(format!(
        "forbidden import `{name}`: a procedure may import only WASI 0.2 ({}), \
         `wasmrpc:procedure/host` and `wasmrpc:procedure/client`",
        WASI_PACKAGES.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_allowed_and_refused() {
        assert!(check_import("wasi:cli/environment@0.2.6").is_ok());
        assert!(check_import("wasi:io/streams@0.2.0").is_ok());
        assert!(check_import("wasmrpc:procedure/host@0.1.0").is_ok());
        assert!(check_import("wasmrpc:procedure/host@0.1.1").is_ok());
        assert!(check_import("wasmrpc:procedure/client@0.1.1").is_ok());
        assert!(check_import("wasmrpc:procedure/client@0.2.0").is_err());
        let err = check_import("wasi:http/outgoing-handler@0.2.0").unwrap_err();
        assert!(err.0.contains("`wasi:http/outgoing-handler@0.2.0`"), "{err}");
        assert!(check_import("wasi:cli/environment@0.3.0").is_err());
        assert!(check_import("evil:thing/x").is_err());
    }

    #[test]
    fn swap_turns_the_pagemap_scan_off() {
        let none = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        let one = format!("{none}/swapfile                               file\t\t1048572\t\t0\t\t-2\n");
        assert!(matches!(pagemap_scan(true, none), Enabled::Auto));
        assert!(matches!(pagemap_scan(true, ""), Enabled::Auto));
        assert!(matches!(pagemap_scan(true, &one), Enabled::No));
        assert!(matches!(pagemap_scan(false, none), Enabled::No));
    }

    #[test]
    fn an_explicit_pool_is_reserved_or_refused_never_replaced() {
        let mut config = Config::new(std::env::temp_dir().join("wasmrpc-unused"));
        config.pool_instances = Some(4);
        assert!(Sandbox::new(&config).is_ok(), "a pool of 4 instances fits anywhere");
        // More address space than any machine has: an error, not on-demand allocation.
        config.pool_instances = Some(1 << 28);
        let err = Sandbox::new(&config).err().expect("no such pool can be reserved");
        let expected = format!("cannot reserve a pool of {} instances", (1 << 28) + 2 * config.ready_instances);
        assert!(format!("{err:#}").contains(&expected), "{err:#}");
    }

    #[test]
    fn header_checks_name_the_problem() {
        assert!(check_header(b"hello world").unwrap_err().0.contains("not a WebAssembly file"));
        assert!(check_header(b"\0asm\x01\0\0\0").unwrap_err().0.contains("core WebAssembly module"));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
