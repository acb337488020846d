//! What a guest may import, one module per imported interface. Each
//! capability says which import names it serves (the upload check asks
//! [`allows`]) and links its host functions; its per-call state lives in
//! [`CallState`](super::state::CallState). A new capability is a new file
//! here and one line in [`CAPABILITIES`].

use wasmtime::component::Linker;

use super::state::CallState;

pub(super) mod config;
pub(super) mod http;
pub(super) mod keyvalue;
pub(super) mod log;
pub(super) mod nested;
pub(super) mod wasi;

/// One importable capability.
pub(super) struct Capability {
    /// What an upload refused for an import names as allowed.
    pub(super) described: &'static str,
    /// Whether this capability serves the import `name`.
    pub(super) serves: fn(name: &str) -> bool,
    /// Adds its host functions to the linker every call shares.
    pub(super) link: fn(&mut Linker<CallState>) -> wasmtime::Result<()>,
}

/// Every capability a procedure may import.
const CAPABILITIES: &[Capability] = &[
    wasi::CAPABILITY,
    log::CAPABILITY,
    nested::CAPABILITY,
    keyvalue::CAPABILITY,
    config::CAPABILITY,
    http::CAPABILITY,
];

/// Links every capability.
pub(super) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    CAPABILITIES.iter().try_for_each(|c| (c.link)(linker))
}

/// Whether some capability serves the import `name`.
pub(super) fn allows(name: &str) -> bool {
    CAPABILITIES.iter().any(|c| (c.serves)(name))
}

/// What may be imported, for an upload's error message: "A, B and C".
pub(super) fn described() -> String {
    let names: Vec<&str> = CAPABILITIES.iter().map(|c| c.described).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}
