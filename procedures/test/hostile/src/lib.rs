//! Test-only: a hostile guest. Each method tries something a sandboxed
//! procedure must not be able to do to the server, or probes what the
//! sandbox grants. Never deployed by `make run`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmrpc_guest::procedure;
use wasmrpc_guest::serde_json::{json, Value};

/// Loops forever.
#[procedure]
fn spin() -> u64 {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Panics with "boom".
#[procedure]
fn panic() -> u32 {
    panic!("boom")
}

/// Executes `unreachable`.
#[procedure]
fn unreachable() -> u32 {
    core::arch::wasm32::unreachable()
}

/// Recurses until the stack runs out.
#[procedure]
fn recurse() -> u64 {
    deeper(black_box(1))
}

#[allow(unconditional_recursion)]
fn deeper(n: u64) -> u64 {
    let frame = black_box([n; 16]);
    deeper(frame[3].wrapping_add(1)).wrapping_add(frame[7])
}

/// Allocates without end.
#[procedure]
fn hog() -> usize {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
        black_box(&blocks);
    }
}

/// Returns a string of `mib` MiB.
#[procedure]
fn huge_output(mib: usize) -> String {
    "x".repeat(mib << 20)
}

/// Tries to read a file: its contents, or the error.
#[procedure]
fn read_file(path: String) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| format!("error: {e}"))
}

/// Tries to list a directory: the names in it, or the error.
#[procedure]
fn list_dir(path: String) -> String {
    match std::fs::read_dir(&path) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("error: {e}"),
    }
}

/// The environment variables and arguments it was given.
#[procedure]
fn read_env() -> Value {
    let vars: wasmrpc_guest::serde_json::Map<String, Value> = std::env::vars().map(|(k, v)| (k, v.into())).collect();
    let args: Vec<String> = std::env::args().collect();
    json!({"vars": vars, "args": args})
}

