//! Many procedures on one server: `IDENTICAL` procedures of one component
//! (the server's memory after the deploys and after a restart, and the
//! restart's time to ready), and `DISTINCT` procedures of distinct code (a
//! small component, `test_raw`, with a unique custom section each) under
//! `--max-loaded-mib 128` while calls go to random ones: the server's
//! memory, and a cold call (its code loaded from the compiled-code cache,
//! then called) next to a warm one.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use wasmrpc_client::http::HttpClient;
use wasmrpc_testkit::with_custom_section;

use crate::load::quantile;
use crate::process::Server;

/// Procedures of identical code.
pub const IDENTICAL: usize = 10_000;
/// Procedures of distinct code.
pub const DISTINCT: usize = 1_000;
/// The loaded-code bound of the distinct run, in MiB.
pub const DISTINCT_MAX_LOADED_MIB: u64 = 128;
/// Calls to random procedures of the distinct run.
const RANDOM_CALLS: usize = 3_000;
/// First calls after a restart, each a cold one.
const COLD_CALLS: usize = 200;

pub struct Scale {
    /// Resident memory with `IDENTICAL` procedures of `math` deployed, and
    /// right after a restart (ready, nothing called).
    pub identical_rss_deployed: u64,
    pub identical_rss_restarted: u64,
    /// From starting the server to `/healthz` answering 200 with them.
    pub identical_ready: Duration,
    /// The most resident memory seen during the random calls of the
    /// distinct run.
    pub distinct_rss: u64,
    /// Latencies (ns, sorted) of first calls after a restart (cold), and of
    /// calls to procedures just called (warm).
    pub cold_ns: Vec<u64>,
    pub warm_ns: Vec<u64>,
    /// Code loads the random calls made, of `RANDOM_CALLS`.
    pub random_loads: u64,
}

pub fn measure(wasmrpc: &Path, math: &[u8], raw: &[u8], dir: &Path) -> anyhow::Result<Scale> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = HttpClient::new();

    let data = dir.join("scale-identical");
    let _ = std::fs::remove_dir_all(&data);
    let server = start(wasmrpc, &data, dir, &[])?;
    for i in 0..IDENTICAL {
        server.deploy(&runtime, &client, &format!("p{i:05}"), math.to_vec())?;
    }
    let identical_rss_deployed = server.rss()?;
    server.stop()?;
    let started = Instant::now();
    let server = start(wasmrpc, &data, dir, &[])?;
    wait_ready(&runtime, &client, &server)?;
    let identical_ready = started.elapsed();
    let identical_rss_restarted = server.rss()?;
    call(&runtime, &client, &server, "p00000.add", "[1,2]", "3")?;
    server.stop()?;

    let data = dir.join("scale-distinct");
    let _ = std::fs::remove_dir_all(&data);
    let bound = DISTINCT_MAX_LOADED_MIB.to_string();
    let flags = ["--max-loaded-mib", bound.as_str()];
    let server = start(wasmrpc, &data, dir, &flags)?;
    let names: Vec<String> = (0..DISTINCT).map(|i| format!("d{i:04}")).collect();
    for name in &names {
        server.deploy(&runtime, &client, name, with_custom_section(raw, "wasmrpc-bench", name.as_bytes()))?;
    }
    server.stop()?;
    let server = start(wasmrpc, &data, dir, &flags)?;
    wait_ready(&runtime, &client, &server)?;
    // A fixed pseudo-random order: the same calls in every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % DISTINCT as u64).unwrap_or(0)
    };
    let mut cold_ns = Vec::new();
    for name in names.iter().take(COLD_CALLS) {
        cold_ns.push(call(&runtime, &client, &server, &format!("{name}.ok"), "[]", "true")?);
    }
    let mut warm_ns = Vec::new();
    for name in names.iter().take(COLD_CALLS).rev().take(COLD_CALLS / 4) {
        warm_ns.push(call(&runtime, &client, &server, &format!("{name}.ok"), "[]", "true")?);
    }
    let loads_before = metric(&runtime, &client, &server, "wasmrpc_code_loads_total")?;
    let mut distinct_rss = server.rss()?;
    for i in 0..RANDOM_CALLS {
        let name = &names[next()];
        call(&runtime, &client, &server, &format!("{name}.ok"), "[]", "true")?;
        if i % 100 == 0 {
            distinct_rss = distinct_rss.max(server.rss()?);
        }
    }
    distinct_rss = distinct_rss.max(server.rss()?);
    let random_loads = metric(&runtime, &client, &server, "wasmrpc_code_loads_total")? - loads_before;
    server.stop()?;
    cold_ns.sort_unstable();
    warm_ns.sort_unstable();
    Ok(Scale {
        identical_rss_deployed,
        identical_rss_restarted,
        identical_ready,
        distinct_rss,
        cold_ns,
        warm_ns,
        random_loads,
    })
}

