//! Server processes under test: started, asked for their address, measured
//! for CPU time (from `/proc`), and stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `command` and waits (a minute at most) for the line
    /// `... listening on http://ADDR` on its stdout. Its stderr goes to `log`.
    pub fn start(mut command: Command, log: &Path) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command.stderr(log_file);
        let (mut child, url) = wasmrpc_testkit::start_server(command, Duration::from_secs(60))
            .with_context(|| format!("see {}", log.display()))?;
        let addr = url.trim_start_matches("http://").parse().context("a listening address");
        let addr = addr.inspect_err(|_| {
            let _ = child.kill();
        })?;
        Ok(Server { child, addr })
    }

    /// Starts `command`, a server that will listen on `addr` (it prints no
    /// address: `wasmtime serve`), and waits (a minute at most) until a
    /// connection to it succeeds. Its output goes to `log`.
    pub fn start_on(mut command: Command, addr: SocketAddr, log: &Path) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command.stdout(log_file.try_clone()?).stderr(log_file);
        let mut child = command.spawn().with_context(|| format!("starting {command:?}"))?;
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if started.elapsed() > Duration::from_secs(60) || child.try_wait()?.is_some() {
                let _ = child.kill();
                bail!("{command:?} does not listen on {addr}: see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server { child, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Deploys `bytes` as procedure `name` (a wasmrpc server).
    pub fn deploy(
        &self,
        runtime: &tokio::runtime::Runtime,
        client: &wasmrpc_client::http::HttpClient,
        name: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        self.deploy_with(runtime, client, name, "", bytes)
    }

    /// [`Server::deploy`] with a query string (`?reuse=N`).
    pub fn deploy_with(
        &self,
        runtime: &tokio::runtime::Runtime,
        client: &wasmrpc_client::http::HttpClient,
        name: &str,
        query: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        let url = format!("{}/procedures/{name}{query}", self.url());
        let answer = runtime.block_on(client.send(hyper::Method::PUT, &url, &[], bytes))?;
        if !answer.status.is_success() {
            bail!("deploying {name}: {} {}", answer.status, answer.text());
        }
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory now, in bytes (`VmRSS`).
    pub fn rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmRSS in /proc/PID/status")?;
        Ok(kib << 10)
    }

    /// User plus system CPU time the process has used so far, all threads included.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.child.id())
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let exit = self.child.wait()?;
        if !exit.success() {
            bail!("the server exited with {exit}");
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One-connection runs with every server on one core and the load
/// generator on another, undone when dropped. Left alone, the scheduler
/// puts a server's thread on the client's core or the other one as it
/// likes, and on this VM a wake-up across cores costs about 60 us: the same
/// native binary measured a p50 of 33 us or 71 us by where it landed, which
/// hid what each server adds. Pinned, both servers pay the same wake-up.
pub struct Pinned {
    pids: Vec<u32>,
    all: String,
}

impl Pinned {
    /// Pins `servers` to the last core and this process to the first; `None`
    /// on a single core (or without `taskset`), where runs stay as they are.
    pub fn new(servers: &[&Server]) -> Option<Pinned> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return None;
        }
        let all = format!("0-{}", cores - 1);
        let last = (cores - 1).to_string();
        let pinned = Pinned { pids: servers.iter().map(|s| s.pid()).chain([std::process::id()]).collect(), all };
        for server in servers {
            taskset(server.pid(), &last).ok()?;
        }
        taskset(std::process::id(), "0").ok()?;
        Some(pinned)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = taskset(*pid, &self.all);
        }
    }
}

/// Sets the CPU affinity of every thread of `pid` to `cpus`.
fn taskset(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset -a -p -c {cpus} {pid} failed");
    }
    Ok(())
}

/// Reads utime + stime from `/proc/PID/stat`, in clock ticks of 1/100 s
/// (the unit Linux exposes there, whatever the kernel's own tick rate).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("an unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; after the name, field 3 is index 0.
    let ticks: u64 = [11, 12].iter().map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)).sum();
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The `wasmrpc` binary built next to this one (both are in `target/release`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!("{} not found: build it first (`cargo build --release -p wasmrpc-host`)", path.display());
    }
    Ok(path)
}

/// [`cpu_time`] of `pid` plus that of its children (PostgreSQL's postmaster
/// and its backends). A child that exited in between takes its time along.
pub fn cpu_time_with_children(pid: u32) -> anyhow::Result<Duration> {
    let mut total = cpu_time(pid)?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // The parent is the second field after the command name.
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if parent == Some(pid) {
            total += cpu_time(child).unwrap_or_default();
        }
    }
    Ok(total)
}
