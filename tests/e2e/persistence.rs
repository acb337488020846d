//! Storage: deployed modules survive a restart, also after SIGKILL; versions
//! are never reused; the compiled-code cache spares recompiling; damaged files
//! are reported and skipped.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::support::{timing, Server};

#[tokio::test]
async fn deployments_survive_kill_and_restart() {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    server.deploy_ok("text", "text").await;
    server.deploy_ok("gone", "math").await;
    let deleted = server.request(Method::DELETE, "/procedures/gone", &[], Vec::new()).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let before = server.request(Method::GET, "/procedures", &[], Vec::new()).await.json().unwrap();

    let first_run = server.log().len();
    let server = server.restart(); // SIGKILL, then start on the same data dir
    let after = server.request(Method::GET, "/procedures", &[], Vec::new()).await.json().unwrap();
    assert_eq!(before, after);
    assert_eq!(server.result("math.add", json!([20, 22])).await, json!(42));
    // The first run compiled (and said so); the restart loads cached code only.
    assert!(server.log()[..first_run].contains("compiling"), "{}", server.log());
    let restarted = server.log()[first_run..].to_owned();
    assert!(!restarted.contains("recompiling"), "the compiled cache should serve:\n{restarted}");
    assert!(!restarted.contains("compiling"), "the restart compiled:\n{restarted}");
    // The version counter of a deleted name survived too.
    let back = server.deploy("gone", "math").await;
    assert_eq!(back.status, StatusCode::CREATED);
    assert_eq!(back.json().unwrap()["version"], 2);
}

