#![allow(unreachable_pub)] // a binary has no API: `pub` only shares items between its modules
//! `make bench`: wasmrpc side by side with a native baseline, in one run.
//!
//! ```text
//! wasmrpc-bench [--wasm-dir DIR] [--out DIR] [--seconds S] [--rounds R] [--quick] [--kv-only]
//! wasmrpc-bench native --listen ADDR     (the baseline server alone)
//! wasmrpc-bench inproc --module F.wasm [--call METHOD PARAMS EXPECTED] [--with NAME=F.wasm]...
//!                      [--iterations N] [--warmup N] [--data DIR] [--pool-instances N] [--time-limit-ms MS] [--epoch-tick-ms MS]
//!                      [--reuse N]
//! wasmrpc-bench load --addr A --body B [--connections N] [--seconds S]
//! wasmrpc-bench callgrind [--wasm-dir DIR] [--out DIR]   (instructions per call)
//! wasmrpc-bench devloop [--out DIR]   (`wasmrpc dev` save-to-answer)
//! wasmrpc-bench scale [--wasm-dir DIR] [--out DIR]   (many procedures: memory, restart, cold calls)
//! ```
//!
//! The run starts both servers, checks they answer each workload with the
//! same bytes, then measures every (workload, connections) cell `rounds`
//! times, native and wasmrpc back to back in each round, so a noisy machine
//! affects both alike. Then: procedures in other languages (wasmrpc only),
//! the key-value rows (a read and a durable write per call against
//! math.add in the same rounds, on the data dir's store and on PostgreSQL;
//! `--kv-only` measures just those), in-process instantiate + call, and
//! start-up with 100 procedures. The
//! table goes to stdout and, as JSON, to `OUT/bench-TIMESTAMP.json` and
//! `OUT/latest.json`.

mod callgrind;
mod devloop;
mod inproc;
mod kv;
mod load;
mod native;
mod process;
mod scale;
mod startup;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::json;
use wasmrpc_client::http::HttpClient;

use load::{quantile, Expect, Outcome};
use process::Server;

/// The trivial call of the in-process figure: method, params, answer.
pub const MATH_ADD: (&str, &str, &str) = ("add", "[1,2]", "3");
/// `calc.hypot`: one call that makes three nested calls of `math`.
pub const CALC_HYPOT: (&str, &str, &str) = ("hypot", "[3,4]", "5.0");

