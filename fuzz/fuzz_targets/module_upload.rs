//! Upload validation on arbitrary bytes: compiling and checking a module
//! either accepts it or says why not, and never panics.
//!
//! Random bytes rarely get past the header check, so `make fuzz` has this
//! target write the small hand-made components of [`SEEDS`] into the corpus
//! (`FUZZ_SEED_DIR`): a valid procedure and one per check (missing export,
//! forbidden import, wrong stub type), each under 1 KiB. The built example
//! procedures are real components too, but compiling one takes seconds in
//! the instrumented build; `make fuzz FUZZ_EXAMPLE_SEEDS=1` adds them.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmrpc::config::Config;
use wasmrpc::sandbox::Sandbox;

/// Small components (WAT), each meant to end at a different check.
const SEEDS: &[(&str, &str)] = &[
    ("empty", "(component)"),
    ("core_module", "(module (func (export \"f\")))"),
    ("forbidden_import", r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#),
    ("unknown_import", r#"(component (import "acme:secret/door" (func)))"#),
    (
        "wasi_import",
        r#"(component (import "wasi:cli/environment@0.2.0" (instance (export "get-arguments" (func (result (list string)))))))"#,
    ),
    // A whole procedure in 850 bytes: one method `f`, answering null.
    (
        "procedure",
        r#"(component
               (core module $m
                 (memory (export "memory") 1)
                 (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
                 (func (export "describe") (result i32) i32.const 0)
                 (func (export "call") (param i32 i32 i32 i32) (result i32) i32.const 32)
                 (data (i32.const 0) "\40\00\00\00\26\00\00\00")
                 (data (i32.const 32) "\00\00\00\00\80\00\00\00\04\00\00\00")
                 (data (i32.const 64) "{\"methods\":[{\"name\":\"f\",\"params\":[]}]}")
                 (data (i32.const 128) "null"))
               (core instance $i (instantiate $m))
               (type $err (record (field "code" s32) (field "message" string) (field "data" (option string))))
               (type $out (result string (error $err)))
               (func $describe (result string)
                 (canon lift (core func $i "describe") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
               (func $call (param "method" string) (param "params" string) (result $out)
                 (canon lift (core func $i "call") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
               (component $stub
                 (type $err' (record (field "code" s32) (field "message" string) (field "data" (option string))))
                 (import "import-type-rpc-error" (type $e (eq $err')))
                 (import "import-func-describe" (func $d (result string)))
                 (type $r (result string (error $e)))
                 (import "import-func-call" (func $c (param "method" string) (param "params" string) (result $r)))
                 (export $e2 "rpc-error" (type $e))
                 (type $r2 (result string (error $e2)))
                 (export "describe" (func $d))
                 (export "call" (func $c) (func (param "method" string) (param "params" string) (result $r2))))
               (instance $s (instantiate $stub
                 (with "import-type-rpc-error" (type $err))
                 (with "import-func-describe" (func $describe))
                 (with "import-func-call" (func $call))))
               (export "wasmrpc:procedure/stub@0.1.0" (instance $s)))"#,
    ),
    (
        "wrong_stub_type",
        r#"(component
             (core module $m (func (export "describe") (result i32) i32.const 0))
             (core instance $i (instantiate $m))
             (func $describe (result u32) (canon lift (core func $i "describe")))
             (instance $stub (export "describe" (func $describe)))
             (export "wasmrpc:procedure/stub@0.1.0" (instance $stub)))"#,
    ),
];

fn runtime() -> &'static Sandbox {
    static RUNTIME: OnceLock<Sandbox> = OnceLock::new();
    RUNTIME.get_or_init(|| Sandbox::new(&Config::new(std::env::temp_dir())).expect("runtime"))
}

/// Writes [`SEEDS`] as `.wasm` files into `dir` (libFuzzer reads its corpus
/// after this init, so they are fuzzed from the first run).
fn write_seeds(dir: &Path) {
    std::fs::create_dir_all(dir).expect("seed dir");
    for (name, wat) in SEEDS {
        let bytes = wat::parse_str(wat).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        std::fs::write(dir.join(format!("seed_{name}.wasm")), bytes).expect("write seed");
    }
}

fuzz_target!(
    init: {
        if let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") {
            write_seeds(Path::new(&dir));
        }
    },
    |bytes: &[u8]| {
        if let Err(e) = runtime().compile(bytes) {
            assert!(!e.0.is_empty(), "a refusal must say why");
        }
    }
);
