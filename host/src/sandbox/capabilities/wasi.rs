//! WASI 0.2 (`wasi:cli`, `clocks`, `filesystem`, `io`, `random`,
//! `sockets`, any 0.2.x): linked whole and granting nothing. No preopened
//! files, no sockets, no environment, no arguments; clocks and random work;
//! stdout and stderr go to the server log, tagged with the procedure. The
//! WASI context is made at the guest's first WASI call.

use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Capability;
use crate::sandbox::output::GuestOutput;
use crate::sandbox::state::CallState;

/// WASI 0.2 packages a procedure may import.
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

pub(in crate::sandbox) const CAPABILITY: Capability = Capability {
    described: "WASI 0.2 (cli, clocks, filesystem, io, random, sockets)",
    serves,
    link: |linker| wasmtime_wasi::p2::add_to_linker_async(linker),
};

fn serves(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("wasi:") else { return false };
    let (package, version) = match rest.split_once('/') {
        Some((package, iface)) => (package, iface.split_once('@').map(|(_, v)| v)),
        None => (rest, None),
    };
    WASI_PACKAGES.contains(&package) && version.is_some_and(|v| v.starts_with("0.2."))
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (wasi, _) = self.wasi.get_or_insert_with(|| {
            let stdout = GuestOutput::new(self.procedure.clone(), self.request_id, "stdout");
            (WasiCtx::builder().stdout(stdout.clone()).stderr(self.stderr.clone()).build(), stdout)
        });
        WasiCtxView { ctx: wasi, table: &mut self.table }
    }
}