struct Options {
    wasm_dir: PathBuf,
    out: PathBuf,
    seconds: f64,
    rounds: usize,
    quick: bool,
    /// Only the key-value rows.
    kv_only: bool,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("native") {
        let listen = flag(&args, "--listen").unwrap_or("127.0.0.1:0");
        return native::run(listen);
    }
    if args.first().map(String::as_str) == Some("load") {
        // Load alone, against a server started by hand (for profiling it).
        let addr = flag(&args, "--addr").context("--addr HOST:PORT")?.parse()?;
        let body = flag(&args, "--body").context("--body JSON")?.as_bytes().to_vec();
        let connections = flag(&args, "--connections").map_or(Ok(64), str::parse)?;
        let seconds: f64 = flag(&args, "--seconds").map_or(Ok(5.0), str::parse)?;
        let mut outcome = load::run(addr, &body, Expect::Bytes(b""), connections, Duration::from_secs_f64(seconds))?;
        outcome.latencies_ns.sort_unstable();
        let us = |q| load::quantile(&outcome.latencies_ns, q) as f64 / 1000.0;
        println!("{:.0} requests/s, p50 {:.1} us, p99 {:.1} us", outcome.per_second(), us(0.5), us(0.99));
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("inproc") {
        // The in-process figure alone, for profiling (`perf record`) and for
        // other modules: --module FILE --call METHOD PARAMS EXPECTED.
        let module = std::fs::read(flag(&args, "--module").context("--module FILE.wasm")?)?;
        let call = match args.iter().position(|a| a == "--call") {
            Some(i) => match &args[i + 1..] {
                [method, params, expect, ..] => (method.as_str(), params.as_str(), expect.as_str()),
                _ => bail!("--call METHOD PARAMS EXPECTED"),
            },
            None => MATH_ADD,
        };
        let iterations = flag(&args, "--iterations").map_or(Ok(20_000), str::parse)?;
        // --with NAME=FILE (repeatable): modules the measured one calls.
        let mut deps = Vec::new();
        for (i, _) in args.iter().enumerate().filter(|(_, a)| *a == "--with") {
            let spec = args.get(i + 1).context("--with NAME=FILE.wasm")?;
            let (name, file) = spec.split_once('=').context("--with NAME=FILE.wasm")?;
            deps.push((name, std::fs::read(file).with_context(|| format!("reading {file}"))?));
        }
        let deps: Vec<(&str, &[u8])> = deps.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        // --data DIR: a data dir kept between runs, so compiled code is reused.
        let kept = flag(&args, "--data").map(PathBuf::from);
        let data = kept.clone().unwrap_or_else(|| std::env::temp_dir().join("wasmrpc-bench").join("inproc-data"));
        let setup = inproc::Setup {
            data: &data,
            keep_data: kept.is_some(),
            warmup: flag(&args, "--warmup").map_or(Ok(iterations / 10), str::parse)?,
            iterations,
            pool_instances: flag(&args, "--pool-instances").map(str::parse).transpose()?,
            ready_instances: flag(&args, "--ready-instances").map(str::parse).transpose()?,
            epoch_tick: flag(&args, "--epoch-tick-ms").map(str::parse).transpose()?.map(Duration::from_millis),
            time_limit: flag(&args, "--time-limit-ms").map(str::parse).transpose()?.map(Duration::from_millis),
            // --pause-us N: idle time between calls, as a server at low load has.
            pause: Duration::from_micros(flag(&args, "--pause-us").map_or(Ok(0), str::parse)?),
            // --reuse N: the module deployed with `?reuse=N`.
            reuse: flag(&args, "--reuse").map(str::parse).transpose()?,
        };
        let mut m = inproc::measure(&module, call, &deps, &setup)?;
        m.samples.sort_unstable();
        let (p50, p99) = (quantile(&m.samples, 0.5), quantile(&m.samples, 0.99));
        println!(
            "in-process instantiate + call: p50 {:.1} us, p99 {:.1} us, CPU {:.1} us per call",
            p50 as f64 / 1e3,
            p99 as f64 / 1e3,
            m.cpu_per_call.as_secs_f64() * 1e6
        );
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("devloop") {
        let out = flag(&args, "--out").map_or_else(|| PathBuf::from("target/bench"), PathBuf::from);
        let times = devloop::measure(&process::sibling_binary("wasmrpc")?, &out, DEV_ROUNDS)?;
        print_targets("issue 13, wasmrpc dev", &[dev_target(&times)]);
        return Ok(());
    }
    let wasm_dir = flag(&args, "--wasm-dir")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("WASMRPC_WASM_DIR").map(PathBuf::from))
        .context("set --wasm-dir or WASMRPC_WASM_DIR to the built procedures")?;
    let out = flag(&args, "--out").map_or_else(|| PathBuf::from("target/bench"), PathBuf::from);
    if args.first().map(String::as_str) == Some("scale") {
        let read = |name: &str| wasmrpc_testkit::read_wasm(&wasm_dir, name);
        std::fs::create_dir_all(&out)?;
        let scale = scale::measure(&process::sibling_binary("wasmrpc")?, &read("math")?, &read("test_raw")?, &out)?;
        let (lines, targets) = scale.report();
        lines.iter().for_each(|l| println!("{l}"));
        print_targets("issue 24, many procedures", &targets);
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("callgrind") {
        let counts = callgrind::measure(&wasm_dir, &out)?;
        callgrind::print(&counts, &out);
        print_targets("issues 12 and 13, instructions", &instruction_targets(&counts));
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let options = Options {
        wasm_dir,
        out,
        seconds: flag(&args, "--seconds").map_or(Ok(if quick { 0.5 } else { 2.0 }), str::parse)?,
        rounds: flag(&args, "--rounds").map_or(Ok(if quick { 1 } else { 3 }), str::parse)?,
        quick,
        kv_only: args.iter().any(|a| a == "--kv-only"),
    };
    run(&options)
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// One request the servers are measured with.
struct Workload {
    label: &'static str,
    body: Vec<u8>,
    /// The answer is an error by design (`nope.x`: the path without Wasm).
    error_expected: bool,
    /// The same call of the same code deployed with `?reuse=N` (its own
    /// procedure name), measured in the same rounds as [`REUSE`].
    reused: Option<Vec<u8>>,
}

/// The server column of rows measured on a procedure deployed with reuse.
const REUSE: &str = "wasmrpc+reuse";
/// Calls per instance of the benchmark's reusing procedures.
const REUSE_CALLS: u32 = 10_000;

/// The server column of `wasmtime serve`'s rows.
const WASMTIME_SERVE: &str = "wasmtime serve";

/// `wasmtime serve` (the CLI in `WASMRPC_WASMTIME`, installed by `make
/// bench`) with its default settings but WASI's `cli` interfaces (wstd's
/// components import them), serving `WASMRPC_SERVE_MATH`: math.add as a
/// plain `wasi:http` component (`bench/wasi-http-math`). `None` when either
/// is not set (`wasmrpc-bench` run by hand).
fn start_wasmtime_serve(out: &Path) -> anyhow::Result<Option<Server>> {
    let (Some(wasmtime), Some(component)) =
        (std::env::var_os("WASMRPC_WASMTIME"), std::env::var_os("WASMRPC_SERVE_MATH"))
    else {
        return Ok(None);
    };
    // A free loopback port: `wasmtime serve` takes an address, not port 0.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut command = Command::new(wasmtime);
    command.args(["serve", "-S", "cli", "--addr", &addr.to_string()]).arg(component);
    Ok(Some(Server::start_on(command, addr, &out.join("wasmtime-serve.log"))?))
}

/// `name` deployed again as `{name}_reuse` with `?reuse=REUSE_CALLS`.
fn reused_name(name: &str) -> String {
    format!("{name}_reuse")
}

/// One measured row of the table.
#[derive(Debug, Serialize)]
struct Row {
    workload: &'static str,
    server: &'static str,
    connections: usize,
    requests: u64,
    errors: u64,
    requests_per_second: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_request: f64,
    /// requests/s relative to the `ratio_basis` row of the same connections:
    /// the native one of the same workload, or (key-value rows) math.add
    /// on the same server in the same rounds.
    ratio: Option<f64>,
    ratio_basis: &'static str,
    /// PostgreSQL's CPU time per request (its postmaster and backends).
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_cpu_us_per_request: Option<f64>,
    /// Commits of the embedded store per second, and the writes (calls) one
    /// commit carried, over the measured runs (from /metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    commits_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    writes_per_commit: Option<f64>,
}

fn run(options: &Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.out)?;
    let wasm = |name: &str| wasmrpc_testkit::read_wasm(&options.wasm_dir, name);
    let wasmrpc_bin = process::sibling_binary("wasmrpc")?;
    let native = if options.kv_only {
        None
    } else {
        Some(Server::start(
            {
                let mut c = Command::new(std::env::current_exe()?);
                c.args(["native", "--listen", "127.0.0.1:0"]);
                c
            },
            &options.out.join("native.log"),
        )?)
    };
    let data = options.out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let wasmrpc = Server::start(
        {
            let mut c = Command::new(&wasmrpc_bin);
            c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data);
            c
        },
        &options.out.join("server.log"),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = HttpClient::new();
    let deploy = |name: &str| wasmrpc.deploy(&runtime, &client, name, wasm(name)?);
    let duration = Duration::from_secs_f64(options.seconds);
    let mut rows = Vec::new();
    if let Some(native) = &native {
        rows = side_by_side(&runtime, &client, native, &wasmrpc, options)?;
    }

    // Key-value: the data dir's store here, and a PostgreSQL registry.
    if options.kv_only {
        deploy("math")?;
    }
    kv::prepare(&runtime, &client, &wasmrpc, &wasm)?;
    let postgres = kv::start_postgres_server(&wasmrpc_bin, &options.out, &runtime, &client, &wasm)?;
    let mut targets = vec![kv::Target { label: kv::EMBEDDED, server: &wasmrpc, postgres: None }];
    if let Some((pg, server)) = &postgres {
        targets.push(kv::Target { label: kv::POSTGRES, server, postgres: Some(pg.pid()?) });
    }
    rows.extend(kv::measure_rows(&runtime, &client, &targets, options.rounds, duration)?);
    drop(targets);
    if let Some((pg, server)) = postgres {
        server.stop()?;
        pg.stop()?;
    }
    drop(client);
    wasmrpc.stop()?;
    drop(native);
    if options.kv_only {
        return report(&rows, None, options);
    }

    let math = wasm("math")?;
    let iterations = if options.quick { 2_000 } else { 20_000 };
    let data = options.out.join("inproc-data");
    let setup = |iterations| inproc::Setup {
        data: &data,
        keep_data: false,
        warmup: iterations / 10,
        iterations,
        pool_instances: None,
        ready_instances: None,
        epoch_tick: None,
        time_limit: None,
        pause: Duration::ZERO,
        reuse: None,
    };
    let mut inproc = inproc::measure(&math, MATH_ADD, &[], &setup(iterations))?;
    inproc.samples.sort_unstable();
    let mut nested = inproc::measure(&wasm("calc")?, CALC_HYPOT, &[("math", &math)], &setup(iterations / 4))?;
    nested.samples.sort_unstable();
    let startup = if options.quick { None } else { Some(startup::measure(&wasmrpc_bin, &math, &options.out, 100, 3)?) };
    let scale =
        if options.quick { None } else { Some(scale::measure(&wasmrpc_bin, &math, &wasm("test_raw")?, &options.out)?) };
    let dev = if options.quick { None } else { Some(devloop::measure(&wasmrpc_bin, &options.out, DEV_ROUNDS)?) };

    // Instruction counts: minutes under valgrind, so not in a quick run.
    let instructions = if options.quick {
        None
    } else if callgrind::available() {
        Some(callgrind::measure(&options.wasm_dir, &options.out)?)
    } else {
        eprintln!("valgrind is not installed: no instruction counts (make bench installs it)");
        None
    };
    let extras = Extras {
        inproc: &inproc,
        nested: &nested,
        startup: startup.as_ref(),
        scale: scale.as_ref(),
        dev: dev.as_deref(),
        instructions: instructions.as_ref(),
    };
    report(&rows, Some(&extras), options)
}

/// The rows of wasmrpc against the native baseline (math.add and the 10 KB
/// JSON call at 1 and 64 connections), then those with no native twin.
fn side_by_side(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    native: &Server,
    wasmrpc: &Server,
    options: &Options,
) -> anyhow::Result<Vec<Row>> {
    let wasm = |name: &str| wasmrpc_testkit::read_wasm(&options.wasm_dir, name);
    let deploy = |name: &str| {
        wasmrpc.deploy(runtime, client, name, wasm(name)?)?;
        let query = format!("?reuse={REUSE_CALLS}");
        wasmrpc.deploy_with(runtime, client, &reused_name(name), &query, wasm(name)?)
    };
    deploy("math")?;
    deploy("json")?;
    deploy("calc")?;
    let others = !options.quick;
    if others {
        deploy("jsstrings")?;
        deploy("pystats")?;
    }
    // `name.method` with `params`, and the same call of its reusing twin.
    let call = |label: &'static str, name: &str, method: &str, params: serde_json::Value| Workload {
        label,
        body: rpc(&format!("{name}.{method}"), params.clone()),
        error_expected: false,
        reused: Some(rpc(&format!("{}.{method}", reused_name(name)), params)),
    };

    let workloads = [
        call("math.add", "math", "add", json!([1, 2])),
        Workload {
            label: "json.invoice (10 KB)",
            body: rpc("json.invoice", invoice_order(200)),
            error_expected: false,
            reused: None,
        },
    ];
    let wasmtime_serve = start_wasmtime_serve(&options.out)?;
    let mut rows = Vec::new();
    let duration = Duration::from_secs_f64(options.seconds);
    for workload in &workloads {
        let expect = answer(runtime, client, wasmrpc, &workload.body, workload.error_expected)?;
        let native_answer = answer(runtime, client, native, &workload.body, workload.error_expected)?;
        if expect != native_answer {
            bail!(
                "{}: the servers answer differently:\n  wasmrpc: {}\n  native:  {}",
                workload.label,
                String::from_utf8_lossy(&expect),
                String::from_utf8_lossy(&native_answer)
            );
        }
        if let Some(reused) = &workload.reused {
            let reused_answer = answer(runtime, client, wasmrpc, reused, workload.error_expected)?;
            if reused_answer != expect {
                bail!("{}: the reusing procedure answers differently", workload.label);
            }
        }
        for connections in [1, 64] {
            let mut runs = vec![(native, "native", &workload.body), (wasmrpc, "wasmrpc", &workload.body)];
            runs.extend(workload.reused.as_ref().map(|body| (wasmrpc, REUSE, body)));
            // The peer runs the same math.add request, in the same rounds.
            if let Some(peer) = wasmtime_serve.as_ref().filter(|_| workload.label == "math.add") {
                if answer(runtime, client, peer, &workload.body, false)? != expect {
                    bail!("wasmtime serve answers math.add differently");
                }
                runs.push((peer, WASMTIME_SERVE, &workload.body));
            }
            let mut totals: Vec<(Outcome, Duration)> = runs.iter().map(|_| Default::default()).collect();
            let servers: Vec<&Server> = runs.iter().map(|(server, _, _)| *server).collect();
            let _pinned = if connections == 1 { process::Pinned::new(&servers) } else { None };
            for _ in 0..options.rounds {
                for ((server, _, body), total) in runs.iter().zip(&mut totals) {
                    let (outcome, cpu) = measure(server, body, Expect::Bytes(&expect), connections, duration)?;
                    total.0.merge(outcome);
                    total.1 += cpu;
                }
            }
            let mut measured = runs
                .iter()
                .zip(totals)
                .map(|((_, label, _), total)| row(workload.label, label, connections, total, None));
            let Some(native_row) = measured.next() else { continue };
            let native_per_second = native_row.requests_per_second;
            rows.push(native_row);
            for mut wasm_row in measured {
                wasm_row.ratio = Some(wasm_row.requests_per_second / native_per_second);
                rows.push(wasm_row);
            }
        }
    }
    // Paths with no native twin: no Wasm at all (an unknown method), and
    // procedures written in other languages.
    let mut extra = vec![
        Workload { label: "nope.x (no Wasm)", body: rpc("nope.x", json!([])), error_expected: true, reused: None },
        // A procedure calling procedures: 1 call + 3 nested calls of math.
        call("calc.hypot (3 nested)", "calc", "hypot", json!([3, 4])),
    ];
    if others {
        extra.push(call("jsstrings.vowels", "jsstrings", "vowels", json!(["education"])));
        extra.push(call("pystats.mean", "pystats", "mean", json!([[1, 2, 3, 4]])));
    }
    let _pinned = process::Pinned::new(&[wasmrpc]);
    for workload in &extra {
        let expect = answer(runtime, client, wasmrpc, &workload.body, workload.error_expected)?;
        let mut runs = vec![("wasmrpc", &workload.body)];
        runs.extend(workload.reused.as_ref().map(|body| (REUSE, body)));
        for (label, body) in runs {
            let (outcome, cpu) = measure(wasmrpc, body, Expect::Bytes(&expect), 1, duration)?;
            rows.push(row(workload.label, label, 1, (outcome, cpu), None));
        }
    }
    Ok(rows)
}

/// What a whole run measures besides the rows.
struct Extras<'a> {
    inproc: &'a inproc::InProcess,
    nested: &'a inproc::InProcess,
    startup: Option<&'a startup::Startup>,
    scale: Option<&'a scale::Scale>,
    dev: Option<&'a [Duration]>,
    instructions: Option<&'a callgrind::Instructions>,
}

fn rpc(method: &str, params: serde_json::Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string().into_bytes()
}

/// An order of `items` lines (200 make about 10 KB of JSON).
fn invoice_order(items: usize) -> serde_json::Value {
    let items: Vec<_> = (0..items)
        .map(|i| json!({"sku": format!("SKU-{i:05}"), "quantity": i % 7 + 1, "unit_price": 0.25 * (i % 40) as f64 + 1.5}))
        .collect();
    json!({"order": {"customer": {"name": "Ada Lovelace", "email": "ada@example.com"}, "items": items, "coupon": "TENOFF"}})
}

/// The body of one answer to `body`; unless `error_expected`, it must be a result.
fn answer(
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    server: &Server,
    body: &[u8],
    error_expected: bool,
) -> anyhow::Result<Vec<u8>> {
    let url = format!("{}/rpc", server.url());
    let answer = runtime.block_on(client.send(hyper::Method::POST, &url, &[], body.to_vec()))?;
    let value = answer.json()?;
    if value.get("result").is_none() != error_expected {
        bail!("{} answered unexpectedly: {}", server.url(), answer.text());
    }
    Ok(answer.body.to_vec())
}

/// One load run after a short warm-up; also returns the server's CPU time over the run.
fn measure(
    server: &Server,
    body: &[u8],
    expect: Expect<'_>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(Outcome, Duration)> {
    warm_up(server, body, expect, connections)?;
    measure_warm(server, body, expect, connections, duration)
}

/// A short load run whose figures are dropped.
fn warm_up(server: &Server, body: &[u8], expect: Expect<'_>, connections: usize) -> anyhow::Result<()> {
    load::run(server.addr, body, expect, connections, Duration::from_millis(200)).map(drop)
}

/// [`measure`] with no warm-up.
fn measure_warm(
    server: &Server,
    body: &[u8],
    expect: Expect<'_>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(Outcome, Duration)> {
    let cpu_before = server.cpu_time()?;
    let outcome = load::run(server.addr, body, expect, connections, duration)?;
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    if outcome.errors > 0 {
        bail!("{} of {} answers from {} were wrong", outcome.errors, outcome.requests, server.url());
    }
    Ok((outcome, cpu))
}

fn row(
    workload: &'static str,
    server: &'static str,
    connections: usize,
    (mut outcome, cpu): (Outcome, Duration),
    ratio: Option<f64>,
) -> Row {
    outcome.latencies_ns.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    Row {
        workload,
        server,
        connections,
        requests: outcome.requests,
        errors: outcome.errors,
        requests_per_second: outcome.per_second(),
        p50_us: us(quantile(&outcome.latencies_ns, 0.5)),
        p99_us: us(quantile(&outcome.latencies_ns, 0.99)),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / outcome.requests.max(1) as f64,
        ratio,
        ratio_basis: "native",
        postgres_cpu_us_per_request: None,
        commits_per_second: None,
        writes_per_commit: None,
    }
}

/// Prints the tables and the targets (issues 5, 12 and 13, and the
/// key-value one), and writes the JSON.
fn report(rows: &[Row], extras: Option<&Extras<'_>>, options: &Options) -> anyhow::Result<()> {
    let is_kv = |r: &&Row| r.ratio_basis == "math.add";
    let main_rows: Vec<&Row> = rows.iter().filter(|r| !is_kv(r)).collect();
    let kv_rows: Vec<&Row> = rows.iter().filter(is_kv).collect();
    if !main_rows.is_empty() {
        println!(
            "{:<22} {:<13} {:>5} {:>10} {:>9} {:>9} {:>9} {:>7}",
            "workload", "server", "conns", "req/s", "p50 us", "p99 us", "CPU us", "ratio"
        );
    }
    for r in &main_rows {
        let ratio = r.ratio.map_or(String::new(), |x| format!("{x:.2}x"));
        println!(
            "{:<22} {:<13} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            r.workload, r.server, r.connections, r.requests_per_second, r.p50_us, r.p99_us, r.cpu_us_per_request, ratio
        );
    }
    if !kv_rows.is_empty() {
        println!(
            "\nkey-value, {} connections (ratio: req/s over math.add's on the same server in the same rounds; \
             PG CPU: PostgreSQL's processes)",
            kv::CONNECTIONS
        );
        println!(
            "{:<36} {:<10} {:>9} {:>8} {:>8} {:>7} {:>7} {:>6} {:>9} {:>8}",
            "workload", "server", "req/s", "p50 us", "p99 us", "CPU us", "PG CPU", "ratio", "commits/s", "writes/c"
        );
        for r in &kv_rows {
            let ratio = r.ratio.map_or(String::new(), |x| format!("{x:.2}x"));
            let or_blank = |x: Option<f64>, decimals: usize| x.map_or(String::new(), |x| format!("{x:.decimals$}"));
            println!(
                "{:<36} {:<10} {:>9.0} {:>8.1} {:>8.1} {:>7.1} {:>7} {:>6} {:>9} {:>8}",
                r.workload,
                r.server,
                r.requests_per_second,
                r.p50_us,
                r.p99_us,
                r.cpu_us_per_request,
                or_blank(r.postgres_cpu_us_per_request, 1),
                ratio,
                or_blank(r.commits_per_second, 0),
                or_blank(r.writes_per_commit, 1),
            );
        }
    }

    let find = |workload: &str, server: &str, connections: usize| {
        main_rows.iter().find(|r| r.workload == workload && r.server == server && r.connections == connections)
    };
    let mut targets = Vec::new();
    // math.add against native: fresh (issues 5 and 13) and reused (issue 24).
    for (server, name, min_ratio, max_cpu, max_p50) in
        [("wasmrpc", "math.add", 0.6, 15.0, 20.0), (REUSE, "math.add with reuse", 0.8, 5.0, 5.0)]
    {
        let (Some(n64), Some(w64), Some(n1), Some(w1)) = (
            find("math.add", "native", 64),
            find("math.add", server, 64),
            find("math.add", "native", 1),
            find("math.add", server, 1),
        ) else {
            continue;
        };
        let ratio = w64.requests_per_second / n64.requests_per_second;
        targets.push(target(
            &format!("{name}, 64 connections: req/s >= {min_ratio}x native"),
            format!("{ratio:.2}x"),
            ratio >= min_ratio,
        ));
        let extra = w64.cpu_us_per_request - n64.cpu_us_per_request;
        targets.push(target(
            &format!("{name}, 64 connections: CPU <= native + {max_cpu} us"),
            format!("native + {extra:.1} us"),
            extra <= max_cpu,
        ));
        let extra = w1.p50_us - n1.p50_us;
        targets.push(target(
            &format!("{name}, 1 connection: p50 <= native + {max_p50} us"),
            format!("native + {extra:.1} us"),
            extra <= max_p50,
        ));
    }
    if let (Some(peer), Some(fresh), Some(reused)) =
        (find("math.add", WASMTIME_SERVE, 64), find("math.add", "wasmrpc", 64), find("math.add", REUSE, 64))
    {
        let times = |r: &Row| r.requests_per_second / peer.requests_per_second.max(f64::MIN_POSITIVE);
        targets.push(target(
            "math.add, 64 conn.: wasmrpc fresh >= 3x wasmtime serve (req/s)",
            format!(
                "{:.1}x ({:.0} against {:.0} req/s)",
                times(fresh),
                fresh.requests_per_second,
                peer.requests_per_second
            ),
            times(fresh) >= 3.0,
        ));
        targets.push(target(
            "math.add, 64 conn.: wasmrpc with reuse >= 10x wasmtime serve",
            format!("{:.1}x", times(reused)),
            times(reused) >= 10.0,
        ));
    }
    for workload in ["pystats.mean", "jsstrings.vowels"] {
        if let (Some(fresh), Some(reused)) = (find(workload, "wasmrpc", 1), find(workload, REUSE, 1)) {
            let fewer = fresh.cpu_us_per_request / reused.cpu_us_per_request.max(f64::MIN_POSITIVE);
            targets.push(target(
                &format!("{workload} with reuse: >= 20x fewer CPU us per call than fresh"),
                format!(
                    "{fewer:.1}x ({:.0} us fresh, {:.1} us reused)",
                    fresh.cpu_us_per_request, reused.cpu_us_per_request
                ),
                fewer >= 20.0,
            ));
        }
    }
    for connections in [1, 64] {
        if let (Some(n), Some(w)) =
            (find("json.invoice (10 KB)", "native", connections), find("json.invoice (10 KB)", "wasmrpc", connections))
        {
            let ratio = w.requests_per_second / n.requests_per_second;
            targets.push(target(
                &format!("json.invoice (10 KB), {connections} conn.: req/s >= 0.7x native"),
                format!("{ratio:.2}x"),
                ratio >= 0.7,
            ));
        }
    }
    let kv_row = |workload: &str| kv_rows.iter().find(|r| r.workload == workload && r.server == kv::EMBEDDED);
    if let Some(ratio) = kv_row(kv::COUNT).and_then(|r| r.ratio) {
        targets.push(target("kv read (1 get), 64 conn.: req/s >= 0.8x math.add", format!("{ratio:.2}x"), ratio >= 0.8));
    }
    if let Some(r) = kv_row(kv::INCREMENT) {
        let ratio = r.ratio.unwrap_or_default();
        targets.push(target(
            "kv durable increment, 64 conn.: req/s >= 0.5x math.add",
            format!(
                "{ratio:.2}x ({:.0} commits/s, {:.1} writes per commit)",
                r.commits_per_second.unwrap_or_default(),
                r.writes_per_commit.unwrap_or_default()
            ),
            ratio >= 0.5,
        ));
    }

    let mut document = json!({
        "machine": machine(),
        "seconds_per_run": options.seconds,
        "rounds": options.rounds,
        "rows": rows,
    });
    if let Some(x) = extras {
        let inproc_p50 = quantile(&x.inproc.samples, 0.5) as f64 / 1000.0;
        let inproc_p99 = quantile(&x.inproc.samples, 0.99) as f64 / 1000.0;
        let inproc_cpu = x.inproc.cpu_per_call.as_secs_f64() * 1e6;
        println!(
            "\nin-process instantiate + call (math.add, {} calls): p50 {inproc_p50:.1} us, p99 {inproc_p99:.1} us, CPU {inproc_cpu:.1} us per call",
            x.inproc.samples.len()
        );
        // calc.hypot is one top-level call (about math.add's cost) and three
        // nested ones: what is left, over three, is one nested call.
        let nested_p50 = quantile(&x.nested.samples, 0.5) as f64 / 1000.0;
        let nested_cpu = x.nested.cpu_per_call.as_secs_f64() * 1e6;
        let per_nested_cpu = (nested_cpu - inproc_cpu) / 3.0;
        println!(
            "in-process calc.hypot (1 call + 3 nested, {} calls): p50 {nested_p50:.1} us, CPU {nested_cpu:.1} us per call; \
             one nested call {per_nested_cpu:.1} us of CPU against {inproc_cpu:.1} us for a top-level instantiate + call",
            x.nested.samples.len()
        );
        if let Some(s) = x.startup {
            let warm: Vec<String> = s.warm.iter().map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3)).collect();
            println!(
                "start-up to first answered call, {} procedures: warm cache {}; cold cache {:.1} s",
                s.procedures,
                warm.join(", "),
                s.cold.as_secs_f64()
            );
        }
        if let Some(scale) = x.scale {
            let (lines, scale_targets) = scale.report();
            lines.iter().for_each(|l| println!("{l}"));
            targets.extend(scale_targets);
        }
        if let Some(times) = x.dev {
            let shown: Vec<String> = times.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect();
            println!("wasmrpc dev, math example (wasi = false), save to new answer: {}", shown.join(", "));
        }
        if let Some(i) = x.instructions {
            println!();
            callgrind::print(i, &options.out);
        }
        match x.instructions {
            Some(i) => targets.extend(instruction_targets(i)),
            None => targets.push(json!({
                "target": "instantiate + call + drop of math.add <= 60k instructions",
                "measured": "not measured (quick run or no valgrind)",
                "met": false,
            })),
        }
        targets.push(target(
            "in-process instantiate + call: median < 10 us (issue 5)",
            format!("{inproc_p50:.1} us"),
            inproc_p50 < 10.0,
        ));
        if let Some(s) = x.startup {
            let worst = s.warm.iter().max().copied().unwrap_or_default();
            let ms = worst.as_secs_f64() * 1e3;
            targets.push(target(
                "restart, 100 procedures, warm cache: < 1 s (issue 5)",
                format!("{ms:.0} ms (slowest)"),
                ms < 1000.0,
            ));
        }
        if let Some(times) = x.dev {
            targets.push(dev_target(times));
        }
        document["in_process"] = json!({"calls": x.inproc.samples.len(), "p50_us": inproc_p50, "p99_us": inproc_p99, "cpu_us_per_call": inproc_cpu});
        document["in_process_nested"] = json!({"method": "calc.hypot", "nested_calls_per_call": 3, "calls": x.nested.samples.len(), "p50_us": nested_p50, "cpu_us_per_call": nested_cpu, "cpu_us_per_nested_call": per_nested_cpu});
        document["instructions"] = json!(x.instructions);
        document["dev_save_to_answer_s"] =
            json!(x.dev.map(|t| t.iter().map(Duration::as_secs_f64).collect::<Vec<_>>()));
        document["startup"] = json!(x.startup.map(|s| json!({
            "procedures": s.procedures,
            "warm_ms": s.warm.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
            "cold_ms": s.cold.as_secs_f64() * 1e3,
        })));
    }
    print_targets(
        "issues 12 and 13, and key-value; the machine is shared, so wall-clock rows are noisier than instructions",
        &targets,
    );

    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    document["unix_time"] = json!(stamp);
    document["targets"] = json!(targets);
    let text = serde_json::to_string_pretty(&document)?;
    for name in [format!("bench-{stamp}.json"), "latest.json".to_owned()] {
        write(&options.out.join(name), &text)?;
    }
    println!("\nwritten to {}", options.out.join(format!("bench-{stamp}.json")).display());
    Ok(())
}

