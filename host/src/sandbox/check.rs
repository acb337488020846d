//! The upload check: whether a component is a procedure this server can
//! run. It must be a component (not a core module), export the `stub`
//! interface of `wit/procedure.wit`, and import nothing but what a
//! capability links ([`capabilities::allows`]). Every refusal says what is
//! wrong and how to fix it.

use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::ProcedurePre;
use super::capabilities;
use super::state::CallState;
use super::Compiled;

/// The interface every procedure must export (0.1.0 to 0.1.2 are all
/// accepted: wasmtime links semver-compatible versions).
pub const STUB_EXPORT: &str = "wasmrpc:procedure/stub@0.1.2";
const STUB_PREFIX: &str = "wasmrpc:procedure/stub@0.1.";

/// Why an upload is not a procedure: the message says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidModule(pub String);

/// Checks a compiled `component`'s imports and exports and pre-links it.
pub(super) fn check(
    engine: &Engine,
    linker: &Linker<CallState>,
    component: Component,
) -> Result<Compiled, InvalidModule> {
    let ty = component.component_type();
    let mut imports_http = false;
    for (name, _) in ty.imports(engine) {
        check_import(name)?;
        imports_http |= capabilities::http::imports_http(name);
    }
    if !ty.exports(engine).any(|(name, _)| name.starts_with(STUB_PREFIX)) {
        return Err(InvalidModule(format!(
            "missing export `{STUB_EXPORT}`: a procedure must implement the stub \
             interface of wit/procedure.wit (see the wasmrpc-guest SDK)"
        )));
    }
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| InvalidModule(format!("the component's imports do not link: {e:#}")))?;
    let pre = ProcedurePre::new(pre)
        .map_err(|e| InvalidModule(format!("the component's exports do not match {STUB_EXPORT}: {e:#}")))?;
    Ok(Compiled { component, pre, imports_http })
}

/// Tells apart "not Wasm at all" and "a core module" before the compiler's
/// less specific messages.
pub(super) fn check_header(bytes: &[u8]) -> Result<(), InvalidModule> {
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(InvalidModule(
            "not a WebAssembly file: it does not start with the `\\0asm` magic bytes \
             (upload the .wasm built with `cargo build --release --target wasm32-wasip2`)"
                .into(),
        ));
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(InvalidModule(
            "this is a core WebAssembly module, not a component: build it with \
             `--target wasm32-wasip2` or wrap it with `wasmrpc component`"
                .into(),
        ));
    }
    Ok(())
}

/// Allows what a capability links; names anything else.
fn check_import(name: &str) -> Result<(), InvalidModule> {
    if capabilities::allows(name) {
        return Ok(());
    }
    Err(InvalidModule(format!("forbidden import `{name}`: a procedure may import only {}", capabilities::described())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_allowed_and_refused() {
        assert!(check_import("wasi:cli/environment@0.2.6").is_ok());
        assert!(check_import("wasi:io/streams@0.2.0").is_ok());
        assert!(check_import("wasmrpc:procedure/host@0.1.0").is_ok());
        assert!(check_import("wasmrpc:procedure/host@0.1.1").is_ok());
        assert!(check_import("wasmrpc:procedure/client@0.1.1").is_ok());
        assert!(check_import("wasmrpc:procedure/client@0.2.0").is_err());
        assert!(check_import("wasi:http/outgoing-handler@0.2.0").is_ok());
        assert!(check_import("wasi:http/types@0.2.6").is_ok());
        let err = check_import("wasi:http/incoming-handler@0.2.0").unwrap_err();
        assert!(err.0.contains("`wasi:http/incoming-handler@0.2.0`"), "{err}");
        assert!(err.0.contains("WASI 0.2 (cli, clocks, filesystem, io, random, sockets)"), "{err}");
        assert!(check_import("wasi:cli/environment@0.3.0").is_err());
        assert!(check_import("evil:thing/x").is_err());
    }

    #[test]
    fn header_checks_name_the_problem() {
        assert!(check_header(b"hello world").unwrap_err().0.contains("not a WebAssembly file"));
        assert!(check_header(b"\0asm\x01\0\0\0").unwrap_err().0.contains("core WebAssembly module"));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
