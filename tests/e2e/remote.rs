//! Remote procedure calls: a procedure on server A calls server B's `math`
//! through the SDK's `remote::Client` and the typed stub `wasmrpc stub
//! --lang rust --guest --remote` generated (`test/remote-caller`, whose
//! checked-in stub must be fresh). The allow-list governs the calls: with
//! no grant for B they are refused, saying which grant to add. B's errors
//! pass through with B's code; B down, or B not answering, is a clear
//! -32012 error at once, not a hang. Loopback only.

use std::path::Path;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::{timing, wasmrpc, Server};
use crate::upstream::deploy_with_grants;

/// Deploys `test_remote_caller` on `server` as `name`, granted `grants`.
async fn deploy_caller(server: &Server, name: &str, grants: &[&str]) -> Value {
    let (status, metadata) = deploy_with_grants(server, name, "test_remote_caller", grants).await;
    assert!(matches!(status, StatusCode::CREATED | StatusCode::OK), "{metadata}");
    metadata
}

#[tokio::test]
async fn a_procedure_calls_another_servers_math_through_its_generated_stub() {
    let _timing = timing().await;
    let b = Server::start(&[]);
    b.deploy_ok("math", "math").await;
    // A's time limit is long: a hang would show as a 10 s call.
    let a = Server::start(&["--time-limit-ms", "10000"]);
    let meta = deploy_caller(&a, "rc", &[&b.url]).await;
    assert_eq!(meta["allowed_outbound"], json!([b.url]), "{meta}");

    // The checked-in stub is what the generator writes for B's math now.
    let stub = Path::new(env!("CARGO_MANIFEST_DIR")).join("../procedures/test/remote-caller/src/math_remote.rs");
    let args = ["stub", "--lang", "rust", "--guest", "--remote", "--only", "math", "--server", &b.url, "--out"];
    let (ok, out, err) = wasmrpc(&[&args[..], &[stub.to_str().unwrap(), "--check"]].concat());
    assert!(ok && out.contains("is up to date"), "{out}{err}\n(regenerate it without --check)");

    // B's sum, through the typed stub.
    let sum = a.result("rc.add_remote", json!({"url": b.url, "a": 2, "b": 3})).await;
    assert_eq!(sum, 5);
    // B's error passes through as B answered it: its code, message, data.
    let direct = b.error("math.divide", json!({"a": 2.0, "b": 0.0})).await;
    let through = a.error("rc.divide_remote", json!({"url": b.url, "a": 2.0, "b": 0.0})).await;
    assert_eq!(through, direct, "{through}");
    assert_eq!(through["code"], 1);
    // So does B's own refusal of an unknown method.
    let unknown = a.error("rc.call_remote", json!({"url": b.url, "method": "math.nope", "params": [1]})).await;
    assert_eq!(unknown["code"], -32601, "{unknown}");
    let untyped = a.result("rc.call_remote", json!({"url": b.url, "method": "math.multiply", "params": [6, 7]})).await;
    assert_eq!(untyped, 42);

    // Deployed without the grant: refused, naming the grant to add.
    deploy_caller(&a, "plain", &[]).await;
    let refused = a.error("plain.add_remote", json!({"url": b.url, "a": 2, "b": 3})).await;
    assert_eq!(refused["code"], -32012, "{refused}");
    assert_eq!(refused["data"]["error"], "HTTP-request-denied", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains(&format!("remote call math.add to {}/rpc failed: refused", b.url)), "{message}");
    assert!(message.contains(&format!("--allow-outbound {}`", b.url)), "{message}");

    // A server that accepts but never answers: the client's timeout ends
    // the call, the procedure answers in its own time.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            connections.push(stream);
        }
    });
    deploy_caller(&a, "rc", &[&b.url, &silent_url]).await;
    let started = Instant::now();
    let params = json!({"url": silent_url, "method": "math.add", "params": [1, 2], "timeout_ms": 300});
    let timed_out = a.error("rc.call_remote", params).await;
    assert_eq!((timed_out["code"].as_i64(), timed_out["data"]["error"].as_str()), (Some(-32012), Some("timeout")));
    assert!(timed_out["message"].as_str().unwrap().contains("did not answer in time"), "{timed_out}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    held.abort();

    // B down: a clear error at once, not a hang until A's time limit.
    let b_url = b.url.clone();
    drop(b.kill());
    let started = Instant::now();
    let down = a.error("rc.add_remote", json!({"url": b_url, "a": 2, "b": 3})).await;
    let elapsed = started.elapsed();
    assert_eq!((down["code"].as_i64(), down["data"]["error"].as_str()), (Some(-32012), Some("connection-refused")));
    let message = down["message"].as_str().unwrap();
    assert!(message.contains(&format!("{b_url}/rpc failed: connection refused")), "{message}");
    assert!(elapsed < Duration::from_secs(3), "B down took {elapsed:?}");
}

#[test]
fn remote_stubs_are_guest_stubs() {
    let (ok, _, err) = wasmrpc(&["stub", "--lang", "rust", "--remote", "--file", "x"]);
    assert!(!ok && err.contains("--guest"), "{err}");
}
