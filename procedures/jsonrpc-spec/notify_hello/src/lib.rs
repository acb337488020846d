//! `notify_hello` from the JSON-RPC 2.0 specification's examples.

/// Logs a hello for `n`.
#[wasmrpc_guest::procedure]
fn notify_hello(n: i64) {
    wasmrpc_guest::log::info!("hello {n}");
}

wasmrpc_guest::export!(notify_hello);
