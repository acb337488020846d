//! `update` from the JSON-RPC 2.0 specification's examples, called as a
//! notification with `[1, 2, 3, 4, 5]`.

/// Accepts up to five numbers and logs them.
#[wasmrpc_guest::procedure]
fn update(a: Option<i64>, b: Option<i64>, c: Option<i64>, d: Option<i64>, e: Option<i64>) {
    wasmrpc_guest::log::info!("update {:?}", [a, b, c, d, e]);
}

wasmrpc_guest::export!(update);
