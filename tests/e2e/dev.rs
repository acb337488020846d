//! The procedure developer's loop: `wasmrpc new` scaffolds a crate that
//! `wasmrpc dev` builds and deploys, and `dev` redeploys on every edit while
//! a broken edit leaves the previous version serving.
//!
//! The scaffolded crates build with cargo into one shared target dir
//! (`$CARGO_TARGET_DIR/scaffolded`), so the guest SDK's dependencies compile
//! once, not once per test.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    clean_command, heavy, output_within, signal_process, wait_within, wasmrpc_bin, Server, COMMAND_TIMEOUT,
};

/// Time for the first build, which may compile the SDK's dependencies.
const FIRST_BUILD: Duration = Duration::from_secs(300);
/// Time for a rebuild after an edit: only the crate itself compiles.
const REBUILD: Duration = Duration::from_secs(120);

/// Where scaffolded crates build: shared by every test and run.
fn scaffold_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("scaffolded"),
        None => std::env::temp_dir().join("wasmrpc-e2e-scaffolded"),
    }
}

/// `wasmrpc ARGS` with the scaffolds' target dir and no `WASMRPC_*` settings.
fn command(args: &[&str]) -> Command {
    let mut command = clean_command(wasmrpc_bin());
    command.args(args).env("CARGO_TARGET_DIR", scaffold_target_dir());
    command
}

