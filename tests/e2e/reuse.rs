//! Opt-in instance reuse (`PUT /procedures/{name}?reuse=N`), with the
//! `test_reuse` guest, whose statics tell a fresh instance (its `count`
//! answers one) from a reused one: N calls per instance, a fresh one after a
//! trap or a limit, one call at a time per instance, the idle time, the
//! memory ceiling, nested calls, and the setting kept with its version.
//! That a default deploy stays fresh is `isolation.rs`'s, unchanged.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{join_all, timing, Server};

/// Deploys `test_reuse` as `name` with `query` (`reuse=3&...`): the answer.
async fn deploy_reusing(server: &Server, name: &str, query: &str) -> (StatusCode, Value) {
    let answer = server
        .request(Method::PUT, &format!("/procedures/{name}?{query}"), &[], crate::support::wasm("test_reuse"))
        .await;
    let status = answer.status;
    (status, answer.json().unwrap_or_else(|_| json!({"text": answer.text()})))
}

/// `count` called `n` times in a row: what each answered.
async fn counts(server: &Server, method: &str, n: usize) -> Vec<u64> {
    let mut answers = Vec::new();
    for _ in 0..n {
        answers.push(server.result(method, json!([])).await.as_u64().unwrap());
    }
    answers
}

#[tokio::test]
async fn an_instance_serves_n_calls_then_a_fresh_one_takes_over() {
    let server = Server::start(&[]);
    let (status, meta) = deploy_reusing(&server, "r", "reuse=3").await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");
    assert_eq!(meta["reuse"], json!({"calls": 3, "idle_ms": 30000, "memory_mib": null}));
    assert_eq!(counts(&server, "r.count", 7).await, [1, 2, 3, 1, 2, 3, 1]);
    let reused = "wasmrpc_reused_instance_calls_total{procedure=\"r\"}";
    assert_eq!(server.metric(reused).await, Some(4.0));

    // The default: a fresh instance per call, shown as reuse 1.
    let fresh = server.deploy_ok("f", "test_reuse").await;
    assert_eq!(fresh["reuse"]["calls"], 1);
    assert_eq!(counts(&server, "f.count", 3).await, [1, 1, 1]);

    // The procedure's own error keeps the instance; a trap does not.
    assert_eq!(counts(&server, "r.count", 2).await, [2, 3]);
    assert_eq!(counts(&server, "r.count", 1).await, [1]);
    let error = server.error("r.fail", json!([])).await;
    assert_eq!((error["code"].as_i64(), error["message"].as_str()), (Some(7), Some("failing on purpose at call 2")));
    assert_eq!(counts(&server, "r.count", 1).await, [3]);
    assert_eq!(counts(&server, "r.count", 1).await, [1]);
    let error = server.error("r.trap", json!([])).await;
    assert_eq!(error["code"], -32000, "{error}");
    assert_eq!(counts(&server, "r.count", 2).await, [1, 2]);
}

#[tokio::test]
async fn no_call_follows_a_time_or_memory_limit_on_its_instance() {
    let _timing = timing().await;
    let server = Server::start(&["--time-limit-ms", "400", "--memory-limit-mib", "48"]);
    deploy_reusing(&server, "r", "reuse=100").await;
    assert_eq!(counts(&server, "r.count", 2).await, [1, 2]);
    let error = server.error("r.sleep", json!([2000])).await;
    assert_eq!(error["code"], -32001, "{error}");
    assert_eq!(counts(&server, "r.count", 1).await, [1]);
    let error = server.error("r.grow", json!([64])).await;
    assert_eq!(error["code"], -32002, "{error}");
    assert_eq!(counts(&server, "r.count", 1).await, [1]);
}

#[tokio::test]
async fn an_instance_past_its_memory_ceiling_is_dropped_after_its_call() {
    let server = Server::start(&[]);
    deploy_reusing(&server, "r", "reuse=100&reuse-memory-mib=24").await;
    // Small growth stays under the ceiling: the instance serves on.
    assert_eq!(server.result("r.grow", json!([1])).await, 1);
    assert_eq!(server.result("r.grow", json!([1])).await, 2);
    // This call ends with its instance above 24 MiB: it answers, and goes.
    assert_eq!(server.result("r.grow", json!([30])).await, 3);
    assert_eq!(counts(&server, "r.count", 2).await, [1, 2]);
}

