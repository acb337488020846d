//! The key-value rows: a read (`kv.read`, one `get` per call, as
//! `notes.count` makes) and a durable write (`kv.increment`, one
//! `increment` per call) at 64 connections, each against `math.add`
//! measured in the same rounds on the same server, so the ratio is what the
//! key-value step costs. `kv` is `procedures/test/kv-sdk`, built with the
//! SDK and without WASI like `math`, so the two differ by the key-value
//! call only (the `notes` example also has WASI, for its clock). Against the
//! data-dir server (the embedded store, with its group commit: commits/s
//! and writes per commit from `/metrics` around each measured run) and,
//! when PostgreSQL is installed, against a server whose `--registry` is a
//! private PostgreSQL cluster started here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::json;
use wasmrpc_client::http::HttpClient;
use wasmrpc_testkit::postgres::Postgres;

use crate::load::{Expect, Outcome};
use crate::process::{self, Server};
use crate::{answer, measure_warm, row, rpc, warm_up, Row};

/// Connections of every key-value row.
pub const CONNECTIONS: usize = 64;
/// The workloads, in the order each round measures them.
pub const MATH_ADD: &str = "math.add";
pub const COUNT: &str = "kv.read (1 get)";
pub const INCREMENT: &str = "kv.increment (1 durable write)";
/// The `server` of the rows: the data dir's embedded store, and PostgreSQL.
pub const EMBEDDED: &str = "wasmrpc";
pub const POSTGRES: &str = "wasmrpc-pg";
/// The count `kv.read` answers during the measured reads.
const COUNTED: usize = 5;

/// A server under the key-value load.
pub struct Target<'s> {
    pub label: &'static str,
    pub server: &'s Server,
    /// PostgreSQL's postmaster, whose processes' CPU time is counted too.
    pub postgres: Option<u32>,
}

