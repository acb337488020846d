//! The command line against a real server: deploy, call, list, remove, and
//! the errors a user sees.

use crate::support::{wasm_path, wasmrpc, Server};

#[tokio::test(flavor = "multi_thread")]
async fn deploy_call_list_remove() {
    let server = Server::start(&[]);
    let url = server.url.clone();
    let math = wasm_path("math");
    let math = math.to_str().unwrap();
    let run = |args: Vec<&str>| {
        let mut all = args;
        all.extend(["--server", &url]);
        wasmrpc(&all)
    };
    let (ok, out, err) = tokio::task::block_in_place(|| run(vec!["deploy", "math", math]));
    assert!(ok, "{err}");
    assert!(out.contains("deployed math version 1"), "{out}");
    assert!(out.contains("math.add"), "{out}");

    let (ok, out, err) = tokio::task::block_in_place(|| run(vec!["call", "math.add", "[2, 40]"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "42");
    let (ok, out, _) = tokio::task::block_in_place(|| run(vec!["call", "math.add", r#"{"a": 1, "b": 2}"#]));
    assert!(ok);
    assert_eq!(out.trim(), "3");

    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["call", "math.divide", "[1, 0]"]));
    assert!(!ok);
    assert!(err.contains("error"), "{err}");

    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["call", "math.add", "[1, 2"]));
    assert!(!ok);
    assert!(err.contains("PARAMS is not valid JSON"), "{err}");

    let (ok, out, _) = tokio::task::block_in_place(|| run(vec!["list"]));
    assert!(ok);
    assert!(out.contains("math v1"), "{out}");

    let (ok, out, _) = tokio::task::block_in_place(|| run(vec!["remove", "math"]));
    assert!(ok);
    assert!(out.contains("removed math"));
    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["remove", "math"]));
    assert!(!ok);
    assert!(err.contains("404") && err.contains("math"), "{err}");
}

#[test]
fn a_missing_server_is_named() {
    // Port 9 on loopback: nothing listens there.
    let (ok, _, err) = wasmrpc(&["list", "--server", "http://127.0.0.1:9"]);
    assert!(!ok);
    assert!(err.contains("cannot reach the server at http://127.0.0.1:9"), "{err}");
}

#[test]
fn every_command_has_help() {
    for command in ["serve", "deploy", "call", "list", "remove"] {
        let (ok, out, _) = wasmrpc(&[command, "--help"]);
        assert!(ok && out.contains("Usage"), "{command}: {out}");
    }
    let (_, out, _) = wasmrpc(&["serve", "--help"]);
    for flag in [
        "--listen",
        "--data-dir",
        "--time-limit-ms",
        "--memory-limit-mib",
        "--max-module-mib",
        "--max-body-kib",
        "--max-batch",
        "--max-concurrent-calls",
        "--max-connections",
        "--header-timeout-ms",
        "--body-timeout-ms",
        "--log-format",
        "--admin-token",
        "--watch",
    ] {
        assert!(out.contains(flag), "serve --help lacks {flag}");
    }
}
