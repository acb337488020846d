//! `get_data` from the JSON-RPC 2.0 specification's examples.

/// Returns `["hello", 5]`.
#[wasmrpc_guest::procedure]
fn get_data() -> (String, i64) {
    ("hello".to_owned(), 5)
}

wasmrpc_guest::export!(get_data);
