//! The WebAssembly side of a call: the engine (`engine.rs`), the upload
//! check (`check.rs`), a call's state (`state.rs`), what a guest may import
//! (`capabilities/`, one module per interface), and running one call in a
//! fresh, limited instance (here, with the vocabulary of a call in
//! `call.rs`). Nothing here knows about HTTP or JSON-RPC envelopes; only the
//! [`registry`](crate::registry) uses this module: [`Sandbox::compile`] at
//! deploy, [`Sandbox::call`] for every call.
//!
//! Guests run on the tokio worker through wasmtime's async support. Measured
//! on the prototype (see issue 2): the sync API on a worker panics when a
//! guest writes to stderr, and a runaway guest held a whole worker thread;
//! `spawn_blocking` cost about 16 us more CPU per call. With async, epoch
//! interruption makes a busy guest yield to the reactor every tick, and the
//! wall-clock deadline covers host waits (a guest's sleep) as well.
//!
//! A guest may call other procedures (`client.call`): the call goes to a
//! [`Dispatcher`] (the registry) and comes back here as a call with a nested
//! [`CallContext`]: a fresh instance of its own, the tree's deadline, no
//! call slot of its own (its ancestors hold one; waiting for another could
//! deadlock a full server), bounded instead by the call depth and the
//! tree's nested-call budget.
//!
//! While the server has idle time, the next call's instance is made ahead,
//! and a used one dropped, off the answer's path (`ready.rs`); each
//! instance serves exactly one call, unless its version opted in to reuse
//! (`reuse.rs`): then it serves up to N calls, one at a time.

mod call;
mod capabilities;
mod check;
mod engine;
mod output;
mod ready;
mod reuse;
mod slots;
mod state;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use tokio::sync::SemaphorePermit;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

pub use call::{BoxFuture, CallContext, CallError, Dispatcher, ErrorObject};
pub use capabilities::http::Outbound;
pub use check::{InvalidModule, STUB_EXPORT};
pub use output::GuestOutput;
pub use reuse::Reuse;
pub use slots::Slots;

use crate::config::{self, Config, MAX_GUEST_OUTPUT_BYTES};
use crate::metrics::ProcStats;
use crate::timeout::{until, TimedOut};
use ready::Ready;
use reuse::Idle;
use state::{new_store, set_deadline, CallState, DeadlinePassed, Tree};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "procedure",
        imports: { "wasmrpc:procedure/client.call": async },
        exports: { default: async },
    });
}

use bindings::{Procedure, ProcedurePre};

/// A serving version as its calls see it, besides its code (a
/// [`Compiled`], which the registry may unload between calls and load
/// again): its name, its grant and its reuse.
pub struct Serving {
    /// The procedure's name, made once per deploy and shared by every call's
    /// log lines and output streams.
    name: Arc<str>,
    /// Names this version among the ready and idle instances: dropped with
    /// the version, which lets [`Ready`] and [`Idle`] drop its instances.
    key: Arc<()>,
    /// The version's outbound grant, given to a call only if its component
    /// imports `wasi:http`, so other calls pay nothing for it.
    outbound: Arc<Outbound>,
    /// The version's instance reuse: `None` for a fresh instance per call.
    reuse: Option<Reuse>,
}

impl Serving {
    /// Version `name` under its `outbound` grant and its instance `reuse`.
    pub fn new(name: &str, outbound: Outbound, reuse: Reuse) -> Serving {
        let reuse = (!reuse.is_fresh()).then_some(reuse);
        Serving { name: name.into(), key: Arc::new(()), outbound: Arc::new(outbound), reuse }
    }
}

/// A component that passed every check at deploy, compiled and pre-linked:
/// instantiating it is all a call does. Cheap to clone: clones share the
/// loaded code.
#[derive(Clone)]
pub struct Compiled {
    pub component: Component,
    pre: ProcedurePre<CallState>,
    /// Whether it imports `wasi:http` (then its calls get its grant).
    imports_http: bool,
}