#[tokio::test]
async fn damaged_files_are_reported_and_skipped() {
    let server = Server::start(&[]);
    let math = server.deploy_ok("math", "math").await;
    server.deploy_ok("text", "text").await;
    let sha = math["sha256"].as_str().unwrap().to_owned();
    // Truncate math's module, corrupt every compiled file, break a record.
    let module = server.data_dir.join("modules").join(format!("{sha}.wasm"));
    std::fs::write(&module, b"\0asm").unwrap();
    for entry in std::fs::read_dir(server.data_dir.join("compiled")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    std::fs::write(server.data_dir.join("procedures/broken.json"), b"{ not json").unwrap();

    let first_run = server.log().len();
    let server = server.restart();
    let log = server.log()[first_run..].to_owned();
    assert!(log.contains("corrupt"), "{log}");
    assert!(log.contains("broken"), "{log}");
    assert_eq!(server.error("math.add", json!([1, 2])).await["code"], -32601);
    // text's compiled code was garbage: it was rebuilt from the module.
    assert_eq!(server.result("text.reverse", json!(["abc"])).await, json!("cba"));
    // Redeploying math mends it.
    server.deploy_ok("math", "math").await;
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
}

/// A server (with `args`) running a call of `hostile.sleep(ms)`, once the
/// guest has said it is sleeping; the call's answer comes from the handle.
async fn server_with_a_sleeping_call(
    args: &[&str],
    ms: u64,
) -> (Server, tokio::task::JoinHandle<Result<wasmrpc_client::http::Answer, wasmrpc_client::http::TransportError>>) {
    let server = Server::start(args);
    server.deploy_ok("hostile", "test_hostile").await;
    let url = format!("{}/rpc", server.url);
    let body = format!(r#"{{"jsonrpc":"2.0","method":"hostile.sleep","params":[{ms}],"id":1}}"#);
    let from = server.log().len();
    let running = tokio::spawn(async move {
        wasmrpc_client::http::send(Method::POST, &url, &[("content-type", "application/json")], body).await
    });
    server.wait_for_log(from, &[&format!("sleeping {ms} ms")], Duration::from_secs(10)).await;
    (server, running)
}

/// SIGTERM (a service manager) and SIGINT (Ctrl-C) both stop the server
/// gracefully: it stops listening, lets the running call finish, exits 0.
async fn a_signal_lets_running_calls_finish_and_exits_cleanly(signal: &'static str) {
    let _timing = timing().await;
    let (server, running) = server_with_a_sleeping_call(&[], 800).await;
    let url = server.url.clone();
    let status = tokio::task::spawn_blocking(move || server.stop(signal)).await.unwrap();
    assert!(status.success(), "exit status after SIG{signal}: {status}");
    let answer = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("no answer 10 s after the exit")
        .unwrap()
        .expect("the running call was answered");
    assert_eq!(answer.text(), r#"{"jsonrpc":"2.0","result":null,"id":1}"#);
    // Nothing listens any more.
    assert!(wasmrpc_client::http::send(Method::GET, &format!("{url}/healthz"), &[], Vec::new()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_running_calls_finish_and_exits_cleanly() {
    a_signal_lets_running_calls_finish_and_exits_cleanly("TERM").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_lets_running_calls_finish_and_exits_cleanly() {
    a_signal_lets_running_calls_finish_and_exits_cleanly("INT").await;
}

/// A call that outlives the shutdown grace (10 s) does not keep the server
/// up: SIGTERM with a 30 s sleeper running, and the server is gone within
/// the grace and a margin, the call cut off.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_gives_up_on_a_call_after_the_grace_period() {
    let _timing = timing().await;
    let (server, running) = server_with_a_sleeping_call(&["--time-limit-ms", "60000"], 30_000).await;
    let started = Instant::now();
    let status =
        tokio::task::spawn_blocking(move || server.stop_within("TERM", Duration::from_secs(20))).await.unwrap();
    let took = started.elapsed();
    assert!(status.is_some(), "the server still ran 20 s after SIGTERM");
    assert!(took >= Duration::from_secs(9), "gave up after {took:?}, before the grace");
    assert!(took < Duration::from_secs(15), "exited {took:?} after SIGTERM, the grace is 10 s");
    let answer = tokio::time::timeout(Duration::from_secs(5), running).await.expect("the client hangs").unwrap();
    assert!(answer.is_err(), "the 30 s call was answered: {:?}", answer.map(|a| a.text()));
}

/// Flipping back to the previous version loads its compiled code from the
/// cache (the previous version's files are kept), and compiled code of
/// another engine build is removed at start, while what serves is kept.
#[tokio::test]
async fn flipping_back_reuses_cached_code_and_stale_code_is_removed() {
    let server = Server::start(&[]);
    let v1 = server.deploy_ok("v", "test_v1").await;
    server.deploy_ok("v", "test_v2").await;
    let before = server.log().len();
    let back = server.deploy_ok("v", "test_v1").await;
    assert_eq!(back["version"], 3, "{back}");
    let log = server.log()[before..].to_owned();
    assert!(!log.contains("compiling"), "flipping back compiled again:\n{log}");
    assert_eq!(server.result("v.version", json!([])).await, json!(1));

    let sha = v1["sha256"].as_str().unwrap();
    let compiled = server.data_dir.join("compiled");
    let files: Vec<_> = std::fs::read_dir(&compiled).unwrap().flatten().map(|e| e.path()).collect();
    let cached = files.iter().find(|p| p.to_string_lossy().contains(sha)).unwrap_or_else(|| panic!("{files:?}"));
    let stale = compiled.join(format!("{sha}-0000000000000000.cwasm"));
    std::fs::write(&stale, b"code of another engine build").unwrap();
    let first_run = server.log().len();
    let server = server.restart();
    assert!(!stale.exists(), "stale compiled code kept");
    assert!(cached.exists(), "the serving version's compiled code was removed");
    assert_eq!(server.result("v.version", json!([])).await, json!(1));
    let restarted = server.log()[first_run..].to_owned();
    assert!(!restarted.contains("compiling"), "the restart compiled:\n{restarted}");
}

/// Identical code is loaded once: procedures (and versions) that serve the
/// same component share one loaded copy, also after a restart, and code no
/// serving version uses is dropped.
#[tokio::test]
async fn identical_code_is_loaded_once() {
    let server = Server::start(&[]);
    for name in ["a", "b", "c"] {
        server.deploy_ok(name, "math").await;
    }
    server.deploy_ok("t", "text").await;
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(2.0));
    for name in ["a", "b", "c"] {
        assert_eq!(server.result(&format!("{name}.add"), json!([20, 22])).await, json!(42));
    }
    // After a restart code is loaded at a version's first call: once for
    // a, b and c.
    let server = server.restart();
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(0.0));
    assert_eq!(server.result("b.add", json!([1, 2])).await, json!(3));
    assert_eq!(server.result("c.add", json!([1, 2])).await, json!(3));
    assert_eq!(server.result("t.upper", json!(["x"])).await, json!("X"));
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(2.0));
    let removed = server.request(Method::DELETE, "/procedures/t", &[], Vec::new()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(1.0));
}

/// `--max-loaded-mib`: past the bound the least recently called code is
/// unloaded, and its next call loads it again from the compiled-code
/// cache, answering as before.
#[tokio::test]
async fn loaded_code_is_bounded_and_unloaded_code_loads_again_at_a_call() {
    let server = Server::start(&["--max-loaded-mib", "1"]);
    for (name, file) in [("m", "math"), ("t", "text"), ("j", "json")] {
        server.deploy_ok(name, file).await;
    }
    // Each component's code is larger than 1 MiB alone: the newest stays.
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(1.0));
    let loads = || async { server.metric("wasmrpc_code_loads_total").await.unwrap() };
    let before = loads().await;
    for round in 0..3 {
        assert_eq!(server.result("m.add", json!([round, 1])).await, json!(round + 1));
        assert_eq!(server.result("t.upper", json!(["ab"])).await, json!("AB"));
    }
    assert_eq!(loads().await - before, 6.0, "each call after the other's loaded its code again");
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(1.0));
    let bytes = server.metric("wasmrpc_loaded_code_bytes").await.unwrap();
    assert!(bytes > 0.0, "{bytes}");

    // With room for all, code stays loaded between calls.
    let server = server.restart_with(&["--max-loaded-mib", "64"]);
    for _ in 0..3 {
        server.result("m.add", json!([1, 1])).await;
        server.result("t.upper", json!(["ab"])).await;
    }
    assert_eq!(server.metric("wasmrpc_code_loads_total").await, Some(2.0));
    assert_eq!(server.metric("wasmrpc_loaded_components").await, Some(2.0));
}
