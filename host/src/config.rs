//! Server configuration: every limit the server enforces, with its default and
//! the reason it exists. `cli` fills a [`Config`] from flags and environment
//! variables; everything else only reads it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Wall-clock time one call may take. A guest that loops or sleeps past it is
/// stopped with -32001, so a single bad procedure cannot hold a worker.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 2000;
/// Linear memory one instance may grow to. Bounds what a memory hog can take
/// from the host; also sizes the pooling allocator's slots.
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 64;
/// Largest module a PUT accepts. Compiling is superlinear in the worst case,
/// so an unbounded upload would let one request pin the CPU and the disk.
pub const DEFAULT_MAX_MODULE_MIB: u64 = 32;
/// Largest JSON-RPC request body. The body is held in memory while it is
/// parsed; without a bound a client could exhaust the host's memory.
pub const DEFAULT_MAX_BODY_KIB: u64 = 1024;
/// Longest batch. Every element may start an instance; a bound keeps one
/// request from monopolising the call slots.
pub const DEFAULT_MAX_BATCH: usize = 100;
/// Concurrent calls per core. Calls beyond the limit wait for
/// [`OVERLOAD_WAIT`] and then get -32003, so load never builds an unbounded queue.
pub const CALLS_PER_CORE: usize = 32;
/// How deep procedures may call procedures (`client.call`): a call made by
/// the top-level call is depth 1. Every level holds an instance (and up to
/// the memory limit) while it waits, and the pool keeps this many instances
/// per call slot, so the bound also ends self-recursion (A -> A, A -> B -> A)
/// long before it could exhaust memory.
pub const DEFAULT_MAX_CALL_DEPTH: u32 = 8;
/// Nested calls one top-level call may make in all (its whole call tree,
/// refused ones included). Nested calls take no call slot (waiting for one
/// while an ancestor holds another could deadlock a full server), so this
/// is what keeps one request from fanning out without end.
pub const DEFAULT_MAX_NESTED_CALLS: u32 = 64;
/// Largest `--max-call-depth`: the instance pool holds a chain this deep for
/// every call slot.
pub const MAX_CALL_DEPTH_LIMIT: u32 = 64;
/// Versions kept per procedure name (`--keep-versions`): the serving one and
/// those before it, for rollback. Each keeps its module (and compiled code)
/// on disk, so the bound caps what a stream of deploys can leave behind.
pub const DEFAULT_KEEP_VERSIONS: usize = 10;
/// How long a request that arrives while the server is still starting
/// (loading the registry, catching up with a shared one) waits for it to
/// be ready before it is answered 503. Catching up takes well under a
/// second when the registry is reachable; past this it is not.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// How often a replica reads the shared registry's change log even without
/// a notification: the bound on how late a change whose notification was
/// lost (a dropped connection) reaches it.
pub const REGISTRY_POLL: Duration = Duration::from_secs(2);
/// Longest wait between attempts to reach a shared registry that is down.
pub const REGISTRY_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a call waits for a free call slot before it is refused as overloaded.
pub const OVERLOAD_WAIT: Duration = Duration::from_millis(500);
/// Open connections at once. Each costs a task and buffers; past the cap new
/// connections wait in the kernel's accept queue instead of in our memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send a request's headers (slowloris protection); also
/// how long an idle keep-alive connection is kept, so idle clients do not
/// hold connection slots for ever.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Time a client has to send a request's whole body once headers have
/// arrived: a client that declares a body and stalls is answered 408.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Largest answer to one `/rpc` request (all of a batch's answers), in MiB:
/// a call whose result would pass it answers -32006 instead, never a cut text.
pub const DEFAULT_MAX_RESPONSE_MIB: u64 = 16;
/// Calls one WebSocket connection may have running at once
/// (`--ws-max-in-flight`); at the cap the server reads no further message
/// from it until one finishes (backpressure), so one connection cannot take
/// every call slot.
pub const DEFAULT_WS_MAX_IN_FLIGHT: usize = 32;
/// How long a WebSocket connection may stay idle (no message from the
/// client, no call running, no subscription) before the server closes it
/// (`--ws-idle-timeout-s`).
pub const DEFAULT_WS_IDLE_TIMEOUT_S: u64 = 300;
/// How often the server pings a WebSocket connection (`--ws-ping-interval-s`);
/// one that has sent nothing (no pong) by the next ping is closed.
pub const DEFAULT_WS_PING_INTERVAL_S: u64 = 30;
/// How long a graceful shutdown waits for running requests before it gives up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Guest output (stdout, stderr, host log messages) kept per call and stream;
/// the rest is dropped with a note in the log, so a chatty guest cannot flood
/// the log or memory.
pub const MAX_GUEST_OUTPUT_BYTES: usize = 64 * 1024;
/// Longest piece of guest-controlled text (an output line, a log message, an
/// error message) in one server log line; the rest is cut with a note. A log
/// line is read by people and parsed by tools: one call must not be able to
/// make it megabytes long.
pub const MAX_LOG_TEXT_BYTES: usize = 2048;

