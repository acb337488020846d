//! In-process cost of a fresh instance (or, deployed with reuse, of a
//! reused one): `Registry::call` on a deployed module, timed one call at a
//! time, with no HTTP or JSON-RPC envelope around it. Epoch interruption and the memory limit are on, as in the
//! server.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use wasmrpc::config::Config;
use wasmrpc::registry::Registry;
use wasmrpc::sandbox::{CallContext, Reuse};
use wasmrpc::store::Settings;

/// What `iterations` instantiate + call pairs took (after a warm-up).
pub struct InProcess {
    /// Wall time of each call, in nanoseconds.
    pub samples: Vec<u64>,
    /// CPU time of the calling thread over all of them, per call.
    pub cpu_per_call: Duration,
}

/// Where and how the calls run.
pub struct Setup<'a> {
    /// The registry's data dir. Emptied first unless `keep_data`: kept, its
    /// compiled code is loaded instead of compiled again (a run under
    /// valgrind would spend minutes in Cranelift).
    pub data: &'a Path,
    pub keep_data: bool,
    /// Calls before the measured ones.
    pub warmup: usize,
    pub iterations: usize,
    /// `Config::pool_instances`: a small pool for valgrind.
    pub pool_instances: Option<u32>,
    /// `Config::ready_instances`, if not the default.
    pub ready_instances: Option<usize>,
    /// `Config::epoch_tick`, if not the default.
    pub epoch_tick: Option<Duration>,
    /// The time limit per call, if not the default (valgrind runs a call
    /// 50-100 times slower).
    pub time_limit: Option<Duration>,
    /// Idle time before each measured call (a thread sleep), as between the
    /// requests of one connection: caches and TLB cool down.
    pub pause: Duration,
    /// Deploy the measured module with `?reuse=N` (calls per instance).
    pub reuse: Option<u32>,
}

/// Calls `method` of `module` with `params`, which must answer `expect`;
/// `deps` are deployed first under their names, for a module that calls
/// them (`calc` calls `math`).
pub fn measure(
    module: &[u8],
    (method, params, expect): (&str, &str, &str),
    deps: &[(&str, &[u8])],
    setup: &Setup<'_>,
) -> anyhow::Result<InProcess> {
    if !setup.keep_data {
        let _ = std::fs::remove_dir_all(setup.data);
    }
    let mut config = Config::new(setup.data.to_owned());
    config.pool_instances = setup.pool_instances;
    if setup.pool_instances.is_some() {
        // A small pool (valgrind): one idle instance is all one caller at a
        // time can reuse.
        config.max_idle_instances = 1;
    }
    if let Some(n) = setup.ready_instances {
        config.ready_instances = n;
    }
    if let Some(tick) = setup.epoch_tick {
        config.epoch_tick = tick;
    }
    if let Some(limit) = setup.time_limit {
        config.time_limit = limit;
    }
    let registry = Arc::new(Registry::open(&config)?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        for (name, bytes) in deps {
            registry.deploy(name, bytes::Bytes::copy_from_slice(bytes)).await?;
        }
        let reuse = setup.reuse.map_or_else(Reuse::default, |calls| Reuse { calls, ..Reuse::default() });
        let settings = Settings { reuse, ..Settings::default() };
        registry.deploy_with("p", bytes::Bytes::copy_from_slice(module), settings).await?;
        let method = format!("p.{method}");
        let call = || registry.call(&method, params, CallContext::new(0));
        // One call at a time on a current-thread runtime that never parks:
        // no idle time, so the registry never makes a ready instance (see
        // `sandbox/ready.rs`) and each call makes, calls and drops its own.
        for _ in 0..setup.warmup {
            call().await?;
        }
        let mut samples = Vec::with_capacity(setup.iterations);
        let cpu_before = thread_cpu_time()?;
        // With a pause, the CPU figure includes the sleeps' own cost: compare
        // runs with the same pause.
        for _ in 0..setup.iterations {
            if !setup.pause.is_zero() {
                std::thread::sleep(setup.pause);
            }
            let started = Instant::now();
            let result = call().await?;
            samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
            if result != expect {
                bail!("{method} {params} answered {result}, not {expect}");
            }
        }
        let cpu = thread_cpu_time()?.saturating_sub(cpu_before);
        let calls = u32::try_from(setup.iterations.max(1)).unwrap_or(u32::MAX);
        Ok(InProcess { samples, cpu_per_call: cpu / calls })
    })
}

/// CPU time of the calling thread, in nanoseconds (`/proc/thread-self/schedstat`).
fn thread_cpu_time() -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").context("reading /proc/thread-self/schedstat")?;
    let ns = text.split_whitespace().next().and_then(|f| f.parse().ok()).context("an unexpected schedstat")?;
    Ok(Duration::from_nanos(ns))
}
