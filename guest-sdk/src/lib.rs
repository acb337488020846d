//! `wasmrpc-guest`: write a wasmrpc procedure as plain typed Rust functions.
//!
//! This crate is the server-side stub of a wasmrpc procedure component. It
//! turns the JSON params of a call into your function's arguments (by
//! position or by name, `Option` parameters may be left out), its return
//! value or error back into JSON, and generates the module's `describe`
//! (OpenRPC Method Objects with JSON Schemas) at compile time.
//!
//! ```no_run
//! use wasmrpc_guest::{procedure, Error};
//!
//! /// Adds two integers.
//! #[procedure]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! /// Divides `a` by `b`.
//! ///
//! /// Fails with code 1 when `b` is zero.
//! #[procedure]
//! fn divide(a: f64, b: f64) -> Result<f64, Error> {
//!     if b == 0.0 {
//!         return Err(Error::new(1, "division by zero").with_data(serde_json::json!({"a": a})));
//!     }
//!     Ok(a / b)
//! }
//!
//! wasmrpc_guest::export!(add, divide);
//! ```
//!
//! Build the crate (`crate-type = ["cdylib"]`) with
//! `cargo build --release --target wasm32-wasip2`, deploy the `.wasm` with
//! `curl -X PUT --data-binary @target/wasm32-wasip2/release/NAME.wasm
//! http://127.0.0.1:8080/procedures/NAME` and call `NAME.add`.
//!
//! * Parameters may be of any type that is `serde::Deserialize` and
//!   `schemars::JsonSchema`; the result any `serde::Serialize +
//!   schemars::JsonSchema`, or a `Result<T, E>` where `E: Into<Error>`.
//! * Wrong params answer `-32602 Invalid params` with a message naming the
//!   parameter; an unknown method `-32601 Method not found`.
//! * A panic ends the call as a trap (`-32000`), its message in `data.stderr`.
//! * A procedure that needs no WASI (no files, clocks, randomness or
//!   `println!`; it may log) can be built for `wasm32-unknown-unknown` and
//!   wrapped with `wasmrpc component`: a call then skips linking std's WASI
//!   imports, and the SDK logs through `host.log-packed` (scalars only), so
//!   the component is one core instance (`math.add`: 55,100 instructions
//!   per call instead of 90,200 with WASI). `wasmrpc
//!   dev` does this for a crate whose Cargo.toml says
//!   `[package.metadata.wasmrpc] wasi = false`.
//! * [`write_log`] (and the `log` crate's macros, re-exported as [`log`])
//!   write to the server's log, tagged with the procedure.
//! * [`call`] calls another deployed procedure through the server:
//!   `wasmrpc_guest::call::<i64>("math.add", (2, 3))?` (by position) or
//!   `call("math.add", json!({"a": 2, "b": 3}))` (by name); `?` passes the
//!   callee's error on unchanged.
//! * [`kv`] keeps durable state between calls in the server's key-value
//!   store (`wasi:keyvalue`): `kv::open_default()?.increment("visits", 1)?`;
//!   `?` turns its errors into -32010 errors ([`Error::KEY_VALUE`]).
//! * [`config`] reads the variables and secrets an operator set for the
//!   procedure (`wasi:config`): `config::get("greeting")?` is an
//!   `Option<String>`; `?` turns its errors into -32011 errors
//!   ([`Error::CONFIG`]).
//! * `remote` (the `remote` feature) calls the procedures of another
//!   wasmrpc server over outgoing HTTP, which the deploy must grant:
//!   `remote::Client::new("http://b:8080").call::<i64>("math.add", (2, 3))?`;
//!   the remote procedure's error passes through, and a call that got no
//!   answer (refused, nothing listening, timed out) is a -32012 error
//!   ([`Error::REMOTE`]) naming the URL.
//! * `http` (the `http` feature) sends any HTTP request through
//!   `wasi:http`: the `wstd` crate's client, re-exported.

// A public API: everything a procedure author can name is documented.
#![warn(missing_docs)]

use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use wasmrpc_guest_macros::{export, procedure};

/// `log::info!` and friends go to the server's log (installed on every call).
pub use ::log;
pub use schemars;
pub use serde;
pub use serde_json;

// Lets the macros name `::wasmrpc_guest` also inside this crate's own tests.
extern crate self as wasmrpc_guest;

#[cfg(all(feature = "arena", any(test, all(target_family = "wasm", not(target_feature = "atomics")))))]
mod arena;
mod client;
pub mod config;
mod describe;
pub mod kv;
mod params;
#[cfg(feature = "remote")]
pub mod remote;