/// Everything `wasmrpc serve` needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where modules, versions and compiled code are kept.
    pub data_dir: PathBuf,
    pub time_limit: Duration,
    pub memory_limit_bytes: u64,
    pub max_module_bytes: u64,
    pub max_body_bytes: u64,
    pub max_batch: usize,
    pub max_concurrent_calls: usize,
    pub max_call_depth: u32,
    pub max_nested_calls: u32,
    /// Versions kept per name, at least 1.
    pub keep_versions: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Bearer token for the admin API; `None` means loopback clients only.
    pub admin_token: Option<String>,
    /// Directory of `*.wasm` files to deploy and keep deployed (`--watch`).
    pub watch_dir: Option<PathBuf>,
    /// Whether the instance pool may reset memory with the kernel's
    /// PAGEMAP_SCAN (only the pages a call dirtied). Even when true it is
    /// off while swap is active: see `sandbox/engine.rs`, `pagemap_scan`.
    pub pagemap_scan: bool,
    /// Whether compiled code relies on guard pages and signals for memory
    /// bounds (`--guard-pages`) instead of explicit checks: see
    /// `sandbox/engine.rs`, `engine_config`, for what each costs.
    pub guard_pages: bool,
    /// Instances the pooling allocator reserves address space for (plus
    /// twice `ready_instances` and `max_idle_instances`); `None` sizes the
    /// pool from the call limits
    /// (`sandbox/engine.rs`, `pool_instances`), and
    /// falls back to on-demand allocation where it cannot be reserved. Set,
    /// the pool is that small and must be reserved: for runs under valgrind
    /// (`make bench-callgrind`), whose address space is a fraction of a
    /// full pool's, and which must measure the pool, not the fallback.
    pub pool_instances: Option<u32>,
    /// Fresh instances made ahead of calls, across all procedures
    /// (`--ready-instances`, 0 turns it off): see `sandbox/ready.rs`. The
    /// pool holds twice this many instances more (a ready one, and a used
    /// one waiting to be dropped).
    pub ready_instances: usize,
    /// Idle instances kept, across all procedures, for versions deployed
    /// with `?reuse=N` (`--max-idle-instances`; 0: none is kept, each call
    /// gets a fresh one): see `sandbox/reuse.rs`. The pool holds this many
    /// instances more.
    pub max_idle_instances: usize,
    /// Compiled code kept loaded, across all procedures (`--max-loaded-mib`):
    /// past it the least recently called is unloaded, and loaded again from
    /// the compiled-code cache at its next call (`registry/code.rs`).
    pub max_loaded_bytes: u64,
    /// How often the engine's epoch advances ([`EPOCH_TICK`]). A busy guest
    /// yields to tokio once per tick, and the deadline is checked at each
    /// tick, so this is also the resolution of the time limit. Only
    /// `make bench-callgrind` changes it: under valgrind code runs 50-100
    /// times slower, and ticks would interrupt calls that at full speed
    /// finish long before one.
    pub epoch_tick: Duration,
    /// Whether `GET /` serves the web dashboard (`--no-dashboard` turns it
    /// off: `/` and `/dashboard/*` are then 404, as on a server without one).
    pub dashboard: bool,
    /// Procedures' key-value limits (`--kv-*`).
    pub kv: crate::kv::KvLimits,
    /// Limits on procedures' outgoing HTTP (`--max-outbound-*`,
    /// `--outbound-connect-timeout-ms`).
    pub outbound: crate::outbound::Limits,
    /// The shared registry (`--registry`); `None`: the data dir is the registry.
    pub registry: Option<crate::store::pg::PgTarget>,
    /// Calls a second per caller key without its own rate, and per client
    /// address for calls without a key (`--rate-limit`); `None`: no limit.
    pub rate_limit: Option<crate::keys::limit::Rate>,
    /// Whether `/rpc` needs a caller key (`--require-call-key`).
    pub require_call_key: bool,
    /// WebSocket connections' limits (`--ws-*`): see [`crate::ws`].
    pub ws: crate::ws::Limits,
    /// Origins whose web pages may call `/rpc` (`--cors-origin`), as
    /// [`crate::cors::parse_origin`] gives them; empty: the server's own only.
    pub cors_origins: Vec<String>,
    /// Largest answer to one `/rpc` request or WebSocket message, in bytes (`--max-response-mib`).
    pub max_response_bytes: u64,
    /// Where calls' spans are exported over OTLP/HTTP (`--otlp-endpoint`,
    /// `http://HOST:PORT`); `None`: none is (`traceparent` is still
    /// propagated). See [`crate::trace`].
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// A configuration with every default, keeping its data under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            data_dir,
            time_limit: Duration::from_millis(DEFAULT_TIME_LIMIT_MS),
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_MIB << 20,
            max_module_bytes: DEFAULT_MAX_MODULE_MIB << 20,
            max_body_bytes: DEFAULT_MAX_BODY_KIB << 10,
            max_batch: DEFAULT_MAX_BATCH,
            max_concurrent_calls: default_concurrent_calls(),
            max_call_depth: DEFAULT_MAX_CALL_DEPTH,
            max_nested_calls: DEFAULT_MAX_NESTED_CALLS,
            keep_versions: DEFAULT_KEEP_VERSIONS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_TIMEOUT_MS),
            admin_token: None,
            watch_dir: None,
            pagemap_scan: true,
            guard_pages: false,
            pool_instances: None,
            ready_instances: DEFAULT_READY_INSTANCES,
            max_idle_instances: DEFAULT_MAX_IDLE_INSTANCES,
            max_loaded_bytes: DEFAULT_MAX_LOADED_MIB << 20,
            epoch_tick: EPOCH_TICK,
            dashboard: true,
            kv: crate::kv::KvLimits::default(),
            outbound: crate::outbound::Limits::default(),
            registry: None,
            rate_limit: None,
            require_call_key: false,
            ws: crate::ws::Limits::default(),
            cors_origins: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_MIB << 20,
            otlp_endpoint: None,
        }
    }
}

