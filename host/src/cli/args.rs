//! The command line's arguments: every subcommand and flag with its
//! environment variable, defined once (clap derive), so `--help` comes from
//! these definitions; and the server [`Config`] that `serve`'s flags describe.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};

use super::stub;
use crate::config::{self, Config};

#[derive(Debug, Parser)]
#[command(name = "wasmrpc", version, about = "JSON-RPC 2.0 server that runs each call in a fresh WebAssembly sandbox")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Deploy FILE (a .wasm component) as procedure NAME.
    Deploy {
        /// Procedure name: JSON-RPC methods are called as NAME.method.
        name: String,
        /// The .wasm file.
        file: PathBuf,
        #[command(flatten)]
        settings: DeploySettings,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Call a JSON-RPC method and print its result.
    Call {
        /// Method name, e.g. math.add.
        method: String,
        /// Parameters as JSON: an array (by position) or an object (by name).
        params: Option<String>,
        /// Caller key to call with (`wasmrpc keys create`), sent as `Authorization: Bearer`.
        #[arg(long, env = "WASMRPC_CALL_KEY", hide_env_values = true)]
        key: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List deployed procedures.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove procedure NAME (its kept versions stay, for `rollback`).
    Remove {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the kept versions of procedure NAME, newest first.
    Versions {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make an earlier version of procedure NAME serve again.
    Rollback {
        name: String,
        /// The kept version to serve [default: the newest kept version
        /// older than the one serving].
        version: Option<u64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create a procedure crate NAME, ready for `wasmrpc dev`.
    ///
    /// Writes Cargo.toml, src/lib.rs (two example methods), README.md and
    /// .gitignore into DIR (default ./NAME), which must not exist or be empty.
    New {
        /// Crate and procedure name: a lowercase letter, then up to 62
        /// lowercase letters, digits, `_` or `-` (deployed with `-` as `_`).
        name: String,
        /// Directory to create the crate in [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// The wasmrpc-guest SDK the crate depends on [default: the guest-sdk
        /// directory of the source tree this binary was built from].
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build a procedure crate, deploy it, and redeploy it on every change.
    ///
    /// Runs `cargo build --release --target wasm32-wasip2` in CRATE_DIR and
    /// PUTs the component to the server, then watches src/, Cargo.toml and
    /// build.rs and does it again after every change, printing the build
    /// errors or the new version. When no server answers at --server and it
    /// is a loopback address, starts one in this process (data in
    /// CRATE_DIR/target/wasmrpc-dev-data). Ctrl-C stops.
    Dev(DevArgs),
    /// Generate a typed client stub (Rust, Python or TypeScript) from the
    /// server's OpenRPC document.
    ///
    /// One namespace per procedure, one typed function per method, records
    /// and enums as types of the language. Reads `rpc.discover` of --server,
    /// or a saved document with --file. Writes to --out FILE (or stdout);
    /// with --check, compares FILE with what would be written and exits 1
    /// with a short diff when it is stale (for CI).
    Stub(StubArgs),
    /// Read and write procedures' key-value data (wasi:keyvalue).
    ///
    /// The data belongs to a procedure name, deployed or not, and survives
    /// deploys, rollbacks and removals. Every subcommand uses the admin API
    /// (`/procedures/NAME/kv`), so it needs --admin-token when the server has
    /// one. `export` and `import` move a procedure's data between servers.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Set, unset and list procedure NAME's configuration (wasi:config):
    /// variables and secrets its code reads with `get`.
    ///
    /// The configuration belongs to the name, deployed or not; a change
    /// applies to calls that start after it, without a redeploy. `list`
    /// shows the values of variables and only the names of secrets. Every
    /// subcommand uses the admin API (`/procedures/NAME/config`), so it
    /// needs --admin-token when the server has one.
    Config {
        /// Procedure name.
        name: String,
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create, list and remove caller keys: who may call which procedures over JSON-RPC,
    /// and how often.
    ///
    /// A caller sends its key as `Authorization: Bearer KEY` on /rpc (and the WebSocket
    /// upgrade). A key calls only the procedures its globs cover (others answer -32601, as
    /// if they did not exist), at its rate (else the server's --rate-limit). With the
    /// server's --require-call-key a request without a key is refused (401). Every
    /// subcommand uses the admin API (`/keys`), so it needs --admin-token when the server
    /// has one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Wrap a core module built for wasm32-unknown-unknown into a component.
    ///
    /// A procedure with no WASI imports makes the cheapest instances: build
    /// it with `cargo build --release --target wasm32-unknown-unknown`, then
    /// `wasmrpc component target/wasm32-unknown-unknown/release/NAME.wasm -o
    /// NAME.wasm` (what `wasm-tools component new` does). `wasmrpc dev` does
    /// both for a crate with `[package.metadata.wasmrpc] wasi = false`.
    Component {
        /// The core module (.wasm) cargo built.
        core: PathBuf,
        /// Where to write the component.
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct StubArgs {
    /// The language of the stub.
    #[arg(long, value_enum)]
    pub lang: stub::Lang,
    /// Base URL of the server whose `rpc.discover` to read (unless --file).
    #[arg(long, env = "WASMRPC_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Caller key to read `rpc.discover` with, on a server started with --require-call-key
    /// (the document then lists what the key covers).
    #[arg(long, env = "WASMRPC_CALL_KEY", hide_env_values = true, conflicts_with = "file")]
    pub key: Option<String>,
    /// Read a saved OpenRPC document instead of asking a server (e.g. the
    /// output of `wasmrpc call rpc.discover`).
    #[arg(long, value_name = "OPENRPC_JSON")]
    pub file: Option<PathBuf>,
    /// Only procedure NAME (repeat for more) [default: every procedure].
    #[arg(long = "only", value_name = "NAME")]
    pub only: Vec<String>,
    /// Write the stub to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write nothing: exit 0 if --out FILE is what would be written, else 1
    /// with a short diff.
    #[arg(long, requires = "out")]
    pub check: bool,
    /// With --lang rust: a stub for procedures calling procedures, through
    /// `wasmrpc_guest::call`.
    #[arg(long)]
    pub guest: bool,
    /// With --guest: calls to the procedures of another server (the one
    /// --server or --file describes), through `wasmrpc_guest::remote::Client`,
    /// which the calling code makes with that server's URL.
    #[arg(long, requires = "guest")]
    pub remote: bool,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The procedure crate's directory.
    #[arg(default_value = ".")]
    pub crate_dir: PathBuf,
    /// Procedure name [default: the crate's package name, `-` as `_`].
    #[arg(long)]
    pub name: Option<String>,
    /// Build and deploy once, then exit (status 1 if either failed); never
    /// starts a server.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub settings: DeploySettings,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What a deploy chooses besides the code (`wasmrpc deploy`, `wasmrpc dev`):
/// the query of `PUT /procedures/{name}`, checked by the server.
#[derive(Debug, Clone, Default, Args)]
pub struct DeploySettings {
    /// Let this version send HTTP requests to URL: scheme://host or scheme://host:port, http or https;
    /// `*.example.com` for every subdomain (not example.com itself). Repeat for more hosts;
    /// without it the version may send none.
    #[arg(long = "allow-outbound", value_name = "URL")]
    pub allow_outbound: Vec<String>,
    /// Serve up to N calls, one at a time, with one instance: its memory and globals persist
    /// between calls of this procedure (caches stay warm). 1, the default: a fresh instance per call.
    #[arg(long, value_name = "N")]
    pub reuse: Option<u64>,
    /// With --reuse: drop an instance idle this long [server's default: 30000].
    #[arg(long, value_name = "MS", requires = "reuse")]
    pub reuse_idle_ms: Option<u64>,
    /// With --reuse: drop an instance after a call that leaves its memory above this.
    #[arg(long, value_name = "MIB", requires = "reuse")]
    pub reuse_memory_mib: Option<u64>,
}

impl DeploySettings {
    /// The query string that asks for these settings (`?allow-outbound=...&reuse=...`),
    /// or nothing for the defaults.
    pub fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for text in &self.allow_outbound {
            query.append_pair("allow-outbound", text);
        }
        for (key, value) in
            [("reuse", self.reuse), ("reuse-idle-ms", self.reuse_idle_ms), ("reuse-memory-mib", self.reuse_memory_mib)]
        {
            if let Some(value) = value {
                query.append_pair(key, &value.to_string());
            }
        }
        let query = query.finish();
        if query.is_empty() {
            query
        } else {
            format!("?{query}")
        }
    }
}

/// `wasmrpc kv`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// List procedure NAME's buckets (keys and bytes each), or with --bucket
    /// every key of one bucket, one a line, in order.
    ///
    /// A control character in a key (a newline, an escape) is shown escaped
    /// (`\n`, `\u{1b}`); `export` writes keys exactly.
    List {
        /// Procedure name.
        name: String,
        /// List this bucket's keys (every page, to the end).
        #[arg(long, value_name = "BUCKET")]
        bucket: Option<String>,
        /// With --bucket: only keys starting with PREFIX.
        #[arg(long, value_name = "PREFIX", requires = "bucket")]
        prefix: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the value of KEY in BUCKET of procedure NAME: its raw bytes, to
    /// stdout, nothing added.
    ///
    /// Exits 1 with the server's message when there is no such key.
    Get {
        /// Procedure name.
        name: String,
        /// Bucket (the identifier the procedure opens).
        bucket: String,
        /// Key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set KEY in BUCKET of procedure NAME to VALUE (as UTF-8 text), or to
    /// the bytes of --file (`--file -`: stdin).
    ///
    /// Values are at most the server's --kv-max-value-kib (1 MiB by default),
    /// and count towards the procedure's --kv-quota-mib.
    Set {
        /// Procedure name.
        name: String,
        /// Bucket (the identifier the procedure opens).
        bucket: String,
        /// Key.
        key: String,
        /// The value, as text (exactly these bytes of UTF-8; no newline added).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value's bytes from FILE instead (`-`: stdin).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete KEY in BUCKET of procedure NAME (done, also when it was not
    /// there), or with --all every key of every bucket of NAME.
    ///
    /// `--all` alone erases nothing: it says how many keys NAME has and asks
    /// for `--all --yes`. Export first if you may want them back:
    /// `wasmrpc kv export NAME -o NAME.jsonl`.
    Delete {
        /// Procedure name.
        name: String,
        /// Bucket of the key to delete.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        bucket: Option<String>,
        /// Key to delete.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        key: Option<String>,
        /// Delete all of NAME's key-value data (with --yes).
        #[arg(long)]
        all: bool,
        /// Confirm --all.
        #[arg(long, requires = "all")]
        yes: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write every key of every bucket of procedure NAME as JSON lines:
    /// `{"bucket", "key", "value"}`, the value in base64; what `import` reads.
    ///
    /// Reads page by page, so a procedure writing meanwhile may have some of
    /// its writes in the file and some not. To move data to another server,
    /// for example from one with a data dir to one with a PostgreSQL
    /// --registry: `wasmrpc kv export NAME --server A > NAME.jsonl`, then
    /// `wasmrpc kv import NAME NAME.jsonl --server B`.
    Export {
        /// Procedure name.
        name: String,
        /// Write to FILE instead of stdout (replaced only once the export is whole).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set the keys of JSON lines (as `export` writes them) in procedure
    /// NAME's data; keys not in the file stay as they are.
    ///
    /// The server reads every line before it writes any: a malformed line is
    /// named (`line 3: ...`) and nothing is written. The lines may come from
    /// another procedure name or another server, for example from one with a
    /// data dir into one with a PostgreSQL --registry: `wasmrpc kv export NAME
    /// --server A > NAME.jsonl`, then `wasmrpc kv import NAME NAME.jsonl
    /// --server B`. To replace NAME's data rather than add to it, run `wasmrpc
    /// kv delete NAME --all --yes` first. At most 256 MiB per import.
    Import {
        /// Procedure name.
        name: String,
        /// The JSON lines file [default: stdin; `-` is stdin too].
        file: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `wasmrpc keys`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create caller key NAME and print it (stdout, alone on its line): the only time it
    /// is shown; the server keeps its SHA-256.
    ///
    /// NAME is 1 to 63 characters of a-z, 0-9, `_`, `-` and `.`.
    Create {
        /// Key name.
        name: String,
        /// A procedure the key may call: a name (`math`) or a glob (`calc*`, `*` for all).
        /// Repeat for more; at least one.
        #[arg(long = "procedure", value_name = "GLOB", required = true)]
        procedures: Vec<String>,
        /// The key's own rate, calls per second with an optional burst (`10` or `10/20`)
        /// [default: the server's --rate-limit, if any].
        #[arg(long, value_name = "RATE[/BURST]", value_parser = parse_rate)]
        rate: Option<crate::keys::limit::Rate>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the caller keys (never the keys themselves: their first characters).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove caller key NAME: requests presenting it are refused from now on.
    Remove {
        /// Key name.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `wasmrpc config NAME`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set KEY to VALUE (`-`: read it from stdin, one trailing newline
    /// dropped), as a variable or with --secret as a secret; other keys stay.
    ///
    /// Keys are 1 to 128 characters of a-z, 0-9, `_`, `.` and `-`; a value
    /// is at most 64 KiB, and a procedure's keys and values at most 1 MiB.
    /// A secret given as `-` stays out of the shell's history.
    Set {
        /// Key.
        key: String,
        /// The value, as text (`-`: stdin).
        value: String,
        /// Keep it as a secret: its value is never shown again.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Unset KEY (a variable or a secret); done also when it was not set.
    Unset {
        /// Key.
        key: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the keys: variables with their values, secrets by name only.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the client commands find the server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the server.
    #[arg(long, env = "WASMRPC_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Admin token for deploy, remove, rollback, kv, config and keys.
    #[arg(long, env = "WASMRPC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, env = "WASMRPC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where deployed modules and compiled code are kept.
    #[arg(long, env = "WASMRPC_DATA_DIR", default_value = "./wasmrpc-data")]
    pub data_dir: PathBuf,
    /// Wall-clock time limit per call, in milliseconds.
    #[arg(long, env = "WASMRPC_TIME_LIMIT_MS", default_value_t = config::DEFAULT_TIME_LIMIT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub time_limit_ms: u64,
    /// Memory limit per instance, in MiB.
    #[arg(long, env = "WASMRPC_MEMORY_LIMIT_MIB", default_value_t = config::DEFAULT_MEMORY_LIMIT_MIB, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub memory_limit_mib: u64,
    /// Largest module a deploy accepts, in MiB.
    #[arg(long, env = "WASMRPC_MAX_MODULE_MIB", default_value_t = config::DEFAULT_MAX_MODULE_MIB, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_module_mib: u64,
    /// Largest JSON-RPC request body, in KiB.
    #[arg(long, env = "WASMRPC_MAX_BODY_KIB", default_value_t = config::DEFAULT_MAX_BODY_KIB, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_body_kib: u64,
    /// Longest batch.
    #[arg(long, env = "WASMRPC_MAX_BATCH", default_value_t = config::DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
    /// Largest answer to one request (a batch's answers together), in MiB; a call whose result
    /// would pass it answers -32006 "Response too large" instead (the call has run).
    #[arg(long, env = "WASMRPC_MAX_RESPONSE_MIB", default_value_t = config::DEFAULT_MAX_RESPONSE_MIB, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_response_mib: u64,
    /// Origin whose web pages may call /rpc, as the browser sends it (`https://app.example.com`);
    /// repeat it for more, `*` for any. Without it only the server's own pages may.
    #[arg(long = "cors-origin", env = "WASMRPC_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Calls running at once; more wait briefly, then get -32003 [default: 32 per core]
    #[arg(long, env = "WASMRPC_MAX_CONCURRENT_CALLS")]
    pub max_concurrent_calls: Option<usize>,
    /// How deep procedures may call procedures; a call made by the top-level call is depth 1
    /// (0: procedures may not call procedures). Past it a nested call fails with -32004.
    #[arg(long, env = "WASMRPC_MAX_CALL_DEPTH", default_value_t = config::DEFAULT_MAX_CALL_DEPTH, value_parser = clap::value_parser!(u32).range(0..=i64::from(config::MAX_CALL_DEPTH_LIMIT)))]
    pub max_call_depth: u32,
    /// Nested calls one top-level call may make in all; past it a nested call fails with -32004.
    #[arg(long, env = "WASMRPC_MAX_NESTED_CALLS", default_value_t = config::DEFAULT_MAX_NESTED_CALLS)]
    pub max_nested_calls: u32,
    /// Versions kept per procedure for rollback (the serving one included); older ones are
    /// forgotten with their modules.
    #[arg(long, env = "WASMRPC_KEEP_VERSIONS", default_value_t = config::DEFAULT_KEEP_VERSIONS as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub keep_versions: u64,
    /// Open connections at once; past it new connections wait in the kernel's backlog until one closes.
    #[arg(long, env = "WASMRPC_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Calls one WebSocket connection may have running at once; at the cap the server reads no
    /// further message from it until one finishes.
    #[arg(long, env = "WASMRPC_WS_MAX_IN_FLIGHT", default_value_t = config::DEFAULT_WS_MAX_IN_FLIGHT as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub ws_max_in_flight: u64,
    /// Seconds a WebSocket connection may be idle (no message, no call running, no
    /// subscription) before the server closes it (code 1000, with the reason).
    #[arg(long, env = "WASMRPC_WS_IDLE_TIMEOUT_S", default_value_t = config::DEFAULT_WS_IDLE_TIMEOUT_S, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ws_idle_timeout_s: u64,
    /// Seconds between the server's pings on a WebSocket connection; one that sent nothing
    /// (not even a pong) between two pings is closed (code 1011).
    #[arg(long, env = "WASMRPC_WS_PING_INTERVAL_S", default_value_t = config::DEFAULT_WS_PING_INTERVAL_S, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ws_ping_interval_s: u64,
    /// Time a client has to send a request's headers, in milliseconds; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "WASMRPC_HEADER_TIMEOUT_MS", default_value_t = config::DEFAULT_HEADER_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body once its headers arrived, in milliseconds;
    /// a slower body is answered 408.
    #[arg(long, env = "WASMRPC_BODY_TIMEOUT_MS", default_value_t = config::DEFAULT_BODY_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,
    /// Token that admin requests (PUT, DELETE) must send as `Authorization: Bearer <token>`.
    /// Without one, only loopback clients may deploy.
    #[arg(long, env = "WASMRPC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Deploy every DIR/*.wasm under its file stem, and redeploy on change.
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// Reset instance memory by clearing every kept page instead of only the
    /// pages a call dirtied (found with the kernel's PAGEMAP_SCAN). The scan
    /// is also off, by itself, while swap is active.
    #[arg(long)]
    pub no_pagemap_scan: bool,
    /// Bound guest memory with guard pages and signals instead of explicit
    /// checks in compiled code: guest code runs faster (about 12% on a 10 KB
    /// JSON call), but each call that grows its memory costs two mprotect
    /// calls, which flush the TLB of every core (math.add at 64 connections:
    /// a third fewer calls per second).
    #[arg(long, env = "WASMRPC_GUARD_PAGES")]
    pub guard_pages: bool,
    /// Fresh instances made ahead of calls, across all procedures: a call takes one (made,
    /// never called) and the next is made, and the used one dropped, after the answer is
    /// written, while the server has idle time. 0: every call makes its instance itself.
    #[arg(long, env = "WASMRPC_READY_INSTANCES", default_value_t = config::DEFAULT_READY_INSTANCES as u64, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub ready_instances: u64,
    /// Idle instances kept between calls, across all procedures, for versions deployed with
    /// `?reuse=N` (an instance serves up to N calls): past it the longest idle is dropped.
    /// 0: none is kept, and every call gets a fresh instance.
    #[arg(long, env = "WASMRPC_MAX_IDLE_INSTANCES", default_value_t = config::DEFAULT_MAX_IDLE_INSTANCES as u64, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub max_idle_instances: u64,
    /// Compiled code kept in memory, across all procedures, in MiB: a procedure's code is loaded
    /// at its first call, and past this the least recently called is unloaded (its next call loads
    /// it again from the compiled-code cache, in milliseconds). Identical code counts once.
    #[arg(long, env = "WASMRPC_MAX_LOADED_MIB", default_value_t = config::DEFAULT_MAX_LOADED_MIB, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub max_loaded_mib: u64,
    /// Bytes of key-value data (keys and values, all buckets) one procedure may keep, in MiB.
    /// A write past it fails with a message to the guest; deletes always work.
    #[arg(long, env = "WASMRPC_KV_QUOTA_MIB", default_value_t = crate::kv::DEFAULT_QUOTA_MIB)]
    pub kv_quota_mib: u64,
    /// Longest key-value key, in bytes (up to 4096).
    #[arg(long, env = "WASMRPC_KV_MAX_KEY_BYTES", default_value_t = crate::kv::DEFAULT_MAX_KEY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::kv::MAX_KEY_BYTES_LIMIT as u64))]
    pub kv_max_key_bytes: u64,
    /// Largest key-value value, in KiB (up to 65536).
    #[arg(long, env = "WASMRPC_KV_MAX_VALUE_KIB", default_value_t = crate::kv::DEFAULT_MAX_VALUE_KIB as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::kv::MAX_VALUE_KIB_LIMIT as u64))]
    pub kv_max_value_kib: u64,
    /// Most keys in one page of `list-keys` (and of the admin API's key listing).
    #[arg(long, env = "WASMRPC_KV_PAGE_KEYS", default_value_t = crate::kv::DEFAULT_PAGE_KEYS as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub kv_page_keys: u64,
    /// Outgoing HTTP requests one call may send (wasi:http); past it a request fails with
    /// `internal-error`.
    #[arg(long, env = "WASMRPC_MAX_OUTBOUND_REQUESTS", default_value_t = crate::outbound::DEFAULT_MAX_REQUESTS)]
    pub max_outbound_requests: u32,
    /// Response body bytes one call may receive over all its outgoing requests, in MiB; past
    /// it a request fails with `HTTP-response-body-size`.
    #[arg(long, env = "WASMRPC_MAX_OUTBOUND_RESPONSE_MIB", default_value_t = crate::outbound::DEFAULT_MAX_RESPONSE_MIB,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_outbound_response_mib: u64,
    /// Time an outgoing request may take to resolve its host and connect, in milliseconds
    /// (the call's time limit bounds the rest).
    #[arg(long, env = "WASMRPC_OUTBOUND_CONNECT_TIMEOUT_MS", default_value_t = crate::outbound::DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub outbound_connect_timeout_ms: u64,
    /// Do not serve the web dashboard at `GET /` (the JSON API is unchanged).
    #[arg(long, env = "WASMRPC_NO_DASHBOARD", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_dashboard: bool,
    /// Share procedures with other replicas through PostgreSQL:
    /// postgres://USER@HOST:PORT/DB (password from the URL, --registry-password-file or
    /// PGPASSWORD; never logged). Without it the data dir is the registry. Either way the data
    /// dir keeps this server's compiled code.
    #[arg(long, env = "WASMRPC_REGISTRY", hide_env_values = true, value_name = "URL")]
    pub registry: Option<String>,
    /// File holding the password of the --registry user (one line).
    #[arg(long, env = "WASMRPC_REGISTRY_PASSWORD_FILE", value_name = "FILE", requires = "registry")]
    pub registry_password_file: Option<PathBuf>,
    /// Calls per second (and burst: RATE/BURST, default RATE) per caller key without a rate of
    /// its own, and per client address for calls without a key. Each call of a batch counts; past
    /// it a call answers -32005, a request none of whose calls fit HTTP 429. Kept per replica.
    #[arg(long, env = "WASMRPC_RATE_LIMIT", value_name = "RATE[/BURST]", value_parser = parse_rate)]
    pub rate_limit: Option<crate::keys::limit::Rate>,
    /// Refuse JSON-RPC requests without a caller key (`Authorization: Bearer KEY`, from
    /// `wasmrpc keys create`) with HTTP 401. Without it a key is optional.
    #[arg(long, env = "WASMRPC_REQUIRE_CALL_KEY", value_parser = clap::builder::BoolishValueParser::new())]
    pub require_call_key: bool,
    /// Export a span per call over OTLP/HTTP (protobuf) to URL/v1/traces, e.g.
    /// http://127.0.0.1:4318 (a collector or agent; plain http). A request's `traceparent` is
    /// continued with or without it.
    #[arg(long, env = "WASMRPC_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, env = "WASMRPC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--rate-limit`'s value.
fn parse_rate(text: &str) -> Result<crate::keys::limit::Rate, String> {
    crate::keys::limit::Rate::parse(text)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        if self.max_batch == 0 {
            bail!("--max-batch must be at least 1");
        }
        if self.max_concurrent_calls == Some(0) {
            bail!("--max-concurrent-calls must be at least 1");
        }
        let token = self.admin_token.clone().filter(|t| !t.is_empty());
        if token.is_none() && !config::listen_is_loopback(&self.listen) {
            bail!(
                "refusing to listen on {} without an admin token: anyone who can reach it could \
                 deploy code. Set --admin-token (or WASMRPC_ADMIN_TOKEN), or listen on 127.0.0.1",
                self.listen
            );
        }
        let mut config = Config::new(self.data_dir.clone());
        config.time_limit = Duration::from_millis(self.time_limit_ms);
        config.memory_limit_bytes = self.memory_limit_mib << 20;
        config.max_module_bytes = self.max_module_mib << 20;
        config.max_body_bytes = self.max_body_kib << 10;
        config.max_batch = self.max_batch;
        config.max_response_bytes = self.max_response_mib << 20;
        config.cors_origins = self
            .cors_origins
            .iter()
            .map(|o| crate::cors::parse_origin(o))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?;
        config.max_concurrent_calls = self.max_concurrent_calls.unwrap_or_else(config::default_concurrent_calls);
        config.max_call_depth = self.max_call_depth;
        config.max_nested_calls = self.max_nested_calls;
        config.keep_versions = usize::try_from(self.keep_versions).unwrap_or(config::DEFAULT_KEEP_VERSIONS);
        config.max_connections = usize::try_from(self.max_connections).unwrap_or(config::DEFAULT_MAX_CONNECTIONS);
        config.header_read_timeout = Duration::from_millis(self.header_timeout_ms);
        config.ws = crate::ws::Limits {
            max_in_flight: usize::try_from(self.ws_max_in_flight).unwrap_or(config::DEFAULT_WS_MAX_IN_FLIGHT),
            idle_timeout: Duration::from_secs(self.ws_idle_timeout_s),
            ping_interval: Duration::from_secs(self.ws_ping_interval_s),
        };
        config.body_read_timeout = Duration::from_millis(self.body_timeout_ms);
        config.admin_token = token;
        config.watch_dir = self.watch.clone();
        config.pagemap_scan = !self.no_pagemap_scan;
        config.guard_pages = self.guard_pages;
        config.ready_instances = usize::try_from(self.ready_instances).unwrap_or(config::DEFAULT_READY_INSTANCES);
        config.max_loaded_bytes = self.max_loaded_mib << 20;
        config.max_idle_instances =
            usize::try_from(self.max_idle_instances).unwrap_or(config::DEFAULT_MAX_IDLE_INSTANCES);
        config.dashboard = !self.no_dashboard;
        if let Some(endpoint) = &self.otlp_endpoint {
            crate::trace::traces_url(endpoint).map_err(anyhow::Error::msg)?;
        }
        config.otlp_endpoint = self.otlp_endpoint.clone();
        config.outbound = crate::outbound::Limits {
            max_requests: self.max_outbound_requests,
            max_response_bytes: self.max_outbound_response_mib << 20,
            connect_timeout: Duration::from_millis(self.outbound_connect_timeout_ms),
        };
        config.kv = crate::kv::KvLimits {
            max_key_bytes: usize::try_from(self.kv_max_key_bytes).unwrap_or(crate::kv::DEFAULT_MAX_KEY_BYTES),
            max_value_bytes: usize::try_from(self.kv_max_value_kib << 10).unwrap_or(usize::MAX),
            quota_bytes: self.kv_quota_mib.saturating_mul(1 << 20),
            page_keys: usize::try_from(self.kv_page_keys).unwrap_or(crate::kv::DEFAULT_PAGE_KEYS),
        };
        config.rate_limit = self.rate_limit;
        config.require_call_key = self.require_call_key;
        config.registry = match &self.registry {
            Some(url) => Some(crate::store::pg::PgTarget::parse(url, self.registry_password()?)?),
            None => None,
        };
        Ok(config)
    }

    /// The registry password from --registry-password-file, else `PGPASSWORD`.
    fn registry_password(&self) -> anyhow::Result<Option<String>> {
        match &self.registry_password_file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read --registry-password-file {}", file.display()))?;
                Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
            }
            None => Ok(std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty())),
        }
    }
}