/// The engine and the linker shared by every call, plus the call-slot bound:
/// the Wasm side of the server (not to be confused with tokio's runtime).
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    time_limit: Duration,
    memory_limit_bytes: u64,
    slots: Slots,
    max_calls: usize,
    max_call_depth: u32,
    max_nested_calls: u32,
    outbound_limits: crate::outbound::Limits,
    ready: Arc<Ready<ReadyInstance>>,
    /// Idle instances of versions that reuse them (`reuse.rs`).
    idle: Arc<Idle<Reused>>,
}

/// A fresh instance and its store, made ahead of a call (see [`ready`]).
struct ReadyInstance {
    store: Store<CallState>,
    instance: Procedure,
}

/// An instance that served `served` calls of a version that reuses
/// instances, with its store, between two calls (see [`reuse`]).
struct Reused {
    store: Store<CallState>,
    instance: Procedure,
    served: u32,
}

/// What a run does in its instance.
enum Op<'a> {
    /// `describe` of a module being deployed.
    Describe { procedure: Arc<str>, pre: &'a ProcedurePre<CallState> },
    /// A call of a serving version, whose guest calls go to `dispatcher`.
    Call {
        code: &'a Compiled,
        version: &'a Serving,
        stats: &'a Arc<ProcStats>,
        dispatcher: Arc<dyn Dispatcher>,
        method: &'a str,
        params: &'a str,
    },
}

/// What the guest's export answered: its result, its own error, or a trap
/// (wasmtime's error).
type Answered = wasmtime::Result<Result<String, bindings::exports::wasmrpc::procedure::stub::RpcError>>;

impl Sandbox {
    /// Builds the engine (pooling allocator sized from `config`, falling back to
    /// on-demand allocation where the pool cannot be reserved) and the linker.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        // Each ready instance may be held while a used one waits in its
        // background task to be dropped, after its call freed its slot.
        // And each idle reused instance holds one.
        let ready = u32::try_from(config.ready_instances)
            .unwrap_or(u32::MAX)
            .saturating_mul(2)
            .saturating_add(u32::try_from(config.max_idle_instances).unwrap_or(u32::MAX));
        let instances = config.pool_instances.unwrap_or_else(|| engine::pool_instances(config)).saturating_add(ready);
        let pagemap =
            engine::pagemap_scan(config.pagemap_scan, &std::fs::read_to_string("/proc/swaps").unwrap_or_default());
        let engine = match Engine::new(&engine::engine_config(config, Some(instances), pagemap)) {
            Ok(engine) => engine,
            Err(err) if config.pool_instances.is_some() => {
                return Err(anyhow!("cannot reserve a pool of {instances} instances: {err:#}"));
            }
            Err(err) => {
                tracing::warn!("pooling allocator unavailable ({err:#}); using on-demand allocation");
                Engine::new(&engine::engine_config(config, None, pagemap))?
            }
        };
        engine::start_epoch_ticker(&engine, config.epoch_tick);
        let mut linker = Linker::new(&engine);
        capabilities::link(&mut linker)?;
        Ok(Sandbox {
            engine,
            linker,
            time_limit: config.time_limit,
            memory_limit_bytes: config.memory_limit_bytes,
            slots: Slots::new(config.max_concurrent_calls),
            max_calls: config.max_concurrent_calls,
            max_call_depth: config.max_call_depth,
            max_nested_calls: config.max_nested_calls,
            outbound_limits: config.outbound,
            ready: Arc::new(Ready::new(config.ready_instances, config::ready_instances_per_procedure())),
            idle: Arc::new(Idle::new(config.max_idle_instances)),
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

    /// How many instances are kept idle for versions that reuse them.
    pub fn idle_instances(&self) -> usize {
        self.idle.len()
    }

    /// The call slots (lent while a call waits on storage).
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The limits on procedures' outbound requests.
    pub fn outbound_limits(&self) -> crate::outbound::Limits {
        self.outbound_limits
    }

    /// Compiles `bytes` and checks that they are a procedure component. CPU-heavy:
    /// call from a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, InvalidModule> {
        check::check_header(bytes)?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| InvalidModule(format!("not a valid WebAssembly component: {e:#}")))?;
        check::check(&self.engine, &self.linker, component)
    }