/// Outgoing HTTP requests through `wasi:http` (the `http` feature): the
/// [`wstd`](https://docs.rs/wstd) crate's `http` module, and its
/// `block_on` to wait for a request from a (synchronous) procedure.
///
/// The server sends a procedure's requests only to the origins its deploy
/// grants (`?allow-outbound=https://api.example.com`); a refused one fails
/// with `wasi:http`'s `HTTP-request-denied` error code.
///
/// ```ignore
/// use wasmrpc_guest::http::{block_on, Client, Request, Body};
///
/// let request = Request::get("https://api.example.com/v1/rates").body(Body::empty())?;
/// let text = block_on(async {
///     let mut response = Client::new().send(request).await?;
///     Ok::<_, wasmrpc_guest::http::Error>(response.body_mut().str_contents().await?.to_owned())
/// })?;
/// ```
#[cfg(feature = "http")]
pub mod http {
    pub use wstd::http::*;
    pub use wstd::runtime::block_on;
}

pub use client::{call, call_json};

/// Calls allocate from a bump arena first (see `arena.rs`): fewer memory
/// pages touched per call, each of which the server must clear afterwards.
#[cfg(all(feature = "arena", target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

/// The bindings of `wit/procedure.wit`'s world, of the
/// `wasi:keyvalue@0.2.0-draft2` interfaces [`kv`] calls and of
/// `wasi:config/store@0.2.0-rc.1` ([`config`]), generated by wit-bindgen.
/// A component imports only the functions its code calls (wit-component
/// drops the rest), so a procedure that does not use [`kv`] (or [`config`],
/// or [`call`]) has no `wasi:keyvalue` (or `wasi:config`, or `client`) import.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        inline: "
            package wasmrpc:guest-sdk;
            world guest {
                include wasmrpc:procedure/procedure@0.1.2;
                include wasi:keyvalue/imports@0.2.0-draft2;
                include wasi:config/imports@0.2.0-rc.1;
            }
        ",
        world: "guest",
        path: ["../wit", "../wit/keyvalue/draft2", "../wit/config/rc1"],
        // Interfaces of other packages than the world's: generate them here.
        generate_all,
        pub_export_macro: true,
        export_macro_name: "export_stub",
        default_bindings_module: "::wasmrpc_guest::bindings",
    });
}

/// The error a procedure answers with: a JSON-RPC error object.
///
/// Return it from a `#[procedure]` as `Result<T, Error>`, or return
/// `Result<T, E>` with your own `E: Into<Error>`; the caller receives
/// `{"code": code, "message": message, "data": data}` as the call's `error`.
/// Use your own codes outside -32768..-32000 (which JSON-RPC reserves);
/// errors made from strings (`?` on a `Result<_, String>`, or
/// `Err("...".into())`) get [`Error::APPLICATION`].
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The JSON-RPC error code the caller receives.
    pub code: i32,
    /// A short description, one sentence.
    pub message: String,
    /// Optional details, any JSON; left out of the answer when `None`.
    pub data: Option<Value>,
}

impl Error {
    /// The code of errors made from a string or another error: 1.
    pub const APPLICATION: i32 = 1;
    /// JSON-RPC's "Invalid params".
    pub const INVALID_PARAMS: i32 = -32602;
    /// JSON-RPC's "Method not found".
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// JSON-RPC's "Internal error".
    pub const INTERNAL: i32 = -32603;
    /// A [`kv`] operation failed (`?` on a [`kv::KvError`]): the message
    /// says what failed, `data.kind` which kind of failure it was.
    pub const KEY_VALUE: i32 = -32010;
    /// A [`config`] read failed (`?` on a [`config::ConfigError`]): the
    /// message says what failed, `data.kind` which kind of failure it was.
    pub const CONFIG: i32 = -32011;
    /// A call through a `remote::Client` got no JSON-RPC answer (the `remote`
    /// feature): the deploy does not grant the server, nothing listens
    /// there, it timed out, or what answered is no JSON-RPC server. The
    /// message names the URL (and, when refused, the `--allow-outbound`
    /// grant to add), `data.error` the `wasi:http` error code.
    pub const REMOTE: i32 = -32012;

