//! Hostile guests and the limits: each ends its own call with the right error
//! and the server keeps answering everyone else.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::Server;

async fn hostile_server(args: &[&str]) -> Server {
    let server = Server::start(args);
    server.deploy_ok("hostile", "test_hostile").await;
    server.deploy_ok("math", "math").await;
    server
}

#[tokio::test]
async fn an_endless_loop_is_stopped_while_others_are_served() {
    let server = hostile_server(&["--time-limit-ms", "1000"]).await;
    let started = Instant::now();
    let spinner = server.error("hostile.spin", json!([]));
    let others = async {
        // Meanwhile another client's calls keep being answered.
        let mut answered = 0;
        while started.elapsed() < Duration::from_millis(800) {
            assert_eq!(server.result("math.add", json!([answered, 1])).await, json!(answered + 1));
            answered += 1;
        }
        answered
    };
    let (error, answered) = tokio::join!(spinner, others);
    let elapsed = started.elapsed();
    assert_eq!(error["code"], -32001, "{error}");
    assert_eq!(error["message"], "Procedure timed out");
    assert_eq!(error["data"]["limit_ms"], 1000);
    assert!(elapsed < Duration::from_millis(2000), "stopped after {elapsed:?}, limit 1 s");
    assert!(answered > 10, "only {answered} calls answered beside the loop");
}