#[tokio::test]
async fn concurrent_calls_each_have_an_instance_of_their_own() {
    let server = Server::start(&[]);
    deploy_reusing(&server, "r", "reuse=1000").await;
    for round in 0..3 {
        let calls = (0..16).map(|i| {
            let marker = format!("call {i} of round {round}");
            let server = &server;
            async move { (marker.clone(), server.result("r.marker", json!([marker, 40])).await) }
        });
        for (marker, answer) in join_all(calls).await {
            assert_eq!(answer, json!(marker), "a reused instance saw another call's data");
        }
    }
    // Several instances served the burst; each is kept, up to 16.
    let idle = server.metric("wasmrpc_idle_instances").await.unwrap();
    assert!((2.0..=16.0).contains(&idle), "{idle} idle instances");
    let reused = server.metric("wasmrpc_reused_instance_calls_total{procedure=\"r\"}").await.unwrap();
    assert!(reused >= 16.0, "{reused} calls reused an instance");
}

#[tokio::test]
async fn an_idle_instance_is_dropped_after_the_idle_time() {
    let server = Server::start(&[]);
    deploy_reusing(&server, "r", "reuse=100&reuse-idle-ms=200").await;
    let first = server.result("r.identity", json!([])).await;
    assert_eq!(server.result("r.identity", json!([])).await, first, "the second call reuses the instance");
    assert_eq!(server.metric("wasmrpc_idle_instances").await, Some(1.0));
    server
        .eventually(Duration::from_secs(5), "the idle instance is dropped", || async {
            server.metric("wasmrpc_idle_instances").await == Some(0.0)
        })
        .await;
    assert_ne!(server.result("r.identity", json!([])).await, first, "a fresh instance");
}

#[tokio::test]
async fn nested_calls_into_a_reusing_procedure_reuse_too() {
    let server = Server::start(&[]);
    server.deploy_ok("caller", "test_nested").await;
    deploy_reusing(&server, "r", "reuse=3").await;
    let answers =
        server.result("caller.repeat", json!({"method": "r.count", "params": [], "times": 4, "pause_ms": 0})).await;
    assert_eq!(answers, json!([1, 2, 3, 1]));
}

#[tokio::test]
async fn the_setting_is_kept_with_its_version_through_a_restart_and_a_rollback() {
    let server = Server::start(&[]);
    let (_, v1) = deploy_reusing(&server, "r", "reuse=3&reuse-idle-ms=60000&reuse-memory-mib=32").await;
    let setting = json!({"calls": 3, "idle_ms": 60000, "memory_mib": 32});
    assert_eq!(v1["reuse"], setting);
    // The same bytes without reuse are a new version; the same again, not.
    let (status, v2) = deploy_reusing(&server, "r", "").await;
    assert_eq!((status, v2["version"].as_u64(), v2["reuse"]["calls"].as_u64()), (StatusCode::OK, Some(2), Some(1)));
    let (_, same) = deploy_reusing(&server, "r", "reuse=1").await;
    assert_eq!(same["version"], 2);
    assert_eq!(counts(&server, "r.count", 2).await, [1, 1]);

    let answer = server.request(Method::POST, "/procedures/r/versions/1/activate", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json().unwrap()["reuse"], setting);
    assert_eq!(counts(&server, "r.count", 2).await, [1, 2]);
    let versions = server.request(Method::GET, "/procedures/r/versions", &[], Vec::new()).await.json().unwrap();
    assert_eq!(versions[1]["reuse"], setting, "{versions}");

    let server = server.restart();
    let meta = server.request(Method::GET, "/procedures/r", &[], Vec::new()).await.json().unwrap();
    assert_eq!(meta["reuse"], setting);
    assert_eq!(counts(&server, "r.count", 4).await, [1, 2, 3, 1]);
}

#[tokio::test]
async fn bad_settings_are_refused_saying_why() {
    let server = Server::start(&[]);
    for (query, why) in [
        ("reuse=0", "invalid reuse=0: expected calls per instance"),
        ("reuse=many", "invalid reuse=many"),
        ("reuse=2&reuse-idle-ms=0", "invalid reuse-idle-ms=0"),
        ("reuse=2&reuse-idle-ms=3600001", "from 1 to 3600000"),
        ("reuse=2&reuse-memory-mib=0", "invalid reuse-memory-mib=0"),
        ("reuse-idle-ms=100", "reuse-idle-ms applies only to reused instances: add reuse=N"),
    ] {
        let (status, body) = deploy_reusing(&server, "r", query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{query}: {body}");
    }
    assert_eq!(server.request(Method::GET, "/procedures/r", &[], Vec::new()).await.status, StatusCode::NOT_FOUND);
}