/// Tries to open a TCP connection to `addr`: "connected" or the error.
#[procedure]
fn connect(addr: String) -> String {
    match std::net::TcpStream::connect(&addr) {
        Ok(_) => "connected".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

/// Logs "sleeping `ms` ms" through the host's `log` (tests wait for that
/// line to know the call is running), then sleeps `ms` milliseconds.
#[procedure]
fn sleep(ms: u64) {
    wasmrpc_guest::write_log(wasmrpc_guest::Level::Info, &format!("sleeping {ms} ms"));
    std::thread::sleep(Duration::from_millis(ms));
}

/// Writes `message` to stdout and to stderr.
#[procedure]
fn print(message: String) {
    println!("{message}");
    eprintln!("{message}");
}

/// Writes `kib` KiB to stdout, in lines of 1 KiB; returns how many lines.
#[procedure]
fn flood(kib: usize) -> usize {
    let line = "y".repeat(1023);
    for _ in 0..kib {
        println!("{line}");
    }
    kib
}

/// Writes `message` to the server log through the host's `log`.
#[procedure]
fn log(message: String) {
    wasmrpc_guest::write_log(wasmrpc_guest::Level::Warn, &message);
}

/// Answers its argument.
#[procedure]
fn echo(value: Value) -> Value {
    value
}

/// The wall clock, in milliseconds since 1970.
#[procedure]
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A random number (from the host's random source, via std's hasher seed).
#[procedure]
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// A method whose name has a dot: called as `hostile.scale.point` (the
/// module is what comes before the first dot).
#[procedure(name = "scale.point")]
fn scale_point(x: f64, factor: f64) -> f64 {
    x * factor
}

/// One parameter (for measuring the cost of unmarshalling against `ten`).
#[procedure]
fn one(a: i64) -> i64 {
    a
}

/// Ten parameters, summed.
#[procedure]
#[allow(clippy::too_many_arguments)]
fn ten(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64, i: i64, j: i64) -> i64 {
    [a, b, c, d, e, f, g, h, i, j].iter().fold(0, |sum, x| sum.wrapping_add(*x))
}

/// Calls this instance has served: 1 in a fresh instance.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Zero in a fresh instance (it lives in `.bss`); every call dirties it.
static BUFFER: Mutex<[u8; 64 * 1024]> = Mutex::new([0; 64 * 1024]);

/// Counts this call in a static counter and checks that a static buffer is
/// all zeros, then fills the buffer with 0xA5: `{"calls": 1, "clean": true}`
/// on every call, unless an instance's memory outlives its call.
#[procedure]
fn fresh() -> Value {
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let mut buffer = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
    let clean = black_box(&*buffer).iter().all(|b| *b == 0);
    buffer.fill(0xA5);
    black_box(&*buffer);
    json!({"calls": calls, "clean": clean})
}

/// Bytes of marker written per place (heap and stack).
const MARK_HEAP: usize = 2 << 20;
const MARK_STACK: usize = 16 * 1024;

/// The 32-byte marker for `seed` (never in the request: the call only gets
/// the number), written into `out`.
fn marker(seed: u64, out: &mut [u8]) {
    let mut x = seed | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

/// Writes the marker of `seed` all over 2 MiB of heap and 16 KiB of stack,
/// and leaves it there: a later call that finds it read this call's memory.
#[procedure]
fn mark(seed: u64) -> usize {
    let mut one = [0u8; 32];
    marker(seed, &mut one);
    let heap: Vec<u8> = one.iter().copied().cycle().take(MARK_HEAP).collect();
    let mut stack = [0u8; MARK_STACK];
    for chunk in stack.chunks_mut(32) {
        chunk.copy_from_slice(&one);
    }
    black_box(&stack);
    black_box(heap).len() + stack.len()
}

/// Scans the whole linear memory for the marker of `seed` (except the one
/// copy it keeps to compare with): `{"found": N, "scanned": BYTES}`. With
/// `plant`, it first writes the marker into heap and stack itself, as `mark`
/// does, so a test can check that the scan finds what is there. With
/// `grow_to`, it first grows memory (`memory.grow`, writing nothing) to at
/// least that many bytes, so the scan also reads pages past the initial
/// size that an earlier call in the same pool slot may have grown and dirtied.
#[procedure]
fn scan(seed: u64, plant: bool, grow_to: Option<usize>) -> Value {
    if let Some(bytes) = grow_to {
        let have = core::arch::wasm32::memory_size(0) * 65536;
        if bytes > have {
            core::arch::wasm32::memory_grow(0, (bytes - have).div_ceil(65536));
        }
    }
    let mut needle = vec![0u8; 32];
    marker(seed, &mut needle);
    let mut stack = [0u8; MARK_STACK];
    let heap = plant.then(|| {
        for chunk in stack.chunks_mut(32) {
            chunk.copy_from_slice(&needle);
        }
        needle.iter().copied().cycle().take(MARK_HEAP).collect::<Vec<u8>>()
    });
    black_box(&stack);
    let (found, scanned) = scan_memory(&needle);
    black_box(heap);
    json!({"found": found, "scanned": scanned})
}

/// Counts the copies of `needle` in linear memory, skipping
/// `needle` itself. Every read is volatile, so no copy of memory is made.
#[allow(unsafe_code)]
fn scan_memory(needle: &[u8]) -> (usize, usize) {
    let end = core::arch::wasm32::memory_size(0) * 65536;
    let own = needle.as_ptr() as usize;
    let mut found = 0;
    // Address 0 is left out (a null pointer to Rust). Buffers have no
    // particular alignment, so every address is a candidate.
    for addr in 1..end.saturating_sub(needle.len()) {
        if addr == own {
            continue;
        }
        // SAFETY: `addr..addr + 32` lies inside linear memory (memory_size),
        // and a wasm load from any in-bounds address is defined; volatile
        // keeps the compiler from assuming anything about what it reads.
        let hit =
            needle.iter().enumerate().all(|(i, b)| unsafe { core::ptr::read_volatile((addr + i) as *const u8) } == *b);
        found += usize::from(hit);
    }
    (found, end)
}

wasmrpc_guest::export!(
    fresh,
    mark,
    scan,
    spin,
    panic,
    unreachable,
    recurse,
    hog,
    huge_output,
    flood,
    read_file,
    list_dir,
    read_env,
    connect,
    sleep,
    print,
    log,
    echo,
    now,
    random,
    one,
    ten,
    scale_point
);