    /// An error with a code and a message, and no `data`.
    pub fn new(code: i32, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), data: None }
    }

    /// The same error with `data` attached, replacing any before.
    ///
    /// `data` that cannot be serialized to JSON (a map with non-string keys,
    /// a `Serialize` impl that fails) leaves the error without `data`
    /// rather than failing the call a second time.
    pub fn with_data(mut self, data: impl Serialize) -> Error {
        self.data = serde_json::to_value(data).ok();
        self
    }

    /// A `-32602 Invalid params` error: for params that deserialize but
    /// break a rule the types cannot say (a range, a relation between two
    /// parameters). The SDK answers this itself for params of the wrong
    /// type, missing or unknown.
    pub fn invalid_params(message: impl Into<String>) -> Error {
        Error::new(Error::INVALID_PARAMS, message)
    }

    /// An error with code [`Error::APPLICATION`] and `err`'s `Display`
    /// text as its message: `.map_err(Error::from_error)?` on any error.
    pub fn from_error(err: impl fmt::Display) -> Error {
        Error::new(Error::APPLICATION, err.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(Error::APPLICATION, message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::new(Error::APPLICATION, message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Error {
        Error::from_error(err)
    }
}

/// `Result<T, wasmrpc_guest::Error>`, the usual return type of a
/// `#[procedure]` that can fail; `E` may be set to another error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The levels of [`write_log`], from `Error` to `Trace`; the server writes each
/// at its own log level.
pub use bindings::wasmrpc::procedure::host::Level;

/// Writes `message` to the server's log at `level`, tagged with the
/// procedure and the call.
///
/// The `log` crate's macros (`log::info!`, ... re-exported as
/// [`wasmrpc_guest::log`](mod@log)) end up here too. Outside a Wasm build
/// (native tests of a procedure) the line goes to standard error instead.
/// Logging cannot fail: the server escapes control characters (a message
/// is one log line), cuts long messages, and drops messages once a call has
/// written 64 KiB of messages (stdout and stderr have a budget each too).
pub fn write_log(level: Level, message: &str) {
    // Without WASI, `log-packed`: if nothing else in the component needs its
    // memory, the component is then one core instance instead of three (a
    // shim and its fixup), about a fifth less work per call.
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    {
        let mut chunks = message.as_bytes().chunks(32).peekable();
        let mut packed = [0u8; 32];
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let last = chunks.peek().is_none();
            packed.fill(0);
            packed[..chunk.len()].copy_from_slice(chunk);
            let word = |i: usize| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&packed[i * 8..i * 8 + 8]);
                u64::from_le_bytes(bytes)
            };
            // A chunk is at most 32 bytes: its length fits a u8.
            let len = chunk.len() as u8;
            bindings::wasmrpc::procedure::host::log_packed(level, len, last, word(0), word(1), word(2), word(3));
            if last {
                break;
            }
        }
    }
    #[cfg(all(target_arch = "wasm32", not(target_os = "unknown")))]
    bindings::wasmrpc::procedure::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// The `log` crate's facade, forwarding to [`write_log`].
struct HostLogger;

impl ::log::Log for HostLogger {
    fn enabled(&self, _: &::log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &::log::Record<'_>) {
        let level = match record.level() {
            ::log::Level::Error => Level::Error,
            ::log::Level::Warn => Level::Warn,
            ::log::Level::Info => Level::Info,
            ::log::Level::Debug => Level::Debug,
            ::log::Level::Trace => Level::Trace,
        };
        write_log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// What the macros generate and use; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::describe::{describe, method_object, param_object, result_object};
    pub use crate::params::Params;
    use crate::Error;
    use serde::Serialize;

    /// One exported function, as `#[procedure]` describes it.
    #[derive(Clone, Copy)]
    pub struct Method {
        /// The method name (without the module prefix).
        pub name: &'static str,
        /// Its OpenRPC Method Object.
        pub describe: fn() -> serde_json::Value,
        /// Runs it with the JSON params text.
        pub call: fn(&str) -> Result<String, Error>,
    }

    /// The `call` export: finds `method` and runs it.
    pub fn dispatch(methods: &[Method], method: &str, params: &str) -> Result<String, Error> {
        if ::log::set_logger(&crate::HostLogger).is_ok() {
            ::log::set_max_level(::log::LevelFilter::Trace);
        }
        // Built without WASI (wasm32-unknown-unknown), std has no stderr:
        // the panic message goes to the server as an error-level log line,
        // which the trap's `data.stderr` carries as it would stderr.
        #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
        std::panic::set_hook(Box::new(|info| crate::write_log(crate::Level::Error, &info.to_string())));
        match methods.iter().find(|m| m.name == method) {
            Some(found) => (found.call)(params),
            None => Err(Error::new(Error::METHOD_NOT_FOUND, "Method not found")
                .with_data(serde_json::json!({ "method": method }))),
        }
    }

    /// The JSON text of a successful result.
    pub fn ok<T: Serialize>(value: T) -> Result<String, Error> {
        serde_json::to_string(&value).map_err(|e| {
            Error::new(Error::INTERNAL, "Internal error")
                .with_data(serde_json::json!({ "reason": format!("cannot serialize the result: {e}") }))
        })
    }

    /// The wit-level error of an [`Error`].
    pub fn rpc_error(err: Error) -> crate::bindings::exports::wasmrpc::procedure::stub::RpcError {
        crate::bindings::exports::wasmrpc::procedure::stub::RpcError {
            code: err.code,
            message: err.message,
            data: err.data.map(|d| d.to_string()),
        }
    }
}
