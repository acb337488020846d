//! Client stubs (`wasmrpc stub`) against the real server. For the example
//! procedures (`math`, `text`, `json` and the JSON-RPC specification's
//! methods), in Python, TypeScript and Rust: generate the stub from the live
//! server's `rpc.discover`, type-check it (`mypy --strict`, `tsc --strict`,
//! `cargo build`), and run a driver (`tests/e2e/stubs/driver.*`) that calls
//! every method through it, then sees the unknown method of a removed
//! procedure and the transport error of a stopped server; each driver phase
//! runs with the server's `http://` URL and with its `ws://` one (then the
//! drivers also make concurrent calls on the one connection and a call after
//! the server closed it for idleness: it connects anew). Golden files
//! (`tests/e2e/stubs/golden/`) pin the output for `json`; `WASMRPC_BLESS=1`
//! writes them anew. `test/quotes`, a document hard to write down in any of
//! the three languages, gets stubs that must type-check too. Each stub is
//! generated and checked once per language, and every child process has a
//! time limit.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use hyper::{Method, StatusCode};

use crate::support::{clean_command, heavy, wasmrpc_bin, Server};

/// The example procedures, each deployed under its own name.
const EXAMPLES: &[&str] =
    &["math", "text", "json", "subtract", "sum", "get_data", "update", "notify_hello", "notify_sum"];

/// Time for `wasmrpc stub`, a driver run or a type checker's run.
const QUICK: Duration = Duration::from_secs(120);
/// Time for the Rust driver's build, which may compile the client's
/// dependencies into its target dir the first time.
const FIRST_BUILD: Duration = Duration::from_secs(900);

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/stubs")
}

