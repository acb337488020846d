//! Procedures calling procedures (`client.call`): the callee runs in a fresh
//! instance with its own memory limit, the whole call tree shares one
//! deadline, depth and nested-call limits end recursion with -32004, nested
//! calls never wait for the call slots their ancestors hold, and errors come
//! back with the codes an outside client would get.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{timing, wasm, Server};

/// A server with the test guest deployed as `nested` and the procedures it calls.
async fn nested_server(args: &[&str]) -> Server {
    let server = Server::start(args);
    for (name, file) in [("nested", "test_nested"), ("hostile", "test_hostile"), ("math", "math"), ("raw", "test_raw")]
    {
        server.deploy_ok(name, file).await;
    }
    server
}

/// `nested.catch`: what the calling guest got back for `method(params)`.
async fn caught(server: &Server, method: &str, params: Value) -> Value {
    server.result("nested.catch", json!([method, params])).await
}

#[tokio::test]
async fn calc_hypot_calls_math_through_the_server() {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    server.deploy_ok("calc", "calc").await;
    assert_eq!(server.result("calc.hypot", json!([3, 4])).await, json!(5.0));
    assert_eq!(server.result("calc.hypot", json!({"a": 5, "b": 12})).await, json!(13.0));
    // The callee's own error comes back unchanged through the caller's `?`.
    let overflow = server.error("calc.hypot", json!([i64::MAX, 1])).await;
    assert_eq!(overflow, server.error("math.multiply", json!([i64::MAX, i64::MAX])).await);
    assert_eq!(overflow["message"], "integer overflow in multiply", "{overflow}");

    let metrics = server.request(Method::GET, "/metrics", &[], "").await.text();
    assert!(metrics.contains("wasmrpc_nested_calls_total{caller=\"calc\",callee=\"math\"} 7\n"), "{metrics}");

    let removed = server.request(Method::DELETE, "/procedures/math", &[], "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let missing = server.error("calc.hypot", json!([3, 4])).await;
    assert_eq!(missing, json!({"code": -32601, "message": "Method not found", "data": {"method": "math.multiply"}}));
}

#[tokio::test]
async fn callee_errors_come_back_with_the_codes_an_outside_client_gets() {
    let server = nested_server(&["--memory-limit-mib", "32"]).await;
    // What the calling guest sees.
    let custom = caught(&server, "raw.custom_error", json!([])).await;
    assert_eq!(custom["error"], json!({"code": 42, "message": "custom", "data": {"detail": 1}}));
    let unknown = caught(&server, "nope.x", json!([])).await;
    assert_eq!(unknown["error"], json!({"code": -32601, "message": "Method not found", "data": {"method": "nope.x"}}));
    let panic = caught(&server, "hostile.panic", json!([])).await;
    assert_eq!(panic["error"]["code"], -32000, "{panic}");
    assert_eq!(panic["error"]["message"], "Procedure trapped", "{panic}");
    assert!(panic["error"]["data"]["stderr"].as_str().unwrap_or_default().contains("boom"), "{panic}");
    let hog = caught(&server, "hostile.hog", json!([])).await;
    assert_eq!(hog["error"]["code"], -32002, "{hog}");
    assert_eq!(hog["error"]["data"]["limit_mib"], 32, "{hog}");
    // `rpc.` methods are the server's, for clients: an error, not a crash.
    let discover = caught(&server, "rpc.discover", json!([])).await;
    assert_eq!(discover["error"]["code"], -32601, "{discover}");
    assert_eq!(discover["error"]["data"]["method"], "rpc.discover", "{discover}");
    // Params that are not an array, an object or null, as for a request.
    let bad_params = caught(&server, "math.add", json!(5)).await;
    assert_eq!(bad_params["error"]["code"], -32600, "{bad_params}");

    // Passed through unchanged, the client sees what a direct call answers.
    for (method, params) in [("raw.custom_error", json!([])), ("math.add", json!([i64::MAX, 1]))] {
        let direct = server.error(method, params.clone()).await;
        assert_eq!(server.error("nested.call", json!([method, params])).await, direct, "{method}");
    }
    let panic = server.error("nested.call", json!(["hostile.panic", []])).await;
    assert_eq!(panic["code"], -32000, "{panic}");
    assert_eq!(panic["data"]["method"], "hostile.panic", "{panic}");
    // And the server carries on.
    assert_eq!(server.result("nested.call", json!(["math.add", [2, 3]])).await, json!(5));
}

#[tokio::test]
async fn one_deadline_for_the_whole_call_tree() {
    // Bounds on elapsed time: not beside the suite's heavy tests.
    let _timing = timing().await;
    let server = nested_server(&["--time-limit-ms", "1000"]).await;
    // 600 ms in the caller, then 600 ms in the callee: each fits in the
    // limit alone, but the callee only gets what is left.
    let started = Instant::now();
    let error = server.error("nested.repeat", json!(["hostile.sleep", [600], 1, 600])).await;
    assert_eq!(error["code"], -32001, "{error}");
    assert!(started.elapsed() < Duration::from_millis(1500), "stopped after {:?}", started.elapsed());
    assert_eq!(server.result("nested.repeat", json!(["hostile.sleep", [300], 1, 300])).await, json!([null]));

    // A caller that catches its callee's timeout cannot outlive the tree's
    // deadline: the client gets -32001 all the same.
    for (method, params) in
        [("nested.catch", json!(["hostile.spin", []])), ("nested.call", json!(["nested.call", ["hostile.spin", []]]))]
    {
        let started = Instant::now();
        let error = server.error(method, params).await;
        assert_eq!(error["code"], -32001, "{method}: {error}");
        assert!(started.elapsed() < Duration::from_millis(1500), "{method} stopped after {:?}", started.elapsed());
    }
    assert_eq!(server.result("nested.call", json!(["math.add", [1, 1]])).await, json!(2));
}

#[tokio::test]
async fn depth_and_nested_call_limits_end_recursion_with_32004() {
    let _timing = timing().await;
    let server = nested_server(&[]).await;
    server.deploy_ok("ping", "test_nested").await;
    server.deploy_ok("pong", "test_nested").await;
    // A procedure calling itself, and A -> B -> A: stopped by the depth limit.
    for (method, params) in [("ping.bounce", json!(["ping", "ping"])), ("ping.bounce", json!(["pong", "ping"]))] {
        let started = Instant::now();
        let error = server.error(method, params.clone()).await;
        assert_eq!(error["code"], -32004, "{params}: {error}");
        assert_eq!(error["message"], "Call depth limit reached (--max-call-depth)", "{error}");
        assert_eq!(error["data"]["max_call_depth"], 8, "{error}");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    // 64 nested calls per top-level call, then -32004 ...
    let sums = server.result("nested.repeat", json!(["math.add", [1, 2], 64, 0])).await;
    assert_eq!(sums.as_array().map(Vec::len), Some(64));
    let error = server.error("nested.repeat", json!(["math.add", [1, 2], 65, 0])).await;
    assert_eq!(error["code"], -32004, "{error}");
    assert_eq!(error["message"], "Nested call limit reached (--max-nested-calls)", "{error}");
    assert_eq!(error["data"]["max_nested_calls"], 64, "{error}");
    // ... which the caller may handle.
    let caught = caught(&server, "ping.bounce", json!(["ping", "ping"])).await;
    assert_eq!(caught["error"]["code"], -32004, "{caught}");
}

#[tokio::test]
async fn the_limits_are_flags() {
    let server = nested_server(&["--max-call-depth", "2", "--max-nested-calls", "3"]).await;
    let two_deep = json!(["nested.call", ["math.add", [1, 2]]]);
    assert_eq!(server.result("nested.call", two_deep.clone()).await, json!(3));
    let three_deep = server.error("nested.call", json!(["nested.call", two_deep])).await;
    assert_eq!(three_deep["code"], -32004, "{three_deep}");
    assert_eq!(three_deep["data"]["max_call_depth"], 2, "{three_deep}");
    // The budget is the whole tree's: one call here and three below is four.
    let four = server.error("nested.call", json!(["nested.repeat", ["math.add", [1, 2], 3, 0]])).await;
    assert_eq!(four["code"], -32004, "{four}");
    assert_eq!(four["data"]["max_nested_calls"], 3, "{four}");

    let none = Server::start(&["--max-call-depth", "0"]);
    none.deploy_ok("nested", "test_nested").await;
    none.deploy_ok("math", "math").await;
    assert_eq!(none.error("nested.call", json!(["math.add", [1, 2]])).await["code"], -32004);
}

/// Two call slots, eight clients, each call holding a slot while its nested
/// calls run: nested calls take no slot, so every call is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_calls_do_not_wait_for_the_slots_their_ancestors_hold() {
    let server = std::sync::Arc::new(Server::start(&["--max-concurrent-calls", "2"]));
    server.deploy_ok("math", "math").await;
    server.deploy_ok("calc", "calc").await;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..10 {
                    answers.push(server.call("calc.hypot", json!([3, 4])).await);
                }
                answers
            })
        })
        .collect();
    let all = tokio::time::timeout(Duration::from_secs(60), futures_join(clients)).await.expect("a call hung");
    let mut answered = 0;
    for response in all.iter().flatten() {
        if response["result"] == json!(5.0) {
            answered += 1;
            continue;
        }
        // Only a top-level call may find the server full, never a nested one.
        assert_eq!(response["error"]["code"], -32003, "{response}");
        assert_eq!(response["error"]["data"]["method"], "calc.hypot", "{response}");
    }
    assert!(answered >= 40, "only {answered} of 80 calls got a result");
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_callee_runs_in_its_own_instance_with_its_own_memory_limit() {
    let server = nested_server(&["--memory-limit-mib", "32"]).await;
    server.deploy_ok("other", "test_nested").await;
    let seen = server.result("nested.remember", json!(["s3cret", "other.recall"])).await;
    assert_eq!(seen, json!({"callee_found": "", "mine_after": "s3cret"}));
    // 20 MiB in the caller and 20 in the callee: 40 MiB, each within its own 32.
    let held = server.result("nested.hold", json!([20, "other.hold", [20, "math.add", [1, 2]]])).await;
    assert_eq!(held, json!({"held_mib": 20, "result": {"held_mib": 20, "result": 3}}));
    // A callee past its limit fails alone; the caller holding memory carries on.
    let hog = server.result("nested.hold", json!([20, "nested.catch", ["hostile.hog", []]])).await;
    assert_eq!(hog["result"]["error"]["code"], -32002, "{hog}");
}

