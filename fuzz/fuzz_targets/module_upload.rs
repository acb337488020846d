//! Upload validation on arbitrary bytes: compiling and checking a module
//! either accepts it or says why not, and never panics.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmrpc::config::Config;
use wasmrpc::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(&Config::new(std::env::temp_dir())).expect("runtime"))
}

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = runtime().compile(bytes) {
        assert!(!e.0.is_empty(), "a refusal must say why");
    }
});