    /// Loads compiled code written by [`Compiled::serialize`] with a compatible engine.
    pub fn load_compiled(&self, path: &std::path::Path) -> anyhow::Result<Compiled> {
        // SAFETY: the file is one this server wrote atomically into its own
        // data dir (`store::compiled`), named by the module's hash and this
        // engine's compatibility key; wasmtime checks its header and engine
        // settings. The data dir is trusted like the binary itself.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(&self.engine, path) }.map_err(anyhow::Error::from)?;
        check::check(&self.engine, &self.linker, component).map_err(|e| anyhow!(e.0))
    }

    /// Whether `path` starts like a compiled component (its header only:
    /// [`Sandbox::load_compiled`] may still refuse it). Reads a few bytes.
    pub fn looks_compiled(path: &std::path::Path) -> bool {
        matches!(Engine::detect_precompiled_file(path), Ok(Some(wasmtime::Precompiled::Component)))
    }

    /// Runs `describe` once in a fresh instance.
    pub async fn describe(&self, name: &str, compiled: &Compiled, ctx: CallContext) -> Result<String, CallError> {
        self.run(Op::Describe { procedure: name.into(), pre: &compiled.pre }, ctx).await
    }

    /// Runs one call of `version` in a fresh instance of its `code` (or a
    /// reused one, if it reuses them); records the time the instance took to
    /// create in `stats`. The guest's own calls go to `dispatcher`.
    #[allow(clippy::too_many_arguments, reason = "one call's parts, each from another owner")]
    pub async fn call(
        &self,
        code: &Compiled,
        version: &Serving,
        method: &str,
        params: &str,
        ctx: CallContext,
        stats: &Arc<ProcStats>,
        dispatcher: Arc<dyn Dispatcher>,
    ) -> Result<String, CallError> {
        self.run(Op::Call { code, version, stats, dispatcher, method, params }, ctx).await
    }

    /// One run, in its steps: admit it, give it a store and an instance,
    /// call the guest within the deadline, flush what it printed, tell what
    /// the outcome means, and hand the used instance back.
    async fn run(&self, op: Op<'_>, ctx: CallContext) -> Result<String, CallError> {
        let nested = ctx.nested.is_some();
        let (_slot, deadline) = self.admit(&ctx).await?;
        let (mut store, mut instance, served) = self.store_for(&op, ctx, deadline);
        let work = execute(&mut store, &mut instance, &op);
        // A nested call runs inside its top-level call's timeout, which
        // ends at the same deadline and drops the whole tree: a timer of its
        // own would only add work. (The epoch callback stops guest code
        // at the deadline either way.)
        let outcome = if nested { Ok(work.await) } else { until(deadline, work).await };
        flush_output(&mut store);
        let result = self.judge(outcome, store.data());
        if let Op::Call { code, version, stats, .. } = op {
            match (version.reuse, instance) {
                (Some(reuse), Some(instance)) if keeps(&result, &reuse, served, store.data()) => {
                    let used = Reused { store, instance, served: served + 1 };
                    drop(self.idle.put(&version.key, used, Duration::from_millis(reuse.idle_ms)));
                }
                _ => self.recycle(store, code, version, stats),
            }
        }
        result
    }

    /// Admits a call: a top-level call takes a call slot (waiting at most
    /// [`OVERLOAD_WAIT`](crate::config::OVERLOAD_WAIT) for one) and starts the deadline; a nested call
    /// runs on its ancestors' slot, within their deadline, if the depth and
    /// the tree's nested-call budget allow.
    async fn admit(&self, ctx: &CallContext) -> Result<(Option<SemaphorePermit<'_>>, Instant), CallError> {
        match &ctx.nested {
            Some(nested) => {
                if nested.depth > self.max_call_depth {
                    return Err(CallError::CallDepth(self.max_call_depth));
                }
                // Refused calls count too; 64 bits do not wrap in any time limit.
                if nested.budget.fetch_add(1, Ordering::Relaxed) >= u64::from(self.max_nested_calls) {
                    return Err(CallError::NestedCalls(self.max_nested_calls));
                }
                Ok((None, nested.deadline))
            }
            None => Ok((Some(self.slots.take().await?), Instant::now() + self.time_limit)),
        }
    }

