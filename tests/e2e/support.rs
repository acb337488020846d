//! The harness: a real `wasmrpc serve` process on 127.0.0.1 with an ephemeral
//! port and a temporary data dir, real HTTP, and real `.wasm` files built
//! from `procedures/`.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use wasmrpc_client::http::{Answer, HttpClient};

/// How long a server may take to print its address.
const STARTUP: Duration = Duration::from_secs(60);
/// How long a short `wasmrpc` command (not a build) may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Tests on 2 shared cores: timing-sensitive tests (a slow call holding a
/// slot, a time limit measured from outside) take a shared guard with
/// [`timing`], tests that load the CPU (64-client load, redeploys under
/// load, cargo builds, compiling the megabyte Python and JavaScript
/// components) take it exclusively with [`heavy`]. So no time bound is
/// measured while the machine is saturated by another test.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Held by a timing-sensitive test: no heavy test runs meanwhile.
pub async fn timing() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// Held by a test that loads the CPU: it runs alone among the timing and
/// heavy tests.
pub async fn heavy() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// [`timing`] for a test outside an async runtime.
pub fn timing_blocking() -> RwLockReadGuard<'static, ()> {
    MACHINE.blocking_read()
}

/// The `wasmrpc` binary under test: cargo's, or `WASMRPC_TEST_BIN` when
/// set (worktrees that share one target dir overwrite each other's
/// `target/debug/wasmrpc`; a copy taken right after the build is stable).
pub fn wasmrpc_bin() -> PathBuf {
    std::env::var_os("WASMRPC_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wasmrpc")), PathBuf::from)
}

/// A command for `program` without any `WASMRPC_*` variable of the
/// environment the tests run in (a developer's `WASMRPC_TIME_LIMIT_MS` or
/// `WASMRPC_ADMIN_TOKEN` must not reach the processes under test).
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WASMRPC_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `command` with its output captured and waits at most `timeout`:
/// a process that runs longer is killed and the test fails (with what it
/// printed) instead of hanging.
pub fn output_within(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    // Read both pipes on threads, so a chatty child never blocks on a full pipe.
    let readers = [read_all(child.stdout.take()), read_all(child.stderr.take())];
    let status = wait_within(&mut child, timeout);
    // A grandchild may still hold a pipe: take what came within a moment.
    let [stdout, stderr] = readers.map(|r| r.recv_timeout(Duration::from_secs(5)).unwrap_or_default());
    let output = Output { status: status.unwrap_or_default(), stdout, stderr };
    assert!(
        status.is_some(),
        "{command:?} still ran after {timeout:?} and was killed\n--- stdout:\n{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Everything `pipe` yields until EOF, sent once done.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            let _ = send.send(all);
        });
    }
    receive
}

/// Waits for `child` to exit, at most `timeout`; kills it (SIGKILL) and
/// answers `None` if it does not.
pub fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub use wasmrpc_testkit::{wasm, wasm_path};

/// Where requests go: a server, or a proxy in front of servers. Its
/// helpers (deploy, call, ...) panic with the server's log, when there is
/// one, on a transport error.
pub struct Endpoint {
    pub url: String,
    http: HttpClient,
    log: Option<PathBuf>,
}

