//! Storage: deployed modules survive a restart, also after SIGKILL; versions
//! are never reused; the compiled-code cache spares recompiling; damaged files
//! are reported and skipped.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::support::Server;

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

    let server = server.restart();
    let log = server.log();
    assert!(log.contains("corrupt"), "{log}");
    assert!(log.contains("broken"), "{log}");
    assert_eq!(server.error("math.add", json!([1, 2])).await["code"], -32601);
    // text's compiled code was garbage: it was rebuilt from the module.
    assert_eq!(server.result("text.reverse", json!(["abc"])).await, json!("cba"));
    // Redeploying math mends it.
    server.deploy_ok("math", "math").await;
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
}

/// SIGTERM (a service manager) and SIGINT (Ctrl-C) both stop the server
/// gracefully: it stops listening, lets the running call finish, exits 0.
async fn a_signal_lets_running_calls_finish_and_exits_cleanly(signal: &'static str) {
    let server = Server::start(&[]);
    server.deploy_ok("hostile", "test_hostile").await;
    let url = format!("{}/rpc", server.url);
    let body = r#"{"jsonrpc":"2.0","method":"hostile.sleep","params":[800],"id":1}"#;
    let running = tokio::spawn(async move {
        wasmrpc::cli::client::send(Method::POST, &url, &[("content-type", "application/json")], body).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let url = server.url.clone();
    let status = tokio::task::spawn_blocking(move || server.stop(signal)).await.unwrap();
    assert!(status.success(), "exit status after SIG{signal}: {status}");
    let answer = running.await.unwrap().expect("the running call was answered");
    assert_eq!(answer.text(), r#"{"jsonrpc":"2.0","result":null,"id":1}"#);
    // Nothing listens any more.
    assert!(wasmrpc::cli::client::send(Method::GET, &format!("{url}/healthz"), &[], Vec::new()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_running_calls_finish_and_exits_cleanly() {
    a_signal_lets_running_calls_finish_and_exits_cleanly("TERM").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_lets_running_calls_finish_and_exits_cleanly() {
    a_signal_lets_running_calls_finish_and_exits_cleanly("INT").await;
}
