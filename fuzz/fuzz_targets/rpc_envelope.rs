//! The JSON-RPC request handler on arbitrary bytes: its answer must be the
//! one the specification requires of that body, as judged by the e2e
//! tests' oracle (`tests/e2e/oracle.rs`, which shares no code with the
//! server): -32700 exactly when it is not JSON, one response per request
//! with its id, nothing exactly when every request is a notification; and
//! it never panics. With `FUZZ_WASM` set to a procedure (`make fuzz` uses
//! `math.wasm`), calls reach real Wasm too. Built without cargo-fuzz, it
//! runs the check on a few bodies of each kind (see `fuzz/Cargo.toml`).

#![cfg_attr(fuzzing, no_main)]

use std::sync::{Arc, OnceLock};

use wasmrpc::config::Config;
use wasmrpc::registry::Registry;

#[path = "../../tests/e2e/oracle.rs"]
mod oracle;

/// The `max_batch` the handler is given.
const MAX_BATCH: usize = 100;

struct Harness {
    runtime: tokio::runtime::Runtime,
    endpoint: Arc<wasmrpc::rpc::Endpoint>,
    /// The deployed module's name, if any.
    module: Option<String>,
    _data: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(data.path().to_owned());
        config.time_limit = std::time::Duration::from_millis(200);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        config.max_batch = MAX_BATCH;
        let registry = Arc::new(Registry::open(&config).expect("registry"));
        let module = std::env::var_os("FUZZ_WASM").map(|path| {
            let bytes = std::fs::read(&path).expect("FUZZ_WASM");
            let name = std::path::Path::new(&path).file_stem().and_then(|s| s.to_str()).unwrap_or("math").to_owned();
            runtime.block_on(registry.deploy(&name, bytes.into())).expect("deploy FUZZ_WASM");
            name
        });
        let endpoint = Arc::new(wasmrpc::rpc::Endpoint::new(registry, &config));
        Harness { runtime, endpoint, module, _data: data }
    })
}

/// Answers `body` and holds the answer to the oracle; panics on a wrong one.
fn check(body: &[u8]) {
    let h = harness();
    let answer = h.runtime.block_on(wasmrpc::rpc::handle(&h.endpoint, &Default::default(), body));
    let modules: Vec<&str> = h.module.as_deref().into_iter().collect();
    let setup = oracle::Setup { modules: &modules, max_batch: MAX_BATCH };
    if let Err(e) = oracle::check(body, setup, answer.as_deref()) {
        panic!(
            "{} -> {}: {e}",
            String::from_utf8_lossy(body),
            answer.as_deref().map(String::from_utf8_lossy).unwrap_or_default()
        );
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|body: &[u8]| check(body));

/// Bodies of each kind the oracle tells apart: not JSON, not a request, a
/// call, a notification, batches empty, mixed and all notifications.
const SEEDS: &[&str] = &[
    "{",
    "42",
    "[]",
    r#"{"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}"#,
    r#"{"jsonrpc": "2.0", "method": "nope.x", "params": [1], "id": "a"}"#,
    r#"{"jsonrpc": "2.0", "method": "nope.x"}"#,
    r#"[{"jsonrpc": "2.0", "method": "nope.x", "id": 1}, 5, {"jsonrpc": "2.0", "method": "nope.y"}]"#,
    r#"[{"jsonrpc": "2.0", "method": "nope.x"}]"#,
];

/// Without cargo-fuzz: the check once on each seed.
#[cfg(not(fuzzing))]
fn main() {
    SEEDS.iter().for_each(|body| check(body.as_bytes()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_target_holds_on_its_seeds() {
        super::SEEDS.iter().for_each(|body| super::check(body.as_bytes()));
    }
}
