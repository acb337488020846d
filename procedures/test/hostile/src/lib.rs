//! Test-only: a hostile guest. Each method tries something a sandboxed
//! procedure must not be able to do to the server, or probes what the
//! sandbox grants. Never deployed by `make run`.

use std::hint::black_box;
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

/// Sleeps `ms` milliseconds.
#[procedure]
fn sleep(ms: u64) {
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
    wasmrpc_guest::log(wasmrpc_guest::Level::Warn, &message);
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

wasmrpc_guest::export!(
    spin,
    panic,
    unreachable,
    recurse,
    hog,
    huge_output,
    flood,
    read_file,
    read_env,
    connect,
    sleep,
    print,
    log,
    echo,
    now,
    random,
    one,
    ten
);
