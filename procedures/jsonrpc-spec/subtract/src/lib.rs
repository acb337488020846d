//! `subtract` from the JSON-RPC 2.0 specification's examples: call it with
//! `[42, 23]` or `{"minuend": 42, "subtrahend": 23}`.

/// Subtracts `subtrahend` from `minuend`.
#[wasmrpc_guest::procedure]
fn subtract(minuend: i64, subtrahend: i64) -> i64 {
    minuend.wrapping_sub(subtrahend)
}

wasmrpc_guest::export!(subtract);