#[tokio::test]
async fn the_time_limit_also_stops_a_sleeping_guest() {
    let server = hostile_server(&["--time-limit-ms", "300"]).await;
    let started = Instant::now();
    let error = server.error("hostile.sleep", json!([10_000])).await;
    assert_eq!(error["code"], -32001, "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(server.result("hostile.sleep", json!([10])).await, Value::Null);
}

#[tokio::test]
async fn traps_are_reported_with_their_reason() {
    let server = hostile_server(&[]).await;
    let panic = server.error("hostile.panic", json!([])).await;
    assert_eq!(panic["code"], -32000, "{panic}");
    assert_eq!(panic["message"], "Procedure trapped");
    assert!(panic["data"]["stderr"].as_str().unwrap_or_default().contains("boom"), "{panic}");
    assert_eq!(panic["data"]["method"], "hostile.panic");

    let unreachable = server.error("hostile.unreachable", json!([])).await;
    assert_eq!(unreachable["code"], -32000, "{unreachable}");
    assert!(unreachable["data"]["reason"].as_str().unwrap().contains("unreachable"), "{unreachable}");

    // Rust keeps its frames on a shadow stack in linear memory: running off
    // its end is an out-of-bounds access; a deep native stack is wasmtime's
    // "call stack exhausted". Either way the call traps and nothing else.
    let recurse = server.error("hostile.recurse", json!([])).await;
    assert_eq!(recurse["code"], -32000, "{recurse}");
    let reason = recurse["data"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("out of bounds") || reason.contains("stack"), "{recurse}");

    // Each call gets a fresh instance: nothing of the traps is left over.
    assert_eq!(server.result("math.add", json!([2, 3])).await, json!(5));
    assert_eq!(server.result("hostile.echo", json!([{"a": [1, 2]}])).await, json!({"a": [1, 2]}));
}

#[tokio::test]
async fn a_memory_hog_hits_the_memory_limit() {
    let server = hostile_server(&["--memory-limit-mib", "16"]).await;
    let error = server.error("hostile.hog", json!([])).await;
    assert_eq!(error["code"], -32002, "{error}");
    assert_eq!(error["data"]["limit_mib"], 16);
    // Small outputs fit, large ones need more than the limit.
    assert_eq!(server.result("hostile.huge_output", json!([1])).await.as_str().unwrap().len(), 1 << 20);
    assert_eq!(server.error("hostile.huge_output", json!([64])).await["code"], -32002);
    assert_eq!(server.result("math.add", json!([1, 1])).await, json!(2));
}

#[tokio::test]
async fn the_sandbox_grants_nothing() {
    let server = hostile_server(&[]).await;
    let file = server.result("hostile.read_file", json!(["/etc/passwd"])).await;
    assert!(!file.as_str().unwrap().contains("root:"), "read a host file: {file}");
    let env = server.result("hostile.read_env", json!([])).await;
    assert_eq!(env, json!({"vars": {}, "args": []}), "{env}");
    let connect = server.result("hostile.connect", json!(["127.0.0.1:1"])).await;
    assert!(!connect.as_str().unwrap().is_empty(), "{connect}");
    let connect = server.result("hostile.connect", json!([server.url.trim_start_matches("http://")])).await;
    assert!(!connect.as_str().unwrap().contains("connected"), "reached the host: {connect}");
    // Clocks and random work.
    let now = server.result("hostile.now", json!([])).await.as_u64().unwrap();
    assert!(now > 1_700_000_000_000, "{now}");
    let a = server.result("hostile.random", json!([])).await;
    let b = server.result("hostile.random", json!([])).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn guest_output_and_logs_reach_the_server_log_tagged() {
    let server = hostile_server(&[]).await;
    server.result("hostile.print", json!(["hello from the guest"])).await;
    server.result("hostile.log", json!(["a log line from the guest"])).await;
    server
        .eventually(Duration::from_secs(5), "guest lines in the log", || async {
            let log = server.log();
            let tagged = |needle: &str| log.lines().filter(|l| l.contains(needle) && l.contains("hostile")).count();
            tagged("hello from the guest") >= 2 && tagged("a log line from the guest") >= 1
        })
        .await;

    // A guest that floods its stdout (4 MiB) gets 64 KiB of it logged, then
    // one line saying how much was dropped: it cannot flood the log.
    let before = server.log().len();
    assert_eq!(server.result("hostile.flood", json!([4096])).await, json!(4096));
    server
        .eventually(Duration::from_secs(5), "the dropped-output note", || async {
            server.log()[before..].contains("bytes of output dropped")
        })
        .await;
    let logged = server.log().len() - before;
    assert!(logged < 256 * 1024, "{logged} bytes logged for 4 MiB of guest output");
}

#[tokio::test]
async fn procedure_errors_pass_through_and_bad_output_is_internal() {
    let server = Server::start(&[]);
    server.deploy_ok("raw", "test_raw").await;
    assert_eq!(server.result("raw.ok", json!([])).await, json!(true));
    let bad = server.error("raw.bad_json", json!([])).await;
    assert_eq!(bad["code"], -32603, "{bad}");
    assert!(bad["data"]["reason"].as_str().unwrap().contains("invalid JSON"), "{bad}");
    let custom = server.error("raw.custom_error", json!([])).await;
    assert_eq!(custom, json!({"code": 42, "message": "custom", "data": {"detail": 1}}));
    let bad_data = server.error("raw.bad_data", json!([])).await;
    assert_eq!(bad_data["data"], "not json at all");
}

#[tokio::test]
async fn body_and_batch_limits() {
    let server = Server::start(&["--max-body-kib", "1", "--max-batch", "2"]);
    server.deploy_ok("math", "math").await;
    let big = format!(r#"{{"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":1,"pad":"{}"}}"#, "x".repeat(2048));
    let answer = server.post(&big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let error = answer.json().unwrap()["error"].clone();
    assert_eq!(error["code"], -32600);
    assert!(error["data"].as_str().unwrap().contains("1 KiB"), "{error}");

    let call = json!({"jsonrpc": "2.0", "method": "math.add", "params": [1, 2], "id": 1});
    let two = server.rpc(json!([call, call])).await;
    assert_eq!(two.as_array().unwrap().len(), 2);
    let three = server.rpc(json!([call, call, call])).await;
    assert_eq!(three["error"]["code"], -32600, "one error, not an array: {three}");
    assert!(three["error"]["data"].as_str().unwrap().contains("limit is 2"), "{three}");
}

#[tokio::test]
async fn over_the_concurrency_limit_calls_are_refused_not_queued() {
    let server = hostile_server(&["--max-concurrent-calls", "1", "--time-limit-ms", "5000"]).await;
    let slow = server.result("hostile.sleep", json!([2000]));
    let refused = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let error = server.error("math.add", json!([1, 2])).await;
        (error, started.elapsed())
    };
    let (_, (error, waited)) = tokio::join!(slow, refused);
    assert_eq!(error["code"], -32003, "{error}");
    assert_eq!(error["data"]["max_concurrent_calls"], 1);
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
}

#[tokio::test]
async fn batch_calls_run_concurrently() {
    let server = hostile_server(&[]).await;
    let call = |id: u32| json!({"jsonrpc": "2.0", "method": "hostile.sleep", "params": [500], "id": id});
    let started = Instant::now();
    let answer = server.rpc(json!([call(1), call(2), call(3), call(4)])).await;
    assert_eq!(answer.as_array().unwrap().len(), 4);
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
}