/// Runs `command` for at most `limit` (it is killed past that) and insists
/// it succeeds; returns its stdout.
async fn run(mut command: tokio::process::Command, limit: Duration, what: &str) -> String {
    let output = bounded(&mut command, limit, what).await;
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn bounded(command: &mut tokio::process::Command, limit: Duration, what: &str) -> Output {
    command.kill_on_drop(true).stdin(Stdio::null());
    match tokio::time::timeout(limit, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("cannot run {what}: {e} (`make test` installs the tools the stub tests use)"),
        Err(_) => panic!("{what} took longer than {limit:?}"),
    }
}

fn wasmrpc(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::from(clean_command(wasmrpc_bin()));
    command.args(args);
    command
}

/// A server with every example deployed, closing a WebSocket connection
/// idle for a second (the drivers wait that out and call again).
async fn examples_server() -> Server {
    let server = Server::start(&["--ws-idle-timeout-s", "1"]);
    for name in EXAMPLES {
        server.deploy_ok(name, name).await;
    }
    server
}

/// `wasmrpc stub --lang LANG` from `server` into `dir/file`.
async fn generate(server: &Server, lang: &str, dir: &Path, file: &str) -> PathBuf {
    let out = dir.join(file);
    let command = wasmrpc(&["stub", "--lang", lang, "--server", server.url.as_str(), "--out", out.to_str().unwrap()]);
    run(command, QUICK, &format!("wasmrpc stub --lang {lang}")).await;
    out
}

fn python() -> String {
    std::env::var("WASMRPC_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// `mypy --strict` of `files` in `dir`.
fn mypy_strict(dir: &Path, files: &[&str]) -> tokio::process::Command {
    let mut mypy = tokio::process::Command::new(python());
    mypy.args(["-m", "mypy", "--strict", "--cache-dir"])
        .arg(std::env::temp_dir().join("wasmrpc-e2e-mypy-cache"))
        .args(files)
        .current_dir(dir);
    mypy
}

fn tsc() -> String {
    std::env::var("WASMRPC_TSC").unwrap_or_else(|_| "tsc".to_owned())
}

/// `tsc --strict --noEmit` of `file` in `dir`.
fn tsc_no_emit(dir: &Path, file: &str) -> tokio::process::Command {
    let mut check = tokio::process::Command::new(tsc());
    check.args(["--strict", "--noEmit", "--target", "es2022", "--module", "es2022", file]).current_dir(dir);
    check
}

/// Runs the driver phases against `server`, each with its `http://` URL
/// and its `ws://` one: every method, then `text` removed (unknown method),
/// then the server stopped (transport error).
async fn drive(server: Server, driver: impl Fn(&str, &str) -> tokio::process::Command) {
    let urls = [server.url.clone(), server.url.replacen("http://", "ws://", 1)];
    for url in &urls {
        let out = run(driver(url, "calls"), QUICK, &format!("the driver's calls to {url}")).await;
        assert!(out.contains("ok"), "{out}");
    }
    let answer = server.request(Method::DELETE, "/procedures/text", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    for url in &urls {
        run(driver(url, "removed"), QUICK, &format!("the driver at {url} after `text` was removed")).await;
    }
    drop(server);
    for url in &urls {
        run(driver(url, "stopped"), QUICK, &format!("the driver at {url} after the server stopped")).await;
    }
}

/// `node`, with the flag that gives Node 20 and 21 their global `WebSocket`
/// (Node 22 has it without).
async fn node() -> tokio::process::Command {
    let mut version = tokio::process::Command::new("node");
    version.arg("--version");
    let version = String::from_utf8_lossy(&bounded(&mut version, QUICK, "node --version").await.stdout).into_owned();
    let major: u32 = version.trim().trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    let mut node = tokio::process::Command::new("node");
    if major < 22 {
        node.arg("--experimental-websocket");
    }
    node
}

#[tokio::test]
async fn python_stub_passes_mypy_strict_and_calls_every_example() {
    // Type checkers and cargo load both cores: no timing test runs beside them.
    let _heavy = heavy().await;
    let server = examples_server().await;
    let dir = tempfile::tempdir().unwrap();
    generate(&server, "python", dir.path(), "stub.py").await;
    std::fs::copy(here().join("driver.py"), dir.path().join("driver.py")).unwrap();
    run(mypy_strict(dir.path(), &["stub.py", "driver.py"]), QUICK, "mypy --strict").await;
    let python = python();
    let dir_path = dir.path().to_owned();
    drive(server, |url, phase| {
        let mut command = tokio::process::Command::new(&python);
        command.arg("driver.py").args([url, phase]).current_dir(&dir_path);
        command
    })
    .await;
}

#[tokio::test]
async fn typescript_stub_passes_tsc_strict_and_calls_every_example() {
    // Type checkers and cargo load both cores: no timing test runs beside them.
    let _heavy = heavy().await;
    let server = examples_server().await;
    let dir = tempfile::tempdir().unwrap();
    generate(&server, "typescript", dir.path(), "stub.ts").await;
    std::fs::copy(here().join("driver.ts"), dir.path().join("driver.ts")).unwrap();
    run(tsc_no_emit(dir.path(), "stub.ts"), QUICK, "tsc --strict --noEmit stub.ts").await;
    // The driver, type-checked against the stub too, and both compiled to
    // JavaScript for node.
    let mut build = tokio::process::Command::new(tsc());
    build
        .args([
            "--strict",
            "--noEmitOnError",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
        ])
        .args(["--outDir", "js", "stub.ts", "driver.ts"])
        .current_dir(dir.path());
    run(build, QUICK, "tsc --strict stub.ts driver.ts").await;
    std::fs::write(dir.path().join("js/package.json"), r#"{"type": "module"}"#).unwrap();
    let js = dir.path().join("js");
    let node = node().await;
    drive(server, |url, phase| {
        let mut command = tokio::process::Command::new(node.as_std().get_program());
        command.args(node.as_std().get_args()).arg("driver.js").args([url, phase]).current_dir(&js);
        command
    })
    .await;
}

/// The Rust driver crate builds into `$CARGO_TARGET_DIR/stub-clients`: a
/// target dir of its own (a nested cargo would wait on the lock of the one
/// this test binary was built in), kept between runs, so the client's
/// dependencies compile once.
fn rust_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("stub-clients"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/stub-clients"),
    }
}

/// Builds the crate `package` in `dir` (its `src/` holds `main.rs` and the
/// stub) on `wasmrpc-client`, into [`rust_target_dir`]; returns its binary.
async fn build_rust_client(dir: &Path, package: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let manifest = format!(
        r#"[package]
name = "{package}"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasmrpc-client = {{ path = {client:?}, features = ["blocking"] }}
tokio = {{ version = "1", features = ["rt", "time"] }}

# The workspace's profile, so dependencies build as they do there.
[profile.dev.package."*"]
opt-level = 2

[profile.dev]
debug = "line-tables-only"

[workspace]
"#,
        client = repo.join("client").display().to_string()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock file: the same versions, nothing to resolve.
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let mut build = tokio::process::Command::new(env!("CARGO"));
    build.args(["build", "--quiet"]).env("CARGO_TARGET_DIR", rust_target_dir()).current_dir(dir);
    run(build, FIRST_BUILD, &format!("cargo build of the Rust stub and {package}")).await;
    rust_target_dir().join("debug").join(package)
}

#[tokio::test]
async fn rust_stub_builds_and_calls_every_example() {
    // Type checkers and cargo load both cores: no timing test runs beside them.
    let _heavy = heavy().await;
    let server = examples_server().await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    generate(&server, "rust", &src, "stub.rs").await;
    std::fs::copy(here().join("driver.rs"), src.join("main.rs")).unwrap();
    let binary = build_rust_client(dir.path(), "stub-driver").await;
    drive(server, |url, phase| {
        let mut command = tokio::process::Command::new(&binary);
        command.args([url, phase]);
        command
    })
    .await;
}

/// A caller key goes in the WebSocket handshake: `wasmrpc call --key` (on
/// `wasmrpc-client`, as the Rust stubs are) calls over `ws://` with it, and
/// is refused without it, with the server's reason; the Python stub sends
/// its `key` as a header, the TypeScript stub (under Node) as the
/// subprotocol a browser would use, over `http://` and `ws://` both.
#[tokio::test]
async fn a_caller_key_goes_in_the_websocket_handshake() {
    let _heavy = heavy().await;
    let server = Server::start(&["--require-call-key"]);
    server.deploy_ok("math", "math").await;
    let create = wasmrpc(&["keys", "create", "--procedure", "math", "stub", "--server", server.url.as_str()]);
    let key = run(create, QUICK, "wasmrpc keys create").await;
    let key = key.lines().last().unwrap_or_default().trim().to_owned();
    let ws = server.url.replacen("http://", "ws://", 1);
    let call = wasmrpc(&["call", "math.add", "[2, 3]", "--server", &ws, "--key", &key]);
    assert_eq!(run(call, QUICK, "wasmrpc call over ws:// with a key").await.trim(), "5");
    let refused = bounded(&mut wasmrpc(&["call", "math.add", "[2, 3]", "--server", &ws]), QUICK, "wasmrpc call").await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("missing caller key"), "{stderr}");

    // `wasmrpc stub` needs the key too, and says so without it.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stub.py");
    let mut stub =
        wasmrpc(&["stub", "--lang", "python", "--server", server.url.as_str(), "--out", out.to_str().unwrap()]);
    let refused = bounded(&mut stub, QUICK, "wasmrpc stub without a key").await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("missing caller key") && stderr.contains("--key"), "{stderr}");
    for (lang, file) in [("python", "stub.py"), ("typescript", "stub.ts")] {
        let out = dir.path().join(file);
        let args =
            ["stub", "--lang", lang, "--server", server.url.as_str(), "--key", &key, "--out", out.to_str().unwrap()];
        run(wasmrpc(&args), QUICK, &format!("wasmrpc stub --lang {lang} --key")).await;
    }
    let mut build = tokio::process::Command::new(tsc());
    build
        .args(["--strict", "--target", "es2022", "--module", "es2022", "--outDir", "js", "stub.ts"])
        .current_dir(dir.path());
    run(build, QUICK, "tsc stub.ts").await;
    std::fs::write(dir.path().join("js/package.json"), r#"{"type": "module"}"#).unwrap();
    let python_script = "import sys\nfrom stub import Client, RpcError\n\
        with Client(sys.argv[1], key=sys.argv[2] or None) as c:\n    print(c.math.add(2, 3))\n";
    let node_script = "import { Client } from './stub.js';\n\
        const c = new Client(process.argv[2], { key: process.argv[3] || undefined });\n\
        try { console.log(await c.math.add(2, 3)); } finally { c.close(); }\n";
    std::fs::write(dir.path().join("key.py"), python_script).unwrap();
    std::fs::write(dir.path().join("js/key.mjs"), node_script).unwrap();
    let node = node().await;
    for url in [server.url.as_str(), ws.as_str()] {
        for (with_key, expect_ok) in [(key.as_str(), true), ("", false)] {
            let mut python = tokio::process::Command::new(python());
            python.args(["key.py", url, with_key]).current_dir(dir.path());
            let mut node_run = tokio::process::Command::new(node.as_std().get_program());
            node_run.args(node.as_std().get_args()).args(["key.mjs", url, with_key]).current_dir(dir.path().join("js"));
            for (what, mut command) in [("the Python stub", python), ("the TypeScript stub", node_run)] {
                let out = bounded(&mut command, QUICK, what).await;
                let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                if expect_ok {
                    assert!(out.status.success() && stdout.trim() == "5", "{what} at {url}: {stdout}\n{stderr}");
                } else {
                    // The refusal's reason, except where a WebSocket class
                    // shows none of a refused handshake (Node's).
                    let node_ws = what.contains("TypeScript") && url.starts_with("ws:");
                    let reason = if node_ws { "cannot reach the server" } else { "missing caller key" };
                    assert!(!out.status.success() && stderr.contains(reason), "{what} at {url}: {stdout}\n{stderr}");
                }
            }
        }
    }
}

/// A document that is hard to write down in any of the stubs' languages:
/// `test/quotes`, whose docs end in `"` or hold `"""`, `*/`, `/*`, backticks
/// and backslashes, whose enum values hold quotes, backslashes and `*/`, and
/// whose procedure (deployed as `class` and as `type`), method, parameter and
/// field names are keywords in Python, TypeScript or Rust. Each stub
/// type-checks, keeps every description of the document (Python: as its
/// docstrings, character for character; TypeScript and Rust: line for line
/// in their comments), and the Python and Rust ones send the keyword-named
/// parameters under their names.
#[tokio::test]
async fn stubs_of_a_hostile_document_type_check_and_keep_its_docs() {
    // Type checkers and cargo load both cores: no timing test runs beside them.
    let _heavy = heavy().await;
    let server = Server::start(&[]);
    server.deploy_ok("class", "test_quotes").await;
    server.deploy_ok("type", "test_quotes").await;
    let document = server.call("rpc.discover", serde_json::json!([])).await["result"].take();
    let descriptions = descriptions_in(&document["methods"]);
    assert!(descriptions.iter().any(|d| d.ends_with('"') && !d.contains('\n')), "{descriptions:?}");
    let dir = tempfile::tempdir().unwrap();
    let url = server.url.as_str();

    generate(&server, "python", dir.path(), "stub.py").await;
    std::fs::write(dir.path().join("openrpc.json"), document.to_string()).unwrap();
    std::fs::write(dir.path().join("check.py"), HOSTILE_PYTHON_CHECK).unwrap();
    run(mypy_strict(dir.path(), &["stub.py", "check.py"]), QUICK, "mypy --strict of the hostile stub").await;
    let mut check = tokio::process::Command::new(python());
    check.args(["check.py", url, "openrpc.json"]).current_dir(dir.path());
    let out = run(check, QUICK, "check.py of the hostile Python stub").await;
    assert!(out.contains("ok"), "{out}");

    let ts = generate(&server, "typescript", dir.path(), "stub.ts").await;
    run(tsc_no_emit(dir.path(), "stub.ts"), QUICK, "tsc --strict --noEmit of the hostile stub").await;
    let ts = std::fs::read_to_string(ts).unwrap();
    for line in descriptions.iter().flat_map(|d| d.lines()) {
        // `*/` would end the comment: it is written `*\/`.
        let line = line.replace("*/", "*\\/");
        let found = if line.is_empty() {
            ts.contains(" *\n")
        } else {
            ts.contains(&format!(" * {line}\n")) || ts.contains(&format!("/** {line} */\n"))
        };
        assert!(found, "{line}\n{ts}");
    }

    let crate_dir = tempfile::tempdir().unwrap();
    let src = crate_dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let rs = generate(&server, "rust", &src, "stub.rs").await;
    std::fs::write(src.join("main.rs"), HOSTILE_RUST_MAIN).unwrap();
    let binary = build_rust_client(crate_dir.path(), "stub-hostile").await;
    let rs = std::fs::read_to_string(rs).unwrap();
    for line in descriptions.iter().flat_map(|d| d.lines()) {
        let line = if line.is_empty() { "///\n".to_owned() } else { format!("/// {line}\n") };
        assert!(rs.contains(&line), "{line}\n{rs}");
    }
    let mut call = tokio::process::Command::new(&binary);
    call.arg(url);
    let out = run(call, QUICK, "the hostile Rust stub's calls").await;
    assert!(out.contains("ok"), "{out}");
}

/// Every `description` in `value`, trimmed as the stubs take them.
fn descriptions_in(value: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    match value {
        serde_json::Value::Object(object) => {
            if let Some(serde_json::Value::String(text)) = object.get("description") {
                found.push(text.trim().to_owned());
            }
            object.values().for_each(|v| found.extend(descriptions_in(v)));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| found.extend(descriptions_in(v))),
        _ => {}
    }
    found
}

/// Checks the Python stub of `test/quotes`, type-checked with it by mypy.
const HOSTILE_PYTHON_CHECK: &str = r#""""Usage: check.py URL OPENRPC_JSON. Every description of the document's
methods is a docstring of stub.py, and keyword-named parameters and fields go by their
names on the wire."""

import ast
import inspect
import json
import sys
from typing import Any, List, Set

from stub import Client


def descriptions(value: Any) -> List[str]:
    found: List[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("description"), str):
            found.append(value["description"].strip())
        for item in value.values():
            found.extend(descriptions(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(descriptions(item))
    return found


def docstrings(path: str) -> Set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    return {
        inspect.cleandoc(node.value.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def main() -> None:
    with open(sys.argv[2], encoding="utf-8") as f:
        document = json.load(f)
    found = docstrings("stub.py")
    for text in descriptions(document["methods"]):
        assert text in found, f"{text!r} is no docstring of stub.py"
    client = Client(sys.argv[1], timeout=10)
    assert client.class_.quote("x") == '"x"'
    k = client.type.keywords("c", 1, True, "it's", function="f", delete=False, new=3, match="*/", fn="fn")
    got = (k.class_, k.from_, k.lambda_, k.type, k.function, k.delete, k.new, k.match, k.fn, k.self_)
    assert got == ("c", 1, True, "it's", "f", False, 3, "*/", "fn", "self"), got
    assert client.class_.it_s__odd____('say "hi"') == 'say "hi"'
    assert client.type.self_("back\\slash\\") == "back\\slash\\"
    assert client.type.self_() is None
    print("ok")


main()
"#;

/// Calls `test/quotes` through its Rust stub.
const HOSTILE_RUST_MAIN: &str = r#"mod stub;

use stub::{NullableTone, Procedures as _, Tone};

fn main() {
    let url = std::env::args().nth(1).expect("URL");
    let client = wasmrpc_client::blocking::Client::new(&url).expect("a runtime");
    assert_eq!(client.class().quote("x").unwrap(), "\"x\"");
    let k = client
        .type_()
        .keywords("c", 1, true, Tone::ItS, Some("f".into()), Some(false), Some(3), Some(NullableTone::Empty), None)
        .unwrap();
    let got = (k.class.as_str(), k.from, k.lambda, k.type_, k.new_, k.match_, k.fn_, k.self_.as_deref());
    assert_eq!(got, ("c", 1, true, Tone::ItS, Some(3), Some(Tone::Empty), None, Some("self")));
    assert_eq!(client.class().it_s__odd____(Tone::SayHi).unwrap(), Tone::SayHi);
    assert_eq!(client.type_().self_(Some(NullableTone::Self_)).unwrap(), Some(NullableTone::Self_));
    println!("ok");
}
"#;

/// The golden files: what the generator writes for `json` in every language
/// (and for procedures calling `json`), checked with `--check` itself.
#[tokio::test]
async fn golden_stubs_of_json_are_fresh() {
    let server = Server::start(&[]);
    server.deploy_ok("json", "json").await;
    server.deploy_ok("math", "math").await;
    let bless = std::env::var_os("WASMRPC_BLESS").is_some();
    for (lang, guest, file) in [
        ("python", false, "json.py"),
        ("typescript", false, "json.ts"),
        ("rust", false, "json.rs"),
        ("rust", true, "json_guest.rs"),
    ] {
        let golden = here().join("golden").join(file);
        let mut args = vec!["stub", "--lang", lang, "--only", "json", "--server", server.url.as_str()];
        args.extend(["--out", golden.to_str().unwrap()]);
        if guest {
            args.push("--guest");
        }
        if !bless {
            args.push("--check");
        }
        let out = run(wasmrpc(&args), QUICK, &format!("{file} (WASMRPC_BLESS=1 writes it anew)")).await;
        assert!(bless || out.contains("is up to date"), "{out}");
    }
}

#[tokio::test]
async fn check_fails_on_a_stale_stub_with_a_short_diff() {
    let server = Server::start(&[]);
    server.deploy_ok("ver", "test_v1").await;
    let dir = tempfile::tempdir().unwrap();
    let stub = generate(&server, "python", dir.path(), "ver.py").await;
    let check = || {
        wasmrpc(&[
            "stub",
            "--lang",
            "python",
            "--server",
            server.url.as_str(),
            "--out",
            stub.to_str().unwrap(),
            "--check",
        ])
    };
    let out = run(check(), QUICK, "--check of a fresh stub").await;
    assert!(out.contains("is up to date"), "{out}");

    // The procedure changes: its doc comment says 2.
    server.deploy_ok("ver", "test_v2").await;
    let output = bounded(&mut check(), QUICK, "--check of a stale stub").await;
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("ver.py is stale: the document changed"), "{out}");
    assert!(out.contains("-        \"\"\"Which version this is: 1.\"\"\""), "{out}");
    assert!(out.contains("+        \"\"\"Which version this is: 2.\"\"\""), "{out}");

    // A hand edit to a stub from the current document.
    generate(&server, "python", dir.path(), "ver.py").await;
    let edited = std::fs::read_to_string(&stub).unwrap().replace("def version", "def versions");
    std::fs::write(&stub, edited).unwrap();
    let output = bounded(&mut check(), QUICK, "--check of an edited stub").await;
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("same document, but it was edited"), "{out}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens there.
    let output =
        bounded(&mut wasmrpc(&["stub", "--lang", "python", "--server", "http://127.0.0.1:9"]), QUICK, "stub").await;
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(err.contains("cannot read the OpenRPC document of http://127.0.0.1:9"), "{err}");
    assert!(err.contains("cannot reach the server at http://127.0.0.1:9/rpc"), "{err}");

    let metadata = dir.path().join("metadata.json");
    std::fs::write(&metadata, r#"[{"name": "math", "version": 1}]"#).unwrap();
    let args = ["stub", "--lang", "rust", "--file", metadata.to_str().unwrap()];
    let output = bounded(&mut wasmrpc(&args), QUICK, "stub").await;
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(err.contains("not an OpenRPC document"), "{err}");

    // A saved document whose schema has no type in the stub: any JSON,
    // said in the file and on stderr.
    let doc = dir.path().join("openrpc.json");
    let union = r#"{"oneOf": [{"type": "string"}, {"type": "object", "properties": {"a": {"type": "integer"}}}]}"#;
    std::fs::write(
        &doc,
        format!(
            r#"{{"openrpc": "1.3.2", "info": {{"title": "t", "version": "1"}}, "methods": [
                {{"name": "shapes.area", "params": [{{"name": "shape", "required": true, "schema": {union}}}],
                  "result": {{"name": "result", "schema": {{"type": "number"}}}}}}]}}"#
        ),
    )
    .unwrap();
    let output =
        bounded(&mut wasmrpc(&["stub", "--lang", "typescript", "--file", doc.to_str().unwrap()]), QUICK, "stub").await;
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{err}");
    assert!(out.contains("area(shape: unknown): Promise<number>"), "{out}");
    assert!(
        out.contains("`shape`: `oneOf` of several kinds of value (a union) has no type in the stub: any JSON."),
        "{out}"
    );
    assert!(err.contains("note: shapes.area parameter `shape`: `oneOf` of several kinds"), "{err}");

    let output = bounded(&mut wasmrpc(&["stub", "--lang", "python", "--guest", "--file", "x"]), QUICK, "stub").await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("--guest writes Rust"));
}
