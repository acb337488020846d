//! Test-only: calls another wasmrpc server's `math` through the typed stub
//! `wasmrpc stub --lang rust --guest --remote --only math` generated
//! (`src/math_remote.rs`, checked in; tests/e2e/remote.rs checks it is
//! fresh). The server must be granted with `?allow-outbound=URL`.

// Generated: kept byte for byte as `wasmrpc stub` writes it (`--check`).
#[rustfmt::skip]
mod math_remote;

use std::time::Duration;

use math_remote::Procedures as _;
use wasmrpc_guest::remote::Client;
use wasmrpc_guest::serde_json::Value;
use wasmrpc_guest::{procedure, Error};

/// `a + b`, computed by `math.add` of the wasmrpc server at `url`.
#[procedure]
fn add_remote(url: String, a: i64, b: i64) -> Result<i64, Error> {
    Client::new(&url).math().add(a, b)
}

/// `a / b`, computed by `math.divide` of the server at `url`; its error
/// (division by zero) passes through unchanged.
#[procedure]
fn divide_remote(url: String, a: f64, b: f64) -> Result<f64, Error> {
    Client::new(&url).math().divide(a, b)
}

/// Calls `method` of the server at `url` with `params`, untyped, giving up
/// after `timeout_ms` (connecting, then waiting for the answer) if given.
#[procedure]
fn call_remote(url: String, method: String, params: Value, timeout_ms: Option<u64>) -> Result<Value, Error> {
    let mut server = Client::new(&url);
    if let Some(ms) = timeout_ms {
        server = server.with_timeout(Duration::from_millis(ms));
    }
    server.call(&method, params)
}

wasmrpc_guest::export!(add_remote, divide_remote, call_remote);
