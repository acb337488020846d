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

fn is_response(value: &Value) -> bool {
    let Some(object) = value.as_object() else { return false };
    let id_ok = matches!(object.get("id"), Some(Value::Null | Value::Number(_) | Value::String(_)));
    let outcome_ok = match (object.get("result"), object.get("error")) {
        (Some(_), None) => true,
        (None, Some(error)) => error["code"].is_i64() && error["message"].is_string(),
        _ => false,
    };
    object.get("jsonrpc").and_then(Value::as_str) == Some("2.0") && id_ok && outcome_ok && object.len() == 3
}

fuzz_target!(|body: &[u8]| {
    let h = harness();
    let Some(answer) = h.runtime.block_on(wasmrpc::rpc::handle(&h.registry, 100, body)) else { return };
    let value: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    let valid = match &value {
        Value::Array(items) => !items.is_empty() && items.iter().all(is_response),
        other => is_response(other),
    };
    assert!(valid, "not a JSON-RPC response: {value}");
});
