//! Hot reload: a PUT swaps versions atomically under load, and
//! `serve --watch DIR` follows the files in DIR.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{heavy, timing, wasm, Server};

/// 16 clients call without pause while the procedure is redeployed 100 times,
/// alternating two versions: no call fails, every answer is one of the two
/// versions, and a call right after each PUT gets the version just deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeploying_under_load_never_fails_or_mixes_a_call() {
    let _heavy = heavy().await;
    let server = Arc::new(Server::start(&[]));
    let versions = [wasm("test_v1"), wasm("test_v2")];
    assert_eq!(server.deploy_bytes("v", versions[0].clone()).await.status, StatusCode::CREATED);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (server, stop, answered) = (server.clone(), stop.clone(), answered.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = server.call("v.version", json!([])).await;
                    match &response["result"] {
                        Value::Number(n) if n.as_u64() == Some(1) || n.as_u64() == Some(2) => {}
                        _ => failures.push(response),
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();

    for round in 1..=100u64 {
        let which = (round % 2) as usize; // v2, v1, v2, ...
        let answer = server.deploy_bytes("v", versions[which].clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "round {round}: {}", answer.text());
        assert_eq!(answer.json().unwrap()["version"], round + 1);
        assert_eq!(server.result("v.version", json!([])).await, json!(which + 1), "right after PUT {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let failures = client.await.unwrap();
        assert!(failures.is_empty(), "failed calls: {failures:?}");
    }
    assert!(answered.load(Ordering::Relaxed) > 100, "the clients hardly ran");
}

/// A call running across a PUT finishes on the version it started on,
/// while a call made after the PUT answers from the new one; the same across
/// a DELETE, after which new calls get -32601. The slow call says it is
/// running through the server log, and the swap must be done (and checked)
/// before it answers.
#[tokio::test]
async fn a_call_spanning_a_put_or_delete_finishes_on_the_old_version() {
    const SLOW_MS: u64 = 3000;
    let _timing = timing().await;
    let server = Server::start(&["--time-limit-ms", "10000"]);
    // Both versions compiled once, so the PUT mid-call takes milliseconds.
    server.deploy_ok("warm", "test_v2").await;
    server.deploy_ok("v", "test_v1").await;
    let slow_call = |expected: u64| {
        let server = &server;
        async move {
            let answer = server.result("v.slow_version", json!([SLOW_MS])).await;
            assert_eq!(answer, json!(expected), "the spanning call changed version");
            Instant::now()
        }
    };
    let sleeping = format!("sleeping {SLOW_MS} ms");

    let from = server.log().len();
    let put = async {
        server.wait_for_log(from, &[&sleeping], Duration::from_secs(10)).await;
        let meta = server.deploy_ok("v", "test_v2").await;
        assert_eq!(meta["version"], 2, "{meta}");
        assert_eq!(server.result("v.version", json!([])).await, json!(2));
        Instant::now()
    };
    let (old_done, put_done) = tokio::join!(slow_call(1), put);
    assert!(put_done < old_done, "the PUT was not done before the spanning call answered");

    let from = server.log().len();
    let delete = async {
        server.wait_for_log(from, &[&sleeping], Duration::from_secs(10)).await;
        let deleted = server.request(Method::DELETE, "/procedures/v", &[], Vec::new()).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert_eq!(server.error("v.version", json!([])).await["code"], -32601);
        Instant::now()
    };
    let (old_done, delete_done) = tokio::join!(slow_call(2), delete);
    assert!(delete_done < old_done, "the DELETE was not done before the spanning call answered");
    assert_eq!(server.error("v.slow_version", json!([1])).await["code"], -32601);
}

async fn writes(path: &std::path::Path, bytes: &[u8]) {
    // Write in two parts with a pause, as a slow copy would.
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    tokio::fs::write(path, head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let mut all = head.to_vec();
    all.extend_from_slice(tail);
    tokio::fs::write(path, all).await.unwrap();
}

#[tokio::test]
async fn watch_follows_new_rewritten_and_removed_files() {
    // The two-part writes rely on the 60 ms pause staying under the debounce.
    let _timing = timing().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calc.wasm"), wasm("math")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a procedure").unwrap();
    let watched = dir.path().to_str().unwrap();
    let server = Server::start(&["--watch", watched]);
    let ready = || async { server.call("calc.add", json!([1, 2])).await["result"] == json!(3) };
    server.eventually(Duration::from_secs(20), "calc deployed at start", ready).await;

    // A new file.
    writes(&dir.path().join("ver.wasm"), &wasm("test_v1")).await;
    let is = |want: u64| {
        let server = &server;
        move || async move { server.call("ver.version", json!([])).await["result"] == json!(want) }
    };
    server.eventually(Duration::from_secs(20), "ver v1 deployed", is(1)).await;
    let meta = server.request(Method::GET, "/procedures/ver", &[], Vec::new()).await.json().unwrap();
    assert_eq!(meta["version"], 1, "{meta}");

    // A rewritten file.
    writes(&dir.path().join("ver.wasm"), &wasm("test_v2")).await;
    server.eventually(Duration::from_secs(20), "ver v2 deployed", is(2)).await;
    // Neither half-written file was tried: each rewrite made one version.
    let refused = |log: &str| log.lines().any(|l| l.contains("watch: not deploying") && l.contains("ver.wasm"));
    assert!(!refused(&server.log()), "a half-written file was loaded:\n{}", server.log());
    let meta = server.request(Method::GET, "/procedures/ver", &[], Vec::new()).await.json().unwrap();
    assert_eq!(meta["version"], 2, "{meta}");

    // A file that does not validate is logged; the previous version serves.
    let before = server.log().len();
    std::fs::write(dir.path().join("ver.wasm"), b"\0asm garbage").unwrap();
    server
        .eventually(Duration::from_secs(20), "the bad file logged", || async { refused(&server.log()[before..]) })
        .await;
    assert_eq!(server.result("ver.version", json!([])).await, json!(2));

    // A removed file is undeployed.
    std::fs::remove_file(dir.path().join("ver.wasm")).unwrap();
    server
        .eventually(Duration::from_secs(20), "ver undeployed", || async {
            server.call("ver.version", json!([])).await["error"]["code"] == json!(-32601)
        })
        .await;
    assert_eq!(server.result("calc.add", json!([2, 2])).await, json!(4));
    let list: Value = server.request(Method::GET, "/procedures", &[], Vec::new()).await.json().unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["calc"]);
}