    /// The call's store, with its own state and deadline, the instance that
    /// comes with it and how many calls that instance served before: an
    /// idle reused instance's (its version reuses them), a ready instance's
    /// (made ahead, never called), or a new store (no instance yet).
    fn store_for(
        &self,
        op: &Op<'_>,
        ctx: CallContext,
        deadline: Instant,
    ) -> (Store<CallState>, Option<Procedure>, u32) {
        let dispatcher = match op {
            Op::Describe { .. } => None,
            Op::Call { dispatcher, .. } => Some(dispatcher.clone()),
        };
        let tree = Tree {
            depth: ctx.depth(),
            deadline,
            budget: ctx.nested.map(|n| n.budget),
            dispatcher,
            deadline_hit: false,
            trace: ctx.trace,
        };
        let (procedure, ready, outbound) = match op {
            Op::Describe { procedure, .. } => (procedure.clone(), None, None),
            Op::Call { code, version, stats, .. } => {
                if let Some(Reused { mut store, instance, served }) =
                    version.reuse.and_then(|_| self.idle.take(&version.key))
                {
                    stats.record_reused_instance();
                    store.data_mut().next_call(ctx.request_id, tree);
                    set_deadline(&mut store, deadline);
                    return (store, Some(instance), served);
                }
                let ready = self.ready.take(&version.key);
                if ready.is_some() {
                    stats.record_ready_instance();
                }
                let outbound = code.imports_http.then(|| version.outbound.clone());
                (version.name.clone(), ready, outbound)
            }
        };
        let stderr = GuestOutput::new(procedure.clone(), ctx.request_id, "stderr");
        let mut state = CallState::new(procedure, ctx.request_id, stderr, self.memory_limit_bytes, tree);
        state.outbound = outbound;
        let (mut store, instance) = match ready {
            Some(ReadyInstance { mut store, instance }) => {
                *store.data_mut() = state;
                (store, Some(instance))
            }
            None => (new_store(&self.engine, state), None),
        };
        set_deadline(&mut store, deadline);
        (store, instance, 0)
    }

    /// What the outcome of a run means for its caller.
    fn judge(&self, outcome: Result<Answered, TimedOut>, state: &CallState) -> Result<String, CallError> {
        match outcome {
            Err(TimedOut) => Err(CallError::TimedOut(self.time_limit)),
            // A nested call ran out of the tree's time: the tree has, whatever
            // the guest answered after.
            Ok(_) if state.tree.deadline_hit => Err(CallError::TimedOut(self.time_limit)),
            Ok(Ok(Ok(json))) => Ok(json),
            Ok(Ok(Err(e))) => Err(CallError::Guest { code: e.code, message: e.message, data: e.data }),
            Ok(Err(err)) => Err(self.classify(err, state.limiter.refused, &state.stderr)),
        }
    }

