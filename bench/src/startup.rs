//! Start-up with many procedures deployed: the time from starting `wasmrpc
//! serve` to the first answered call, with the compiled-code cache warm (a
//! restart) and cold (the cache deleted, so every module is compiled again).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use wasmrpc_client::http::HttpClient;

use wasmrpc_testkit::with_custom_section;

use crate::process::Server;

/// How long start-up may take before the benchmark gives up.
const GIVE_UP: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct Startup {
    pub procedures: usize,
    /// One figure per warm restart.
    pub warm: Vec<Duration>,
    pub cold: Duration,
}

/// Deploys `count` distinct copies of `module` (each with its own custom
/// section, so each has its own hash and compiled code), then restarts the
/// server `warm_runs` times and once more with the cache removed.
pub fn measure(wasmrpc: &Path, module: &[u8], dir: &Path, count: usize, warm_runs: usize) -> anyhow::Result<Startup> {
    let data = dir.join("startup-data");
    let _ = std::fs::remove_dir_all(&data);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = HttpClient::new();
    let names: Vec<String> = (0..count).map(|i| format!("p{i:03}")).collect();
    let server = start(wasmrpc, &data, dir)?;
    for name in &names {
        server.deploy(&runtime, &client, name, with_custom_section(module, "wasmrpc-bench", name.as_bytes()))?;
    }
    server.stop()?;
    drop(client);

    let last = names.last().context("no procedures")?;
    let mut warm = Vec::new();
    for _ in 0..warm_runs {
        warm.push(time_to_first_call(&runtime, wasmrpc, &data, dir, last)?);
    }
    std::fs::remove_dir_all(data.join("compiled")).context("removing the compiled-code cache")?;
    let cold = time_to_first_call(&runtime, wasmrpc, &data, dir, last)?;
    Ok(Startup { procedures: count, warm, cold })
}

fn start(wasmrpc: &Path, data: &Path, dir: &Path) -> anyhow::Result<Server> {
    let mut command = Command::new(wasmrpc);
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
    Server::start(command, &dir.join("startup-server.log"))
}

/// Starts the server and calls `NAME.add` until it answers.
fn time_to_first_call(
    runtime: &tokio::runtime::Runtime,
    wasmrpc: &Path,
    data: &Path,
    dir: &Path,
    name: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let server = start(wasmrpc, data, dir)?;
    let url = format!("{}/rpc", server.url());
    let body = format!(r#"{{"jsonrpc":"2.0","method":"{name}.add","params":[1,2],"id":1}}"#);
    let client = HttpClient::new();
    let elapsed = runtime.block_on(async {
        loop {
            // The listener is bound before the procedures are loaded, so this
            // request waits in the accept queue until the server serves.
            let answer = client.send(hyper::Method::POST, &url, &[], body.clone()).await;
            if let Ok(answer) = answer {
                if answer.body.as_ref() == br#"{"jsonrpc":"2.0","result":3,"id":1}"# {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > GIVE_UP {
                bail!("no answer from {name}.add within {GIVE_UP:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })?;
    server.stop()?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    /// The 100 start-up modules must be accepted, and each must be new code.
    #[tokio::test]
    async fn a_custom_section_makes_a_distinct_valid_module() {
        let math = wasmrpc_testkit::wasm("math");
        let data = tempfile::tempdir().unwrap();
        let registry = std::sync::Arc::new(
            wasmrpc::registry::Registry::open(&wasmrpc::config::Config::new(data.path().to_owned())).unwrap(),
        );
        let first = registry.deploy("p000", with_custom_section(&math, "wasmrpc-bench", b"p000").into()).await.unwrap();
        let second =
            registry.deploy("p001", with_custom_section(&math, "wasmrpc-bench", b"p001").into()).await.unwrap();
        assert_ne!(first.0.sha256, second.0.sha256);
        assert!(first.0.methods.contains(&"p000.add".to_owned()), "{:?}", first.0.methods);
    }
}
