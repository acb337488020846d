//! The command line against a real server: deploy, call, list, remove, and
//! the errors a user sees.

use crate::support::{wasm_path, wasmrpc, wasmrpc_with_env, Server};

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

    let (ok, out, err) = tokio::task::block_in_place(|| run(vec!["call", "math.divide", "[1, 0]"]));
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("error 1: division by zero"), "{err}");
    assert!(err.contains(r#""a": 1.0"#) || err.contains(r#""a":1.0"#), "the error's data is not shown: {err}");

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

/// Against a server with an admin token, the server and the token come
/// from `WASMRPC_SERVER` and `WASMRPC_ADMIN_TOKEN`; a wrong token is refused
/// and nothing is deployed.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_takes_server_and_token_from_the_environment() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    let math = wasm_path("math");
    let math = math.to_str().unwrap();
    let run = |args: &[&str], token: &str| {
        let env = [("WASMRPC_SERVER", server.url.as_str()), ("WASMRPC_ADMIN_TOKEN", token)];
        tokio::task::block_in_place(|| wasmrpc_with_env(args, &env))
    };
    let (ok, _, err) = run(&["deploy", "math", math], "wrong");
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    let (ok, out, _) = run(&["list"], "wrong");
    assert!(ok && !out.contains("math"), "{out}");
    let (ok, out, err) = run(&["deploy", "math", math], "s3cret");
    assert!(ok, "{err}");
    assert!(out.contains("deployed math version 1"), "{out}");
    let (ok, out, err) = run(&["call", "math.add", "[2, 40]"], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "42");
    let (ok, _, err) = run(&["remove", "math"], "");
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    let (ok, out, err) = run(&["remove", "math"], "s3cret");
    assert!(ok, "{err}");
    assert!(out.contains("removed math"), "{out}");
}

/// Every limit of DESIGN.md's table has its variable and its default, as
/// `serve --help` shows them (from the flag definitions themselves).
#[test]
fn serve_help_names_each_variable_and_default() {
    let (ok, out, err) = wasmrpc(&["serve", "--help"]);
    assert!(ok, "{err}");
    let block = |flag: &str| -> String {
        let start = out.find(&format!("{flag} ")).unwrap_or_else(|| panic!("no {flag} in\n{out}"));
        let rest = &out[start..];
        let end = rest[1..].find("\n  -").map_or(rest.len(), |i| i + 1);
        rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
    };
    for (flag, env, default) in [
        ("--time-limit-ms", "WASMRPC_TIME_LIMIT_MS", Some("2000")),
        ("--memory-limit-mib", "WASMRPC_MEMORY_LIMIT_MIB", Some("64")),
        ("--max-module-mib", "WASMRPC_MAX_MODULE_MIB", Some("32")),
        ("--max-body-kib", "WASMRPC_MAX_BODY_KIB", Some("1024")),
        ("--max-batch", "WASMRPC_MAX_BATCH", Some("100")),
        ("--max-concurrent-calls", "WASMRPC_MAX_CONCURRENT_CALLS", Some("32 per core")),
        ("--listen", "WASMRPC_LISTEN", Some("127.0.0.1:8080")),
        ("--data-dir", "WASMRPC_DATA_DIR", Some("./wasmrpc-data")),
        ("--admin-token", "WASMRPC_ADMIN_TOKEN", None),
        ("--log-format", "WASMRPC_LOG_FORMAT", Some("text")),
    ] {
        let text = block(flag);
        assert!(text.contains(&format!("[env: {env}")), "{flag}: {text}");
        if let Some(default) = default {
            assert!(text.contains(&format!("[default: {default}]")), "{flag}: {text}");
        }
    }
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