/// Saves `wasmrpc dev` answers in the benchmark.
const DEV_ROUNDS: usize = 5;

/// The `wasmrpc dev` target: the median save-to-answer time.
fn dev_target(times: &[Duration]) -> serde_json::Value {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default().as_secs_f64();
    let worst = sorted.last().copied().unwrap_or_default().as_secs_f64();
    target(
        "wasmrpc dev: save-to-answer (math example) <= 2 s",
        format!("median {median:.2} s, slowest {worst:.2} s"),
        median <= 2.0,
    )
}

/// The instruction targets: math.add (issue 13) and a nested call (issue 12).
fn instruction_targets(i: &callgrind::Instructions) -> Vec<serde_json::Value> {
    vec![
        target(
            "instantiate + call + drop of math.add <= 60k instructions",
            format!("{:.0}", i.top_level),
            i.top_level <= 60_000.0,
        ),
        target(
            "a nested call <= 1x a top-level call (instructions)",
            format!("{:.2}x ({:.0} / {:.0})", i.nested_ratio(), i.nested, i.top_level),
            i.nested_ratio() <= 1.0,
        ),
    ]
}

fn print_targets(title: &str, targets: &[serde_json::Value]) {
    println!("\ntargets ({title}):");
    for t in targets {
        println!(
            "  [{}] {:<60} {}",
            if t["met"] == true { "met" } else { "MISSED" },
            t["target"].as_str().unwrap_or(""),
            t["measured"].as_str().unwrap_or("")
        );
    }
}