/// Runs `wasmrpc ARGS` (a build included) for at most [`FIRST_BUILD`].
fn run(args: &[&str]) -> Output {
    output_within(command(args), FIRST_BUILD)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `wasmrpc new NAME --path DIR`, insisting it works.
fn scaffold(name: &str, dir: &Path) {
    let out = run(&["new", name, "--path", dir.to_str().unwrap()]);
    assert!(out.status.success(), "new {name}: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("created procedure crate `{name}`")), "{stdout}");
    assert!(stdout.contains("wasmrpc dev"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_crate_builds_deploys_and_answers() {
    // cargo builds load both cores.
    let _heavy = heavy().await;
    let server = Server::start(&[]);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("greet");
    scaffold("greet", &dir);
    for file in ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for needle in [
        "cargo build --release --target wasm32-wasip2",
        "curl -X PUT --data-binary @target/wasm32-wasip2/release/greet.wasm http://127.0.0.1:8080/procedures/greet",
        "wasmrpc deploy greet",
        "wasmrpc call greet.hello '[\"world\"]'",
        "wasmrpc dev",
    ] {
        assert!(readme.contains(needle), "README lacks {needle:?}:\n{readme}");
    }

    let out = tokio::task::block_in_place(|| run(&["dev", dir.to_str().unwrap(), "--once", "--server", &server.url]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "dev --once failed:\n{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("deployed greet version 1 (build "), "{stdout}");
    assert!(stdout.contains("greet.hello, greet.stats"), "{stdout}");

    assert_eq!(server.result("greet.hello", json!(["world"])).await, json!("Hello, world!"));
    assert_eq!(server.result("greet.hello", json!({"name": "dev"})).await, json!("Hello, dev!"));
    assert_eq!(
        server.result("greet.stats", json!({"values": [1, 2, 3]})).await,
        json!({"count": 3, "sum": 6.0, "mean": 2.0})
    );
    assert_eq!(server.error("greet.stats", json!([[]])).await["code"], 1);

    // Once more without changes: the server keeps the version.
    let out = tokio::task::block_in_place(|| run(&["dev", dir.to_str().unwrap(), "--once", "--server", &server.url]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("greet version 1 unchanged"), "{stdout}");

    // A server with an admin token: dev sends --admin-token, and says when
    // the server refuses the deploy.
    let guarded = Server::start(&["--admin-token", "s3cret"]);
    let dir = dir.to_str().unwrap();
    let out = tokio::task::block_in_place(|| {
        run(&["dev", dir, "--once", "--server", &guarded.url, "--admin-token", "wrong"])
    });
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("deploy refused: ") && stdout.contains("nothing is deployed as greet yet"), "{stdout}");
    let out = tokio::task::block_in_place(|| {
        run(&["dev", dir, "--once", "--server", &guarded.url, "--admin-token", "s3cret"])
    });
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("deployed greet version 1"), "{stdout}");
    assert_eq!(guarded.result("greet.hello", json!(["token"])).await, json!("Hello, token!"));
}

/// A `wasmrpc dev` child whose stdout lines are collected; killed when dropped.
struct Dev {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: PathBuf,
}

impl Dev {
    fn spawn(dir: &Path, server: &str, stderr: PathBuf) -> Dev {
        let log = std::fs::File::create(&stderr).unwrap();
        let mut child = command(&["dev", dir.to_str().unwrap(), "--server", server])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start wasmrpc dev");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Dev { child, lines, stderr }
    }

    fn output(&self) -> String {
        format!(
            "--- dev stdout:\n{}\n--- dev stderr:\n{}",
            self.lines.lock().unwrap().join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits for a line containing `needle` among the lines printed after
    /// the first `skip`; returns the number of lines seen.
    async fn wait_for(&mut self, needle: &str, skip: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let lines = self.lines.lock().unwrap();
                if lines.iter().skip(skip).any(|l| l.contains(needle)) {
                    return lines.len();
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("dev exited ({status}) before printing {needle:?}\n{}", self.output());
            }
            assert!(Instant::now() < deadline, "dev did not print {needle:?} within {timeout:?}\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status (within 20 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        signal_process(self.child.id(), "TERM");
        let status = wait_within(&mut self.child, Duration::from_secs(20));
        status.unwrap_or_else(|| panic!("dev did not exit after SIGTERM\n{}", self.output()))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guest stub (`wasmrpc stub --lang rust --guest`) is real code: a
/// procedure built on it calls `math` through its typed functions, and an
/// error of the callee comes back through it unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_generated_guest_stub_builds_into_a_procedure_without_wasi_that_calls_through_it() {
    let _heavy = heavy().await;
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("stubcalc");
    scaffold("stubcalc", &dir);
    let stub = dir.join("src/math_stub.rs");
    let out = run(&[
        "stub",
        "--lang",
        "rust",
        "--guest",
        "--only",
        "math",
        "--server",
        &server.url,
        "--out",
        stub.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "stub --guest: {}", text(&out.stderr));
    let lib = r#"
mod math_stub;

use wasmrpc_guest::{procedure, Error};

/// sqrt(a² + b²), through the generated stub of `math`.
#[procedure]
fn hypot(a: i64, b: i64) -> Result<f64, Error> {
    let a2 = math_stub::math::multiply(a, a)?;
    let b2 = math_stub::math::multiply(b, b)?;
    let sum = math_stub::math::add(a2, b2)?;
    Ok((sum as f64).sqrt())
}

/// Panics.
#[procedure]
fn boom(n: i64) -> i64 {
    panic!("boom number {n}")
}

wasmrpc_guest::export!(hypot, boom);
"#;
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
    // Built without WASI: for wasm32-unknown-unknown, then wrapped.
    let manifest = dir.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{toml}\n[package.metadata.wasmrpc]\nwasi = false\n")).unwrap();
    let out = tokio::task::block_in_place(|| run(&["dev", dir.to_str().unwrap(), "--once", "--server", &server.url]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "dev --once of the stub user failed:\n{stdout}\n{}", text(&out.stderr));
    let built = scaffold_target_dir().join("wasm32-unknown-unknown/wasmrpc-dev/stubcalc.component.wasm");
    let component = std::fs::read(&built).unwrap();
    assert!(!component.windows(5).any(|w| w == b"wasi:"), "{} imports WASI", built.display());
    assert_eq!(server.result("stubcalc.hypot", json!([3, 4])).await, json!(5.0));
    // math.multiply's overflow error (code 1) reaches the caller's caller.
    let error = server.error("stubcalc.hypot", json!([i64::MAX, 1])).await;
    assert_eq!(error["code"], 1, "{error}");
    // Without stderr, the panic message still reaches the client.
    let error = server.error("stubcalc.boom", json!([7])).await;
    assert_eq!(error["code"], -32000, "{error}");
    assert!(error["data"]["stderr"].as_str().unwrap().contains("boom number 7"), "{error}");

    // A bad setting is named.
    std::fs::write(&manifest, format!("{toml}\n[package.metadata.wasmrpc]\nwasi = \"no\"\n")).unwrap();
    let out = run(&["dev", dir.to_str().unwrap(), "--once", "--server", &server.url]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("`[package.metadata.wasmrpc] wasi`"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_redeploys_on_every_edit_and_keeps_serving_through_errors() {
    // cargo builds load both cores.
    let _heavy = heavy().await;
    let server = Server::start(&[]);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("live");
    scaffold("live", &dir);
    let lib = dir.join("src/lib.rs");
    let original = std::fs::read_to_string(&lib).unwrap();

    let mut dev = Dev::spawn(&dir, &server.url, temp.path().join("dev.stderr"));
    let seen = dev.wait_for("deployed live version 1 (build ", 0, FIRST_BUILD).await;
    dev.wait_for("watching", 0, Duration::from_secs(10)).await;
    assert_eq!(server.result("live.hello", json!(["world"])).await, json!("Hello, world!"));

    // An edit: the new behaviour answers within a bounded time.
    let howdy = original.replace("Hello, ", "Howdy, ");
    assert_ne!(howdy, original, "the template's greeting changed; update this test");
    std::fs::write(&lib, &howdy).unwrap();
    let s = &server;
    server
        .eventually(REBUILD, "the edited greeting to answer", move || async move {
            s.call("live.hello", json!(["world"])).await["result"] == json!("Howdy, world!")
        })
        .await;
    let seen = dev.wait_for("deployed live version 2 (build ", seen, Duration::from_secs(10)).await;

    // A syntax error: cargo's error is shown, version 2 keeps serving.
    std::fs::write(&lib, format!("{howdy}\nfn broken(\n")).unwrap();
    let seen = dev.wait_for("build failed; version 2 keeps serving", seen, REBUILD).await;
    let stderr = std::fs::read_to_string(&dev.stderr).unwrap();
    assert!(stderr.contains("unclosed delimiter"), "cargo's error is not shown:\n{}", dev.output());
    assert_eq!(server.result("live.hello", json!(["world"])).await, json!("Howdy, world!"));

    // Fixed again, to the very code that serves: the server keeps version 2.
    std::fs::write(&lib, &howdy).unwrap();
    dev.wait_for("live version 2 unchanged", seen, REBUILD).await;
    assert_eq!(server.result("live.hello", json!(["world"])).await, json!("Howdy, world!"));

    let status = dev.terminate();
    assert!(status.success(), "dev exited with {status} on SIGTERM\n{}", dev.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_starts_a_server_when_none_answers_on_loopback() {
    // cargo builds load both cores.
    let _heavy = heavy().await;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("solo");
    scaffold("solo", &dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut dev = Dev::spawn(&dir, &url, temp.path().join("dev.stderr"));
    dev.wait_for("started one in this process", 0, Duration::from_secs(30)).await;
    dev.wait_for("deployed solo version 1 (build ", 0, FIRST_BUILD).await;
    assert!(dir.join("target/wasmrpc-dev-data").is_dir());

    let request = json!({"jsonrpc": "2.0", "method": "solo.hello", "params": ["local"], "id": 1});
    let answer = wasmrpc_client::http::send(
        hyper::Method::POST,
        &format!("{url}/rpc"),
        &[("content-type", "application/json")],
        request.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(answer.json().unwrap()["result"], json!("Hello, local!"), "{}", dev.output());

    // The server runs inside dev's own process (it holds the listening
    // socket), so it cannot outlive dev. Asking the port after the exit
    // instead could meet another test's server that took the freed port.
    let inode = listening_socket(port).expect("nothing listens on the port dev was given");
    assert!(holds_socket(dev.child.id(), inode), "the server on port {port} is not dev's own process");
    let status = dev.terminate();
    assert!(status.success(), "dev exited with {status} on SIGTERM\n{}", dev.output());
}

/// The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp.
fn listening_socket(port: u16) -> Option<String> {
    const LISTEN: &str = "0A";
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&LISTEN))
            .then(|| fields.get(9))?
            .map(|i| i.to_string())
    })
}

/// Whether process `pid` has socket `inode` open.
fn holds_socket(pid: u32, inode: String) -> bool {
    let target = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target))
        })
        .unwrap_or(false)
}

#[test]
fn new_refuses_bad_names_and_non_empty_directories() {
    let temp = tempfile::tempdir().unwrap();
    for (name, message) in [
        ("Bad", "invalid procedure name"),
        ("9lives", "invalid procedure name"),
        ("a.b", "invalid procedure name"),
        ("rpc", "reserved"),
    ] {
        let dir = temp.path().join("bad");
        let out = run(&["new", name, "--path", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "new {name:?} should fail");
        assert!(text(&out.stderr).contains(message), "new {name:?}: {}", text(&out.stderr));
        assert!(!dir.exists(), "new {name:?} created {}", dir.display());
    }

    let full = temp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let out = run(&["new", "full", "--path", full.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not empty"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1, "new wrote into a non-empty directory");
    assert_eq!(std::fs::read_to_string(full.join("notes.txt")).unwrap(), "mine");

    // An empty directory is fine; so is NAME as the default directory.
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(run(&["new", "empty", "--path", empty.to_str().unwrap()]).status.success());
    assert!(empty.join("src/lib.rs").is_file());
    let mut new = command(&["new", "my-proc"]);
    new.current_dir(temp.path());
    let out = output_within(new, COMMAND_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("deploys it as `my_proc`"), "{}", text(&out.stdout));
    let manifest = std::fs::read_to_string(temp.path().join("my-proc/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"my-proc\"") && manifest.contains("[workspace]"), "{manifest}");
}

#[test]
fn dev_once_needs_a_server_and_a_crate() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("lonely");
    scaffold("lonely", &dir);
    // Port 9 on loopback: nothing listens; --once never starts a server.
    let out = run(&["dev", dir.to_str().unwrap(), "--once", "--server", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no wasmrpc server answers at http://127.0.0.1:9"), "{}", text(&out.stderr));

    let out = run(&["dev", temp.path().to_str().unwrap(), "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("has no Cargo.toml"), "{}", text(&out.stderr));

    let out = run(&["dev", dir.to_str().unwrap(), "--once", "--name", "Nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--name"), "{}", text(&out.stderr));
}

#[test]
fn new_and_dev_have_help() {
    for (command, needles) in
        [("new", &["--path", "--sdk"][..]), ("dev", &["--name", "--server", "--admin-token", "--once"][..])]
    {
        let out = run(&[command, "--help"]);
        let stdout = text(&out.stdout);
        assert!(out.status.success() && stdout.contains("Usage"), "{command}: {stdout}");
        for needle in needles {
            assert!(stdout.contains(needle), "{command} --help lacks {needle}");
        }
    }
}

/// `wasmrpc dev --allow-outbound URL --reuse N` deploys with that grant
/// and reuse (a redeploy without them drops them); the grant itself is
/// tested in `outbound.rs`, reuse in `reuse.rs`.
#[tokio::test(flavor = "multi_thread")]
async fn dev_deploys_with_the_settings_it_is_given() {
    let _heavy = heavy().await;
    let server = Server::start(&[]);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("greet");
    scaffold("greet", &dir);
    let dir = dir.to_str().unwrap();
    let grant = "http://127.0.0.1:9";
    let out = tokio::task::block_in_place(|| {
        run(&["dev", dir, "--once", "--server", &server.url, "--allow-outbound", grant, "--reuse", "10"])
    });
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("deployed greet version 1"), "{stdout}");
    let meta = server.request(hyper::Method::GET, "/procedures/greet", &[], Vec::new()).await.json().unwrap();
    assert_eq!(meta["allowed_outbound"], json!([grant]), "{meta}");
    assert_eq!(meta["reuse"]["calls"], 10, "{meta}");

    let out = tokio::task::block_in_place(|| run(&["dev", dir, "--once", "--server", &server.url]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = server.request(hyper::Method::GET, "/procedures/greet", &[], Vec::new()).await.json().unwrap();
    assert_eq!((meta["version"].as_u64(), &meta["allowed_outbound"]), (Some(2), &json!([])), "{meta}");
}