/// Deploys what the key-value rows call besides `math` (`test_kv_sdk` as
/// `kv`) and counts the read key up to [`COUNTED`].
pub fn prepare(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    server: &Server,
    wasm: &dyn Fn(&str) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<()> {
    server.deploy(runtime, client, "kv", wasm("test_kv_sdk")?)?;
    for _ in 0..COUNTED {
        answer(runtime, client, server, &rpc("kv.increment", json!(["read"])), false)?;
    }
    Ok(())
}

/// What was summed for one (server, workload) over the rounds.
#[derive(Default)]
struct Total {
    outcome: Outcome,
    cpu: Duration,
    postgres_cpu: Duration,
    /// Commits and the writes they carried over the measured runs (embedded only).
    commits: Option<(u64, u64)>,
}

/// Measures every target's three workloads `rounds` times, alternating;
/// returns the rows (math.add's with no ratio, the others' against it).
pub fn measure_rows(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    targets: &[Target<'_>],
    rounds: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    let bodies = [
        (MATH_ADD, rpc("math.add", json!([1, 2]))),
        (COUNT, rpc("kv.read", json!(["read"]))),
        (INCREMENT, rpc("kv.increment", json!(["hits"]))),
    ];
    // The exact answers of the read-only calls, the same on every server.
    let mut expected = Vec::new();
    for target in targets {
        let mut answers = Vec::new();
        for (label, body) in &bodies {
            let got = answer(runtime, client, target.server, body, false)?;
            answers.push((*label != INCREMENT).then_some(got));
        }
        expected.push(answers);
    }
    if let Some(count) = expected.first().and_then(|a| a[1].as_deref()) {
        let text = String::from_utf8_lossy(count);
        if !text.contains(&format!(r#""result":{COUNTED},"#)) {
            bail!("kv.read answered {text}, not {COUNTED}");
        }
    }
    let mut totals: Vec<Vec<Total>> =
        targets.iter().map(|_| bodies.iter().map(|_| Total::default()).collect()).collect();
    for _ in 0..rounds {
        for ((target, answers), totals) in targets.iter().zip(&expected).zip(&mut totals) {
            for (((label, body), expect), total) in bodies.iter().zip(answers).zip(totals.iter_mut()) {
                let expect = expect.as_deref().map_or(Expect::ResultFor { id: "1" }, Expect::Bytes);
                warm_up(target.server, body, expect, CONNECTIONS)?;
                let commits_before = commits(runtime, client, target.server)?;
                let postgres_before = target.postgres.map(process::cpu_time_with_children).transpose()?;
                let (outcome, cpu) = measure_warm(target.server, body, expect, CONNECTIONS, duration)?;
                if let (Some(before), Some(pid)) = (postgres_before, target.postgres) {
                    total.postgres_cpu += process::cpu_time_with_children(pid)?.saturating_sub(before);
                }
                if *label == INCREMENT {
                    if let (Some(b), Some(a)) = (commits_before, commits(runtime, client, target.server)?) {
                        let sum = total.commits.get_or_insert((0, 0));
                        sum.0 += a.0.saturating_sub(b.0);
                        sum.1 += a.1.saturating_sub(b.1);
                    }
                }
                total.outcome.merge(outcome);
                total.cpu += cpu;
            }
        }
    }
    let mut rows = Vec::new();
    for (target, totals) in targets.iter().zip(totals) {
        let mut base = None;
        for ((label, _), total) in bodies.iter().zip(totals) {
            let elapsed = total.outcome.elapsed.as_secs_f64().max(1e-9);
            let requests = total.outcome.requests.max(1) as f64;
            let postgres_cpu = target.postgres.map(|_| total.postgres_cpu.as_secs_f64() * 1e6 / requests);
            let mut r = row(label, target.label, CONNECTIONS, (total.outcome, total.cpu), None);
            r.ratio_basis = "math.add";
            r.postgres_cpu_us_per_request = postgres_cpu;
            if let Some((commits, writes)) = total.commits {
                r.commits_per_second = Some(commits as f64 / elapsed);
                r.writes_per_commit = Some(writes as f64 / commits.max(1) as f64);
            }
            match base {
                None => base = Some(r.requests_per_second),
                Some(add) => r.ratio = Some(r.requests_per_second / add),
            }
            rows.push(r);
        }
    }
    Ok(rows)
}

/// `wasmrpc_kv_commits_total` and `wasmrpc_kv_committed_writes_total` from
/// the server's `/metrics` (none with a PostgreSQL registry).
fn commits(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    server: &Server,
) -> anyhow::Result<Option<(u64, u64)>> {
    let url = format!("{}/metrics", server.url());
    let answer = runtime.block_on(client.send(hyper::Method::GET, &url, &[], Vec::new()))?;
    if !answer.status.is_success() {
        bail!("GET /metrics: {} {}", answer.status, answer.text());
    }
    let text = answer.text();
    let value =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok());
    Ok(value("wasmrpc_kv_commits_total").zip(value("wasmrpc_kv_committed_writes_total")))
}

/// A private PostgreSQL cluster and a `wasmrpc serve --registry` on it,
/// prepared as [`prepare`] does; `None` (with why, printed) when
/// PostgreSQL is not installed.
pub fn start_postgres_server(
    wasmrpc_bin: &Path,
    out: &Path,
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    wasm: &dyn Fn(&str) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Option<(Postgres, Server)>> {
    if let Err(e) = wasmrpc_testkit::postgres::bin_dir() {
        println!("{e:#}: the PostgreSQL key-value rows are skipped");
        return Ok(None);
    }
    let pg = Postgres::start(&out.join("postgres")).context("starting a private PostgreSQL")?;
    let data = out.join("data-pg");
    let _ = std::fs::remove_dir_all(&data);
    let server = Server::start(
        {
            let mut c = Command::new(wasmrpc_bin);
            c.args(["serve", "--listen", "127.0.0.1:0", "--registry", &pg.url(), "--data-dir"]).arg(&data);
            c
        },
        &out.join("server-pg.log"),
    )?;
    server.deploy(runtime, client, "math", wasm("math")?)?;
    prepare(runtime, client, &server, wasm)?;
    Ok(Some((pg, server)))
}
