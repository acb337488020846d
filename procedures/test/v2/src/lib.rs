//! Test-only: version 2 of a procedure, for the hot-swap tests.

/// Which version this is: 2.
#[wasmrpc_guest::procedure]
fn version() -> u32 {
    2
}

/// Logs "sleeping `ms` ms" through the host's `log` (tests wait for that
/// line to know the call is running), sleeps `ms` milliseconds, then says
/// which version this is: 2. For calls that span a redeploy.
#[wasmrpc_guest::procedure]
fn slow_version(ms: u64) -> u32 {
    wasmrpc_guest::write_log(wasmrpc_guest::Level::Info, &format!("sleeping {ms} ms"));
    std::thread::sleep(std::time::Duration::from_millis(ms));
    2
}

wasmrpc_guest::export!(version, slow_version);
