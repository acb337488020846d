//! `sum` from the JSON-RPC 2.0 specification's examples: `[1, 2, 4]` gives 7.

/// Adds up three numbers; any left out count as 0.
#[wasmrpc_guest::procedure]
fn sum(a: Option<i64>, b: Option<i64>, c: Option<i64>) -> i64 {
    [a, b, c].into_iter().flatten().fold(0, i64::wrapping_add)
}

wasmrpc_guest::export!(sum);
