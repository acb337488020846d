//! Test-only: version 1 of a procedure, for the hot-swap tests.

/// Which version this is: 1.
#[wasmrpc_guest::procedure]
fn version() -> u32 {
    1
}

wasmrpc_guest::export!(version);
