//! The harness: a real `wasmrpc serve` process on 127.0.0.1 with an ephemeral
//! port and a temporary data dir, real HTTP, and real `.wasm` files built
//! from `procedures/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use wasmrpc::cli::client::{Answer, HttpClient};

/// Directory of the built procedures: `WASMRPC_WASM_DIR` (the Makefile sets
/// it), or built here once with cargo.
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
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo.join("procedures/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("cannot run cargo to build procedures/");
        assert!(status.success(), "building procedures/ failed (run `make procedures`)");
        target.join("wasm32-wasip2/release")
    })
}

/// The bytes of procedure `name` (its wasm file stem, e.g. `math`, `test_hostile`).
pub fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e} (run `make procedures`)", path.display()))
}

pub fn wasm_path(name: &str) -> PathBuf {
    wasm_dir().join(format!("{name}.wasm"))
}

/// A running server; killed when dropped.
pub struct Server {
    pub url: String,
    pub data_dir: PathBuf,
    child: Child,
    log: PathBuf,
    args: Vec<String>,
    http: HttpClient,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with a fresh data dir and extra `serve` flags.
    pub fn start(args: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = temp.path().join("data");
        let mut server = Server::spawn(&data_dir, args, temp.path().join("server.log"));
        server._temp = Some(temp);
        server
    }

    fn spawn(data_dir: &Path, args: &[&str], log: PathBuf) -> Server {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmrpc"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info,wasmrpc::call=debug")
            .env_remove("WASMRPC_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("cannot start wasmrpc");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read stdout");
        let url = line
            .trim()
            .strip_prefix("wasmrpc listening on ")
            .unwrap_or_else(|| {
                panic!("server did not start: {line:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default())
            })
            .to_owned();
        let server = Server {
            url,
            data_dir: data_dir.to_owned(),
            child,
            log,
            args: args.iter().map(|s| s.to_string()).collect(),
            http: HttpClient::new(),
            _temp: None,
        };
        server.wait_ready();
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
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut next = Server::spawn(&self.data_dir, &args, self.log.clone());
        next._temp = self._temp.take();
        next
    }

    /// Sends `signal` (`TERM`, `INT`, ...) and waits for the exit status.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit after SIG{signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
        self.request(Method::POST, "/rpc", &[("content-type", "application/json")], body.to_owned()).await
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `wasmrpc` binary with `args`; returns (success, stdout, stderr).
pub fn wasmrpc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmrpc"))
        .args(args)
        .env_remove("WASMRPC_ADMIN_TOKEN")
        .env_remove("WASMRPC_SERVER")
        .output()
        .expect("run wasmrpc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
