//! Wrapping a core Wasm module into a component, as `wasm-tools component
//! new` does: how a procedure built for `wasm32-unknown-unknown` (no WASI
//! imports, the cheapest instances to make) becomes a deployable component.
//! wit-bindgen leaves the world the module was built against in a custom
//! section; wit-component reads it. `wasmrpc component` and `wasmrpc dev`
//! use this crate; so does `make procedures`, through this crate's small
//! binary, which builds without the server's dependencies.

use std::path::Path;

use anyhow::Context as _;

/// The component of `core`, a core module built with wit-bindgen's
/// bindings (the wasmrpc-guest SDK's). Fails on a component, on a module
/// without the world section, and on one whose imports or exports do not
/// match its world.
pub fn from_core_module(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    match (core.get(..4), core.get(4..8)) {
        (Some(b"\0asm"), Some([1, 0, 0, 0])) => {}
        (Some(b"\0asm"), _) => anyhow::bail!("a component already (deploy it as it is), not a core Wasm module"),
        _ => anyhow::bail!("not a Wasm module"),
    }
    // wit-component would wrap a module without a world into an empty
    // component, which the server then refuses for what it lacks.
    let has_world = wasmparser::Parser::new(0).parse_all(core).any(|payload| {
        matches!(payload, Ok(wasmparser::Payload::CustomSection(s)) if s.name().starts_with("component-type"))
    });
    anyhow::ensure!(
        has_world,
        "not a module built with wit-bindgen bindings (the wasmrpc-guest SDK): it names no world"
    );
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .context("not a module built with wit-bindgen bindings (the wasmrpc-guest SDK)")?
        .encode()
        .context("the module does not match the world it was built against")
}

/// Writes the component of the core module `input` to `output`: a new file
/// renamed over it, so a hard link cargo made at `output` keeps pointing at
/// cargo's own copy, and a failure leaves `output` as it was.
pub fn file(input: &Path, output: &Path) -> anyhow::Result<()> {
    let core = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let component = from_core_module(&core).with_context(|| input.display().to_string())?;
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().context("the output is not a file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::write(&tmp, component).and_then(|()| std::fs::rename(&tmp, output));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_core_module_is_named() {
        let err = |bytes: &[u8]| from_core_module(bytes).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert_eq!(err(b"hello"), "not a Wasm module");
        assert!(err(b"\0asm\x0d\0\x01\0").starts_with("a component already"));
        // A core module without wit-bindgen's world section.
        assert!(err(b"\0asm\x01\0\0\0").contains("wit-bindgen"), "{}", err(b"\0asm\x01\0\0\0"));
    }
}
