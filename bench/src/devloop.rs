//! `wasmrpc dev`'s save-to-answer time (issue 13's target: at most 2 s for
//! the `math` example). A crate made by `wasmrpc new` gets the `math`
//! example's source and its `wasi = false` setting, `wasmrpc dev` serves it
//! against a release server; then each round writes a new source with a
//! `probe` method answering the round's number, and times from the write
//! to the first call that answers that number: the watcher's debounce, the
//! build, the deploy (compile and `describe`) and the call, as a developer
//! sees it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use wasmrpc_client::http::HttpClient;

use crate::process::Server;

/// How long the first build (the SDK's dependencies) may take.
const FIRST_BUILD: Duration = Duration::from_secs(600);
/// How long one round may take before the benchmark gives up.
const GIVE_UP: Duration = Duration::from_secs(60);

/// One figure per round.
pub fn measure(wasmrpc: &Path, dir: &Path, rounds: usize) -> anyhow::Result<Vec<Duration>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the source tree")?;
    let work = dir.join("devloop");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let krate = work.join("mathdev");
    let status = Command::new(wasmrpc)
        .args(["new", "mathdev", "--path"])
        .arg(&krate)
        .arg("--sdk")
        .arg(root.join("guest-sdk"))
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("wasmrpc new failed");
    }
    let manifest = krate.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest)?;
    std::fs::write(&manifest, format!("{toml}\n[package.metadata.wasmrpc]\nwasi = false\n"))?;
    let math = std::fs::read_to_string(root.join("procedures/math/src/lib.rs"))?;
    let source = |round: usize| -> anyhow::Result<String> {
        let (head, _) = math.rsplit_once("wasmrpc_guest::export!(").context("math's export! line")?;
        Ok(format!(
            "{head}/// Which round of the benchmark built this.\n#[procedure]\nfn probe() -> usize {{\n    {round}\n}}\n\n\
             wasmrpc_guest::export!(add, subtract, multiply, divide, round, stats, probe);\n"
        ))
    };
    let lib = krate.join("src/lib.rs");
    std::fs::write(&lib, source(0)?)?;

    let mut serve = Command::new(wasmrpc);
    serve.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(work.join("data"));
    let server = Server::start(serve, &work.join("server.log"))?;
    let log = std::fs::File::create(work.join("dev.log"))?;
    let mut dev = Command::new(wasmrpc)
        .arg("dev")
        .arg(&krate)
        .args(["--server", &server.url()])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting wasmrpc dev")?;
    let result = rounds_against(&mut dev, &server, &lib, &source, rounds);
    let _ = dev.kill();
    let _ = dev.wait();
    server.stop()?;
    result.with_context(|| format!("see {}", work.join("dev.log").display()))
}

fn rounds_against(
    dev: &mut Child,
    server: &Server,
    lib: &Path,
    source: &dyn Fn(usize) -> anyhow::Result<String>,
    rounds: usize,
) -> anyhow::Result<Vec<Duration>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = HttpClient::new();
    let url = format!("{}/rpc", server.url());
    let mut answers = |round: usize, within: Duration| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let want = format!(r#"{{"jsonrpc":"2.0","result":{round},"id":1}}"#);
        runtime.block_on(async {
            loop {
                let body = r#"{"jsonrpc":"2.0","method":"mathdev.probe","id":1}"#;
                if let Ok(answer) = client.send(hyper::Method::POST, &url, &[], body).await {
                    if answer.body.as_ref() == want.as_bytes() {
                        return Ok(started.elapsed());
                    }
                }
                if started.elapsed() > within {
                    bail!("mathdev.probe did not answer {round} within {within:?}");
                }
                // A dev that stopped (a failed first build) will not deploy.
                if let Some(status) = dev.try_wait()? {
                    bail!("wasmrpc dev exited ({status}) before round {round} answered");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    answers(0, FIRST_BUILD)?;
    let mut times = Vec::new();
    for round in 1..=rounds {
        // A pause, as between two saves: the watcher sees this save alone.
        std::thread::sleep(Duration::from_millis(500));
        std::fs::write(lib, source(round)?)?;
        times.push(answers(round, GIVE_UP)?);
    }
    Ok(times)
}
