//! Test-only: version 2 of a procedure, for the hot-swap tests.

/// Which version this is: 2.
#[wasmrpc_guest::procedure]
fn version() -> u32 {
    2
}

wasmrpc_guest::export!(version);
