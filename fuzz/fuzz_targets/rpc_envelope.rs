//! The JSON-RPC request handler on arbitrary bytes: it must always answer a
//! valid JSON-RPC response (or a batch of them), or nothing for
//! notifications, and never panic. With `FUZZ_WASM` set to a procedure
//! (`make fuzz` uses `math.wasm`), calls reach real Wasm too.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmrpc::config::Config;
use wasmrpc::registry::Registry;

struct Harness {
    runtime: tokio::runtime::Runtime,
    registry: Arc<Registry>,
    _data: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(data.path().to_owned());
        config.time_limit = std::time::Duration::from_millis(200);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let registry = Arc::new(Registry::open(&config).expect("registry"));
        if let Some(path) = std::env::var_os("FUZZ_WASM") {
            let bytes = std::fs::read(&path).expect("FUZZ_WASM");
            let name = std::path::Path::new(&path).file_stem().and_then(|s| s.to_str()).unwrap_or("math").to_owned();
            runtime.block_on(registry.deploy(&name, bytes.into())).expect("deploy FUZZ_WASM");
        }
        Harness { runtime, registry, _data: data }
    })
}

fuzz_target!(|body: &[u8]| {
    let h = harness();
    let Some(answer) = h.runtime.block_on(wasmrpc::rpc::handle(&h.registry, 100, body)) else { return };
    let value: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    let valid = wasmrpc::rpc::is_valid_answer(&value);
    assert!(valid, "not a JSON-RPC response: {value}");
});