#[tokio::test]
async fn a_hot_swap_during_a_call_tree_fails_nothing() {
    let _timing = timing().await;
    let server = nested_server(&["--time-limit-ms", "5000"]).await;
    // Compiled once beforehand, so that the swap below takes milliseconds.
    server.deploy_ok("warm", "test_v2").await;
    server.deploy_ok("ver", "test_v1").await;
    let from = server.log().len();
    let tree = server.result("nested.repeat", json!(["ver.version", [], 20, 100]));
    // The swap comes once the tree has made two nested calls (each logs a
    // line naming its caller), so that it lands inside the tree: 18 calls
    // of 100 ms are left.
    let swap = async {
        let wait = Duration::from_secs(10);
        let nested_call = ["\"ver.version\"", "caller"];
        let after_first = server.wait_for_log(from, &nested_call, wait).await;
        server.wait_for_log(after_first, &nested_call, wait).await;
        server.deploy_bytes("ver", wasm("test_v2")).await
    };
    let (versions, swapped) = tokio::join!(tree, swap);
    assert_eq!(swapped.status, StatusCode::OK, "{}", swapped.text());
    let versions: Vec<u64> = versions.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    // Each nested call saw the version serving at that moment: 1s, then 2s.
    assert!(versions.starts_with(&[1]) && versions.ends_with(&[2]), "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
}

#[tokio::test]
async fn components_built_against_wit_0_1_0_keep_working() {
    let legacy = wasm("test_legacy");
    let contains = |needle: &[u8]| legacy.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"wasmrpc:procedure/host@0.1.0"), "the fixture is built against 0.1.0");
    assert!(!contains(b"wasmrpc:procedure/client"), "the fixture predates `client`");
    let server = nested_server(&[]).await;
    server.deploy_ok("legacy", "test_legacy").await;
    let hello = json!("hello from wasmrpc:procedure@0.1.0");
    assert_eq!(server.result("legacy.hello", json!([])).await, hello);
    assert_eq!(server.result("nested.call", json!(["legacy.hello", []])).await, hello);
}

/// Each nested call has its own log line, with the top-level request's id
/// and its depth.
#[tokio::test]
async fn each_nested_call_has_a_log_line_with_request_id_and_depth() {
    let server = Server::start(&["--log-format", "json"]);
    server.deploy_ok("math", "math").await;
    server.deploy_ok("calc", "calc").await;
    assert_eq!(server.result("calc.hypot", json!([3, 4])).await, json!(5.0));
    let log = server.log();
    let calls: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "wasmrpc::call")
        .map(|line| line["fields"].clone())
        .collect();
    let methods: Vec<&str> = calls.iter().filter_map(|c| c["method"].as_str()).collect();
    // A callee's line is written when it answers, before its caller's.
    assert_eq!(methods, ["math.multiply", "math.multiply", "math.add", "calc.hypot"], "{log}");
    let top = &calls[3];
    assert_eq!(top["depth"], 0, "{top}");
    for nested in &calls[..3] {
        assert_eq!(nested["request_id"], top["request_id"], "{nested}");
        assert_eq!(nested["depth"], 1, "{nested}");
        assert_eq!(nested["caller"], "calc", "{nested}");
    }
}