/// A running server; killed when dropped. Its requests go through its
/// [`Endpoint`] (`server.url`, `server.call(...)`).
pub struct Server {
    endpoint: Endpoint,
    pub data_dir: PathBuf,
    child: Child,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _temp: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Server {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Server {
    /// Starts a server with a fresh data dir and extra `serve` flags.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Starts a server with a fresh data dir, extra `serve` flags and extra
    /// environment variables (every other `WASMRPC_*` is removed).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = temp.path().join("data");
        let mut server = Server::spawn_with(&data_dir, args, env, temp.path().join("server.log"));
        server._temp = Some(temp);
        server
    }

    /// Starts a server with a fresh data dir and extra `serve` flags, and
    /// returns as soon as it prints its listening address, without waiting
    /// for `/healthz` to answer 200: for a test of a server that is not
    /// ready yet (a shared registry that cannot be reached).
    pub fn start_unready(args: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = temp.path().join("data");
        let mut server = Server::spawn_unready(&data_dir, args, &[], temp.path().join("server.log"));
        server._temp = Some(temp);
        server
    }

    fn spawn_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)], log: PathBuf) -> Server {
        let server = Server::spawn_unready(data_dir, args, env, log);
        server.wait_ready();
        server
    }

    /// Spawns `wasmrpc serve` and returns once it listens (ready or not).
    fn spawn_unready(data_dir: &Path, args: &[&str], env: &[(&str, &str)], log: PathBuf) -> Server {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let mut command = clean_command(wasmrpc_bin());
        command.arg("serve");
        // An ephemeral port, unless the test chose one.
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,wasmrpc::call=debug")
            .stderr(log_file);
        let (child, url) = wasmrpc_testkit::start_server(command, STARTUP).unwrap_or_else(|e| {
            panic!("server did not start: {e:#}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        let server = Server {
            endpoint: Endpoint { url, http: HttpClient::new(), log: Some(log.clone()) },
            data_dir: data_dir.to_owned(),
            child,
            log,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            _temp: None,
        };
        server
    }

    /// Waits until `/healthz` answers 200 (plain blocking HTTP, so it works
    /// inside and outside a tokio runtime).
    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = self.url.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            let healthy = std::net::TcpStream::connect(&addr).and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer.starts_with("HTTP/1.1 200"))
            });
            if healthy.unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server at {} never became healthy\n{}", self.url, self.log());
    }

    /// Kills the server (SIGKILL) and starts it again on the same data dir.
    pub fn restart(self) -> Server {
        self.kill().start_again()
    }

    /// [`Server::restart`] with the flags `args` instead of its own.
    pub fn restart_with(self, args: &[&str]) -> Server {
        let mut killed = self.kill();
        killed.args = args.iter().map(|a| (*a).to_owned()).collect();
        killed.start_again()
    }

    /// Kills the server (SIGKILL) and waits for it to be gone: its data dir
    /// is as the kill left it until [`Killed::start_again`].
    pub fn kill(mut self) -> Killed {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Killed {
            data_dir: self.data_dir.clone(),
            log: self.log.clone(),
            args: std::mem::take(&mut self.args),
            env: std::mem::take(&mut self.env),
            temp: self._temp.take(),
        }
    }

    /// Sends `signal` (`TERM`, `INT`, ...) and waits at most `timeout` for
    /// the exit status; `None` (and the server killed) if it did not exit.
    pub fn stop_within(mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        signal_process(self.child.id(), signal);
        wait_within(&mut self.child, timeout)
    }

    /// Sends `signal` and waits (at most 30 s) for the exit status.
    pub fn stop(self, signal: &str) -> ExitStatus {
        self.stop_within(signal, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("server did not exit within 30 s after SIG{signal}"))
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the log, past byte `from`, has a line containing every
    /// one of `needles`; returns the log's length then.
    pub async fn wait_for_log(&self, from: usize, needles: &[&str], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.get(from..).unwrap_or_default().lines().any(|l| needles.iter().all(|n| l.contains(n))) {
                return log.len();
            }
            assert!(Instant::now() < deadline, "no log line with {needles:?} within {timeout:?}\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of the sample `series` (name and labels, exactly as in the
    /// exposition) in `/metrics`, if it is there.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.request(Method::GET, "/metrics", &[], Vec::new()).await.text();
        let prefix = format!("{series} ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(|v| v.parse().expect("a number"))
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Endpoint {
    /// An endpoint at `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: String) -> Endpoint {
        Endpoint { url, http: HttpClient::new(), log: None }
    }

    /// The server's log, if this endpoint is one server.
    fn log(&self) -> String {
        self.log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> Answer {
        self.http
            .send(method, &format!("{}{path}", self.url), headers, body)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()))
    }

    /// PUTs procedure `file` (a wasm file stem) as `name`.
    pub async fn deploy(&self, name: &str, file: &str) -> Answer {
        self.deploy_bytes(name, wasm(file)).await
    }

    pub async fn deploy_bytes(&self, name: &str, bytes: Vec<u8>) -> Answer {
        self.request(Method::PUT, &format!("/procedures/{name}"), &[], bytes).await
    }

    /// Deploys and insists it worked.
    pub async fn deploy_ok(&self, name: &str, file: &str) -> Value {
        let answer = self.deploy(name, file).await;
        assert!(answer.status.is_success(), "deploy {name}: {} {}", answer.status, answer.text());
        answer.json().expect("metadata")
    }

    /// POSTs a raw body to /rpc.
    pub async fn post(&self, body: &str) -> Answer {
        self.post_with(&[], body).await
    }

    /// POSTs a raw body to /rpc with `headers` besides its content type.
    pub async fn post_with(&self, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(Method::POST, "/rpc", &all, body.to_owned()).await
    }

    /// POSTs `request` and returns the parsed response (panics on 204).
    pub async fn rpc(&self, request: Value) -> Value {
        let answer = self.post(&request.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json().expect("json")
    }

    /// Calls `method` with `params` (id 1) and returns the response object.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.rpc(json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})).await
    }

    /// Calls and returns `result`, failing on an error.
    pub async fn result(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    /// Calls and returns `error`, failing on a result.
    pub async fn error(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(response.get("result").is_none(), "{method} should fail: {response}");
        response["error"].clone()
    }

    /// Polls until `f` is true or `timeout` passes.
    pub async fn eventually<F, Fut>(&self, timeout: Duration, what: &str, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}\n{}", self.log());
    }
}

/// A server killed by [`Server::kill`], its data dir kept.
pub struct Killed {
    pub data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    temp: Option<tempfile::TempDir>,
}

impl Killed {
    /// The server's log file (it keeps growing after a restart).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Starts the server again on the same data dir, flags and environment.
    pub fn start_again(mut self) -> Server {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut next = Server::spawn_with(&self.data_dir, &args, &env, self.log.clone());
        next._temp = self.temp.take();
        next
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`TERM`, `INT`, ...) to process `pid`.
pub fn signal_process(pid: u32, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid} failed");
}

/// Runs the `wasmrpc` binary with `args` (at most [`COMMAND_TIMEOUT`]);
/// returns (success, stdout, stderr).
pub fn wasmrpc(args: &[&str]) -> (bool, String, String) {
    wasmrpc_with_env(args, &[])
}

/// [`wasmrpc`] with extra environment variables.
pub fn wasmrpc_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = clean_command(wasmrpc_bin());
    command.args(args).envs(env.iter().copied());
    let out = output_within(command, COMMAND_TIMEOUT);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// SHA-256 of `bytes` in lowercase hex, computed here (not with the
/// server's helper).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs every future at once on this task.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => outputs[i] = Some(out),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