    /// Drops the used `store` and makes a ready instance of `loaded` for
    /// the next call, in a task of its own (see `sandbox/ready.rs`), if the
    /// server has idle time: if a tokio worker has parked since the last
    /// call. A server that never parks has none, and the task would only
    /// add work (two ready instances without this check cost 13 us more CPU
    /// per call at 64 connections); the store is then dropped in place. With
    /// ready instances off, nothing but that drop happens here: no runtime
    /// metrics are read and no shared counter is written.
    fn recycle(&self, used: Store<CallState>, code: &Compiled, version: &Serving, stats: &Arc<ProcStats>) {
        if !self.ready.enabled() || !self.ready.idle_since_last_call() || !self.ready.start_task() {
            return;
        }
        let ready = self.ready.clone();
        let (pre, name, key) = (code.pre.clone(), version.name.clone(), version.key.clone());
        let (stats, engine) = (stats.clone(), self.engine.clone());
        let (memory_limit, time_limit) = (self.memory_limit_bytes, self.time_limit);
        tokio::spawn(async move {
            drop(used);
            let (make, evicted) = ready.reserve(&key);
            drop(evicted);
            if make {
                let procedure = name;
                // Placeholders until a call takes it and sets its own state.
                let stderr = GuestOutput::new(procedure.clone(), 0, "stderr");
                let deadline = Instant::now() + time_limit;
                let tree =
                    Tree { depth: 0, deadline, budget: None, dispatcher: None, deadline_hit: false, trace: None };
                let mut store = new_store(&engine, CallState::new(procedure, 0, stderr, memory_limit, tree));
                set_deadline(&mut store, deadline);
                let started = Instant::now();
                match pre.instantiate_async(&mut store).await {
                    // Its start-up used no WASI: nothing in its state is
                    // tied to this placeholder call.
                    Ok(instance) if store.data().wasi.is_none() => {
                        stats.record_instantiate(started.elapsed());
                        ready.put(&key, ReadyInstance { store, instance });
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

/// Instantiates (unless an instance came with the store: then `instance`
/// holds it) and runs `op`; `instance` is left holding the instance.
async fn execute(store: &mut Store<CallState>, instance: &mut Option<Procedure>, op: &Op<'_>) -> Answered {
    let instance = match (instance.as_ref(), op) {
        (Some(instance), _) => instance,
        (None, Op::Describe { pre, .. }) => instance.insert(pre.instantiate_async(&mut *store).await?),
        (None, Op::Call { code, stats, .. }) => {
            let started = Instant::now();
            let made = code.pre.instantiate_async(&mut *store).await?;
            stats.record_instantiate(started.elapsed());
            instance.insert(made)
        }
    };
    let stub = instance.wasmrpc_procedure_stub();
    match op {
        Op::Describe { .. } => stub.call_describe(&mut *store).await.map(Ok),
        Op::Call { method, params, .. } => stub.call_call(&mut *store, method, params).await,
    }
}

/// Whether an instance of a version that reuses them (`reuse`) may serve
/// another call after one that ended in `result`, its `served + 1`th: only
/// after an answer or the guest's own error (never after a trap, a limit or
/// another error the host raised), before its N calls are used up, and
/// with its memory within the version's ceiling.
fn keeps(result: &Result<String, CallError>, reuse: &Reuse, served: u32, state: &CallState) -> bool {
    let ended_well = matches!(result, Ok(_) | Err(CallError::Guest { .. }));
    let memory_ok = reuse.memory_mib.is_none_or(|mib| state.limiter.bytes <= mib << 20);
    ended_well && served + 1 < reuse.calls && memory_ok && !state.tree.deadline_hit
}

/// Logs what the guest printed or logged and did not end with a newline,
/// and how much was dropped past the output budget.
fn flush_output(store: &mut Store<CallState>) {
    store.data_mut().flush_log_line();
    let state = store.data();
    if let Some((_, stdout)) = &state.wasi {
        stdout.flush_log();
    }
    state.stderr.flush_log();
    let dropped = state.log.dropped;
    if dropped > 0 {
        tracing::warn!(
            target: "guest",
            procedure = &*state.procedure,
            request_id = state.request_id,
            "{dropped} log messages dropped (limit {MAX_GUEST_OUTPUT_BYTES} bytes per call)"
        );
    }
}

impl Compiled {
    /// The compiled code, for the on-disk cache.
    pub fn serialize(&self) -> anyhow::Result<Vec<u8>> {
        self.component.serialize().map_err(anyhow::Error::from).context("serialising compiled code")
    }

    /// The bytes of memory its compiled code takes once loaded.
    pub fn code_bytes(&self) -> u64 {
        let range = self.component.image_range();
        (range.end as u64).saturating_sub(range.start as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_pool_is_reserved_or_refused_never_replaced() {
        let mut config = Config::new(std::env::temp_dir().join("wasmrpc-unused"));
        config.pool_instances = Some(4);
        assert!(Sandbox::new(&config).is_ok(), "a pool of 4 instances fits anywhere");
        // More address space than any machine has: an error, not on-demand allocation.
        config.pool_instances = Some(1 << 28);
        let err = Sandbox::new(&config).err().expect("no such pool can be reserved");
        let expected = format!(
            "cannot reserve a pool of {} instances",
            (1 << 28) + 2 * config.ready_instances + config.max_idle_instances
        );
        assert!(format!("{err:#}").contains(&expected), "{err:#}");
    }
}
