//! Micro benchmarks (divan) of the steps a call and a deploy are made of:
//! instantiate + call of a trivial procedure, `describe`, the JSON-RPC
//! envelope on its own, compiling the largest example module and loading
//! its cached compiled code. `make bench` runs them with the procedures
//! built (`WASMRPC_WASM_DIR`); `cargo bench -p wasmrpc-bench --bench micro`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark without its input cannot run

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use wasmrpc::config::Config;
use wasmrpc::registry::Registry;
use wasmrpc::sandbox::{CallContext, Sandbox};

/// The example procedures, the largest of which is compiled below.
const EXAMPLES: [&str; 9] =
    ["math", "text", "json", "subtract", "sum", "get_data", "update", "notify_hello", "notify_sum"];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    registry: Arc<Registry>,
    endpoint: Arc<wasmrpc::rpc::Endpoint>,
    /// A sandbox of its own, for compiling and describing outside a deploy.
    sandbox: Sandbox,
    math: Vec<u8>,
    /// The largest example module: its name and bytes.
    largest: (String, Vec<u8>),
    /// Its compiled code, serialised to a file as the cache keeps it.
    cached: PathBuf,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let read = wasmrpc_testkit::wasm;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("data"));
    let registry = Arc::new(Registry::open(&config).unwrap());
    let sandbox = Sandbox::new(&config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let math = read("math");
    runtime.block_on(registry.deploy("math", math.clone().into())).unwrap();
    let largest = EXAMPLES.iter().map(|name| (name.to_string(), read(name))).max_by_key(|(_, b)| b.len()).unwrap();
    let cached = dir.path().join("largest.cwasm");
    std::fs::write(&cached, sandbox.compile(&largest.1).unwrap().serialize().unwrap()).unwrap();
    let endpoint = Arc::new(wasmrpc::rpc::Endpoint::new(registry.clone(), &config));
    Fixture { runtime, registry, endpoint, sandbox, math, largest, cached, _dir: dir }
});

fn main() {
    LazyLock::force(&FIXTURE);
    println!("largest example module: {} ({} bytes)", FIXTURE.largest.0, FIXTURE.largest.1.len());
    divan::main();
}

/// A fresh instance of `math` and one call of `add` in it.
#[divan::bench]
fn instantiate_and_call(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| {
        let call = f.registry.call("math.add", "[1,2]", CallContext::new(0));
        f.runtime.block_on(call).unwrap()
    });
}

/// `describe` of `math` in a fresh instance (done once per deploy).
#[divan::bench(sample_count = 200)]
fn describe(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    let compiled = f.sandbox.compile(&f.math).unwrap();
    bencher.bench_local(|| f.runtime.block_on(f.sandbox.describe("math", &compiled, CallContext::new(0))).unwrap());
}

/// The JSON-RPC envelope alone: parse a request, find no such method,
/// serialise the error answer (no Wasm involved).
#[divan::bench]
fn envelope_parse_and_serialise(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    let body = br#"{"jsonrpc":"2.0","method":"nope.add","params":[1,2],"id":"a-string-id-1"}"#;
    bencher.bench_local(|| {
        f.runtime.block_on(wasmrpc::rpc::handle(&f.endpoint, &Default::default(), divan::black_box(body))).unwrap()
    });
}

/// A batch of ten such requests.
#[divan::bench]
fn envelope_batch_of_ten(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    let one = r#"{"jsonrpc":"2.0","method":"nope.add","params":{"a":1,"b":2},"id":7}"#;
    let body = format!("[{}]", [one; 10].join(","));
    bencher.bench_local(|| {
        f.runtime.block_on(wasmrpc::rpc::handle(&f.endpoint, &Default::default(), body.as_bytes())).unwrap()
    });
}

/// Compiling the largest example module with Cranelift (a deploy of new code).
#[divan::bench(sample_count = 10, sample_size = 1)]
fn compile_largest_example(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| f.sandbox.compile(&f.largest.1).unwrap());
}

/// Loading the same module's compiled code from the cache (a restart).
#[divan::bench(sample_count = 50, sample_size = 1)]
fn load_cached_compiled_code(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| f.sandbox.load_compiled(&f.cached).unwrap());
}
