//! What the end-to-end tests (`tests/e2e`) and the benchmarks (`bench/`,
//! with its micro benchmarks in `bench/benches`) share to run the real
//! thing: the `.wasm` files built from `procedures/` (built here with cargo
//! when `WASMRPC_WASM_DIR` does not name them), a server process started and
//! asked for its address, and new bytes for the same code (a custom
//! section), and a private PostgreSQL cluster ([`postgres`]). One copy of
//! each, so the tests and the benchmarks cannot drift apart.

pub mod postgres;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// Directory of the built procedures: `WASMRPC_WASM_DIR` (the Makefile sets
/// it), or built once with cargo into `$CARGO_TARGET_DIR/procedures`.
pub fn wasm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("WASMRPC_WASM_DIR") {
            return PathBuf::from(dir);
        }
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("target"))
            .join("procedures");
        let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo.join("procedures/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "building procedures/ failed ({status:?}): run `make procedures`"
        );
        target.join("wasm32-wasip2/release")
    })
}

/// The path of procedure `name` (its wasm file stem, e.g. `math`, `test_hostile`).
pub fn wasm_path(name: &str) -> PathBuf {
    wasm_dir().join(format!("{name}.wasm"))
}

/// The bytes of procedure `name`; panics with what to do when it is not built.
pub fn wasm(name: &str) -> Vec<u8> {
    read_wasm(wasm_dir(), name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The bytes of procedure `name` in `dir`.
pub fn read_wasm(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("cannot read {} (run `make procedures`)", path.display()))
}

/// Starts `command` (a `wasmrpc serve`, or any server that prints
/// `... listening on http://ADDR` on stdout) and returns the child and its
/// base URL. A server that exits or prints nothing within `timeout` is
/// killed and reported, so a broken start fails instead of hanging. Stdout
/// is drained afterwards, so the server never blocks on a full pipe.
pub fn start_server(mut command: Command, timeout: Duration) -> anyhow::Result<(Child, String)> {
    command.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.split_once("listening on ").map(|(_, url)| url.trim().to_owned()));
        let _ = send.send(url);
        lines.for_each(drop);
    });
    match receive.recv_timeout(timeout) {
        Ok(Some(url)) if url.starts_with("http://") => Ok((child, url)),
        outcome => {
            let _ = child.kill();
            let _ = child.wait();
            match outcome {
                Ok(Some(other)) => bail!("{command:?} listens on {other:?}, not an http:// URL"),
                Ok(None) => bail!("{command:?} exited before it was listening"),
                Err(_) => bail!("{command:?} was not listening within {timeout:?}"),
            }
        }
    }
}

/// `component` with a custom section `name` holding `payload` appended:
/// the same code under new bytes (another sha256), as a test or benchmark
/// needs when each deploy must be a module the server has not seen.
pub fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut contents = leb128(name.len());
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    out.extend(leb128(contents.len()));
    out.extend(contents);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_encodes_as_the_spec_says() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [127]);
        assert_eq!(leb128(128), [0x80, 1]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }
}
