//! Small hand-made components (WAT), each meant to end at a different check
//! of an upload, and a template for a whole procedure in a few hundred
//! bytes whose `describe` is given as WAT. Shared by the `module_upload`
//! fuzz target (its seeds) and the end-to-end tests (which check that each
//! seed ends where it should, and deploy procedures whose `describe`
//! misbehaves); included with `#[path]`, so it needs nothing but std.

/// Where an upload of a seed must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, and its `describe` answers.
    Accepted,
    /// Refused with an error containing this text.
    Refused(&'static str),
}

/// The seeds: name, WAT, where an upload of it must end.
pub fn seeds() -> Vec<(&'static str, String, Outcome)> {
    vec![
        ("empty", "(component)".to_owned(), Outcome::Refused("missing export `wasmrpc:procedure/stub@0.1.")),
        (
            "core_module",
            "(module (func (export \"f\")))".to_owned(),
            Outcome::Refused("core WebAssembly module, not a component"),
        ),
        (
            "forbidden_import",
            r#"(component (import "wasi:http/incoming-handler@0.2.0" (instance)))"#.to_owned(),
            Outcome::Refused("forbidden import `wasi:http/incoming-handler@0.2.0`"),
        ),
        (
            "unknown_import",
            r#"(component (import "acme:secret/door" (func)))"#.to_owned(),
            Outcome::Refused("forbidden import `acme:secret/door`"),
        ),
        (
            "wasi_import",
            r#"(component (import "wasi:cli/environment@0.2.0" (instance (export "get-arguments" (func (result (list string)))))))"#
                .to_owned(),
            Outcome::Refused("missing export `wasmrpc:procedure/stub@0.1."),
        ),
        // A whole procedure: one method `f`, answering null.
        ("procedure", procedure("i32.const 0", r#"{"methods":[{"name":"f","params":[]}]}"#), Outcome::Accepted),
        (
            "wrong_stub_type",
            r#"(component
                 (core module $m (func (export "describe") (result i32) i32.const 0))
                 (core instance $i (instantiate $m))
                 (func $describe (result u32) (canon lift (core func $i "describe")))
                 (instance $stub (export "describe" (func $describe)))
                 (export "wasmrpc:procedure/stub@0.1.0" (instance $stub)))"#
                .to_owned(),
            Outcome::Refused("do not match wasmrpc:procedure/stub@0.1."),
        ),
    ]
}

/// A procedure component whose core `describe` runs `describe_body` (WAT
/// instructions leaving an i32: the address of a (pointer, length) pair;
/// address 0 holds one for `describe_json`) and whose `call` answers
/// `null` to every method.
pub fn procedure(describe_body: &str, describe_json: &str) -> String {
    let length: String = (describe_json.len() as u32).to_le_bytes().iter().map(|b| format!("\\{b:02x}")).collect();
    let json = describe_json.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"(component
             (core module $m
               (memory (export "memory") 1)
               (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 4096)
               (func (export "describe") (result i32) {describe_body})
               (func (export "call") (param i32 i32 i32 i32) (result i32) i32.const 32)
               (data (i32.const 0) "\00\01\00\00{length}")
               (data (i32.const 32) "\00\00\00\00\40\00\00\00\04\00\00\00")
               (data (i32.const 64) "null")
               (data (i32.const 256) "{json}"))
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
             (export "wasmrpc:procedure/stub@0.1.0" (instance $s)))"#
    )
}