pub fn target(name: &str, measured: String, met: bool) -> serde_json::Value {
    json!({"target": name, "measured": measured, "met": met})
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// What the figures were measured on.
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|l| l.trim_start_matches([' ', '\t', ':']));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "kernel": kernel.trim(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use std::sync::Arc;

    use super::*;
    use wasmrpc::config::Config;
    use wasmrpc::registry::Registry;
    use wasmrpc_testkit::wasm;

    /// The comparison is only fair if both servers do the same work: the
    /// baseline must answer every benchmark request byte for byte as wasmrpc.
    #[tokio::test]
    async fn the_native_baseline_answers_the_same_bytes_as_wasmrpc() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().to_owned());
        let registry = Arc::new(Registry::open(&config).unwrap());
        let endpoint = Arc::new(wasmrpc::rpc::Endpoint::new(registry.clone(), &config));
        registry.deploy("math", wasm("math").into()).await.unwrap();
        registry.deploy("json", wasm("json").into()).await.unwrap();
        native::silence_guest_logger();
        let modules = native::modules();
        let bodies = [
            rpc("math.add", json!([1, 2])),
            rpc("math.add", json!({"a": 40, "b": 2})),
            rpc("json.invoice", invoice_order(200)),
            rpc("math.add", json!([1])),
        ];
        for body in bodies {
            let ours = wasmrpc::rpc::handle(&endpoint, &Default::default(), &body).await.unwrap();
            let theirs = native::handle(&modules, &body);
            assert_eq!(String::from_utf8_lossy(&theirs), String::from_utf8_lossy(&ours));
        }
        assert!(invoice_order(200).to_string().len() >= 10_000, "the JSON workload is about 10 KB");
    }
}
