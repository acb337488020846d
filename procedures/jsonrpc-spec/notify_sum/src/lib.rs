//! `notify_sum` from the JSON-RPC 2.0 specification's examples.

/// Logs the sum of three numbers.
#[wasmrpc_guest::procedure]
fn notify_sum(a: i64, b: i64, c: i64) {
    wasmrpc_guest::log::info!("sum {}", a.wrapping_add(b).wrapping_add(c));
}

wasmrpc_guest::export!(notify_sum);