/// The default bound on concurrent calls: [`CALLS_PER_CORE`] per core.
pub fn default_concurrent_calls() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores * CALLS_PER_CORE
}

/// How often the engine's epoch advances by default (`Config::epoch_tick`).
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Ready instances by default: one. Measured on 2 cores (math.add, A/B
/// of one binary): at 1 connection one takes p50 from about 97 us to 80,
/// two to 78; at 64 connections two cost 10-17% of the calls per second
/// (two background tasks and two more live instances), one nothing.
pub const DEFAULT_READY_INSTANCES: usize = 1;

/// Idle reused instances kept by default, across procedures: 64, as many
/// as the default call slots of a 2-core machine, each holding its memory
/// (at most `--memory-limit-mib`).
pub const DEFAULT_MAX_IDLE_INSTANCES: usize = 64;

/// Compiled code kept loaded by default: 256 MiB, a few hundred distinct
/// components of a few hundred KB (a component's code is 2-6 times its
/// size); identical code counts once however many procedures serve it.
pub const DEFAULT_MAX_LOADED_MIB: u64 = 256;

/// The most ready instances one procedure may hold: one per core, so a
/// call on each worker can find one.
pub fn ready_instances_per_procedure() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether serving on `addr` without an admin token is allowed: only on loopback.
pub fn listen_is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