impl Scale {
    /// The table's lines and the targets.
    pub fn report(&self) -> (Vec<String>, Vec<serde_json::Value>) {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        let ms = |ns: u64| ns as f64 / 1e6;
        let (cold50, cold99) = (ms(quantile(&self.cold_ns, 0.5)), ms(quantile(&self.cold_ns, 0.99)));
        let warm50 = ms(quantile(&self.warm_ns, 0.5));
        let ready = self.identical_ready.as_secs_f64();
        let lines = vec![
            format!(
                "{IDENTICAL} procedures of one component: {:.0} MiB after the deploys, {:.0} MiB after a restart, ready in {:.2} s",
                mib(self.identical_rss_deployed),
                mib(self.identical_rss_restarted),
                ready
            ),
            format!(
                "{DISTINCT} procedures of distinct code, --max-loaded-mib {DISTINCT_MAX_LOADED_MIB}: {:.0} MiB at most during {RANDOM_CALLS} random calls ({} loaded their code); cold call p50 {cold50:.2} ms, p99 {cold99:.2} ms; warm p50 {warm50:.2} ms",
                mib(self.distinct_rss),
                self.random_loads
            ),
        ];
        let worst_identical = self.identical_rss_deployed.max(self.identical_rss_restarted);
        let targets = vec![
            crate::target(
                &format!("{IDENTICAL} procedures of identical code: <= 256 MiB"),
                format!("{:.0} MiB (the more of deployed and restarted)", mib(worst_identical)),
                mib(worst_identical) <= 256.0,
            ),
            crate::target(
                &format!("{DISTINCT} of distinct code, --max-loaded-mib 128, random calls: <= 256 MiB"),
                format!("{:.0} MiB", mib(self.distinct_rss)),
                mib(self.distinct_rss) <= 256.0,
            ),
            crate::target(
                &format!("restart to ready, {IDENTICAL} procedures: <= 2 s"),
                format!("{ready:.2} s"),
                ready <= 2.0,
            ),
            crate::target(
                "a cold call (load + call): <= 5 ms",
                format!("p50 {cold50:.2} ms, p99 {cold99:.2} ms"),
                cold50 <= 5.0,
            ),
        ];
        (lines, targets)
    }
}

fn start(wasmrpc: &Path, data: &Path, dir: &Path, flags: &[&str]) -> anyhow::Result<Server> {
    let mut command = Command::new(wasmrpc);
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data).args(flags);
    Server::start(command, &dir.join("scale-server.log"))
}

/// Polls `/healthz` until it answers 200 (the registry is loaded).
fn wait_ready(runtime: &tokio::runtime::Runtime, client: &HttpClient, server: &Server) -> anyhow::Result<()> {
    let url = format!("{}/healthz", server.url());
    let started = Instant::now();
    runtime.block_on(async {
        loop {
            if let Ok(answer) = client.send(hyper::Method::GET, &url, &[], Vec::new()).await {
                if answer.status == hyper::StatusCode::OK {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("{url} not ready within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Calls `method` with `params`, which must answer `expect`: its latency in ns.
fn call(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    server: &Server,
    method: &str,
    params: &str,
    expect: &str,
) -> anyhow::Result<u64> {
    let url = format!("{}/rpc", server.url());
    let body = format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}"#);
    let wanted = format!(r#"{{"jsonrpc":"2.0","result":{expect},"id":1}}"#);
    let started = Instant::now();
    let answer = runtime.block_on(client.send(hyper::Method::POST, &url, &[], body))?;
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if answer.body.as_ref() != wanted.as_bytes() {
        bail!("{method} answered {}", answer.text());
    }
    Ok(elapsed)
}

/// The value of the sample `series` in the server's `/metrics`.
fn metric(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    server: &Server,
    series: &str,
) -> anyhow::Result<u64> {
    let url = format!("{}/metrics", server.url());
    let text = runtime.block_on(client.send(hyper::Method::GET, &url, &[], Vec::new()))?.text();
    let prefix = format!("{series} ");
    let value = text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).with_context(|| format!("no {series}"))?;
    Ok(value.trim().parse::<f64>().with_context(|| format!("{series} {value}"))? as u64)
}
