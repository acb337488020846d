//! Test-only: state that lives in an instance (statics, its memory, its
//! printing), so the tests can tell a fresh instance from a reused one
//! (`?reuse=N`) and check that a reused one serves one call at a time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use wasmrpc_guest::{procedure, Error};

static CALLS: AtomicU32 = AtomicU32::new(0);
static IDENTITY: AtomicU64 = AtomicU64::new(0);
static MARKER: Mutex<String> = Mutex::new(String::new());
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// How many calls this instance has served, this one included (1 in a
/// fresh instance).
#[procedure]
fn count() -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst) + 1
}

/// A number drawn at this instance's first call of `identity`: the same
/// answer twice means the same instance.
#[procedure]
fn identity() -> u64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    if IDENTITY.load(Ordering::SeqCst) == 0 {
        let mut bytes = [0u8; 8];
        getrandom(&mut bytes);
        IDENTITY.store(u64::from_le_bytes(bytes) | 1, Ordering::SeqCst);
    }
    IDENTITY.load(Ordering::SeqCst)
}

/// Keeps `marker` in the instance, waits `ms` (other calls run meanwhile),
/// and answers what the instance holds then: `marker`, unless another call
/// ran in this instance at the same time.
#[procedure]
fn marker(marker: String, ms: u64) -> String {
    CALLS.fetch_add(1, Ordering::SeqCst);
    *MARKER.lock().unwrap_or_else(|p| p.into_inner()) = marker;
    std::thread::sleep(Duration::from_millis(ms));
    MARKER.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Panics (a trap), after counting the call.
#[procedure]
fn trap() -> Result<u32, Error> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    panic!("trapping on purpose");
}

/// Answers the procedure's own error, after counting the call.
#[procedure]
fn fail() -> Result<u32, Error> {
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::new(7, format!("failing on purpose at call {calls}")))
}

/// Sleeps `ms`: past the time limit, the call is stopped.
#[procedure]
fn sleep(ms: u64) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(ms));
    CALLS.load(Ordering::SeqCst)
}

/// Keeps `mib` MiB more in the instance's memory; answers the calls served.
#[procedure]
fn grow(mib: u32) -> u32 {
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let size = usize::try_from(mib).unwrap_or(0) << 20;
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(vec![1u8; size]);
    calls
}

/// Prints `line` to stdout; answers the calls served.
#[procedure]
fn print(line: String) -> u32 {
    println!("{line}");
    CALLS.fetch_add(1, Ordering::SeqCst) + 1
}

/// Random bytes from WASI (`wasi:random`), through std's hasher seeds.
fn getrandom(bytes: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    for chunk in bytes.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        let value = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&value[..chunk.len()]);
    }
}

wasmrpc_guest::export!(count, identity, marker, trap, fail, sleep, grow, print);
