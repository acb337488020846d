//! Hostile guests and the limits: each ends its own call with the right error
//! and the server keeps answering everyone else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::{heavy, timing, Server};

async fn hostile_server(args: &[&str]) -> Server {
    let server = Server::start(args);
    server.deploy_ok("hostile", "test_hostile").await;
    server.deploy_ok("math", "math").await;
    server
}

#[tokio::test]
async fn an_endless_loop_is_stopped_while_others_are_served() {
    let _timing = timing().await;
    let server = hostile_server(&["--time-limit-ms", "1000"]).await;
    let started = Instant::now();
    let spinner = server.error("hostile.spin", json!([]));
    let others = async {
        // Meanwhile another client's calls keep being answered, each quickly.
        let mut answered = 0;
        let mut slowest = Duration::ZERO;
        while started.elapsed() < Duration::from_millis(800) {
            let call = Instant::now();
            assert_eq!(server.result("math.add", json!([answered, 1])).await, json!(answered + 1));
            slowest = slowest.max(call.elapsed());
            answered += 1;
        }
        (answered, slowest)
    };
    let (error, (answered, slowest)) = tokio::join!(spinner, others);
    let elapsed = started.elapsed();
    assert_eq!(error["code"], -32001, "{error}");
    assert_eq!(error["message"], "Procedure timed out");
    assert_eq!(error["data"]["limit_ms"], 1000);
    assert!(elapsed >= Duration::from_millis(1000), "stopped after {elapsed:?}, before the 1 s limit");
    assert!(elapsed < Duration::from_millis(4000), "stopped after {elapsed:?}, limit 1 s");
    assert!(answered >= 1, "no call answered beside the loop");
    assert!(slowest < Duration::from_millis(500), "a call beside the loop took {slowest:?}");
}

#[tokio::test]
async fn the_time_limit_also_stops_a_sleeping_guest() {
    let _timing = timing().await;
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
    // No file: not by absolute path, not relative to the server's working
    // directory (the repository's Cargo.toml is there in tests), no listing.
    for path in ["/etc/passwd", "Cargo.toml", "./Cargo.toml"] {
        let file = server.result("hostile.read_file", json!([path])).await;
        assert!(file.as_str().unwrap().starts_with("error:"), "read a host file {path}: {file}");
    }
    for dir in [".", "/", ".."] {
        let listing = server.result("hostile.list_dir", json!([dir])).await;
        assert!(listing.as_str().unwrap().starts_with("error:"), "listed {dir}: {listing}");
    }
    let env = server.result("hostile.read_env", json!([])).await;
    assert_eq!(env, json!({"vars": {}, "args": []}), "{env}");
    let connect = server.result("hostile.connect", json!(["127.0.0.1:1"])).await;
    assert!(connect.as_str().unwrap().starts_with("error:"), "{connect}");
    let connect = server.result("hostile.connect", json!([server.url.trim_start_matches("http://")])).await;
    assert!(connect.as_str().unwrap().starts_with("error:"), "reached the host: {connect}");
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
            // Tagged with the procedure and the call's request id.
            let tagged = |needle: &str| {
                log.lines().filter(|l| l.contains(needle) && l.contains("hostile") && l.contains("request_id")).count()
            };
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

    let call = |id: u32| json!({"jsonrpc": "2.0", "method": "math.add", "params": [1, 2], "id": id});
    let two = server.rpc(json!([call(1), call(2)])).await;
    let results: Vec<&Value> = two.as_array().unwrap().iter().map(|r| &r["result"]).collect();
    assert_eq!(results, [&json!(3), &json!(3)], "{two}");
    // Over the limit: one error, and nothing in the batch runs.
    let calls_before = server.metric("wasmrpc_calls_total{procedure=\"math\"}").await;
    assert_eq!(calls_before, Some(2.0));
    let three = server.rpc(json!([call(1), call(2), call(3)])).await;
    assert_eq!(three["error"]["code"], -32600, "one error, not an array: {three}");
    assert!(three["error"]["data"].as_str().unwrap().contains("limit is 2"), "{three}");
    assert_eq!(server.metric("wasmrpc_calls_total{procedure=\"math\"}").await, calls_before);
}

#[tokio::test]
async fn over_the_concurrency_limit_calls_are_refused_not_queued() {
    let _timing = timing().await;
    let server = hostile_server(&["--max-concurrent-calls", "1", "--time-limit-ms", "5000"]).await;
    let from = server.log().len();
    let slow = server.result("hostile.sleep", json!([3000]));
    let refused = async {
        // The slow call holds the only slot once it says it is sleeping.
        server.wait_for_log(from, &["sleeping 3000 ms"], Duration::from_secs(10)).await;
        let started = Instant::now();
        let error = server.error("math.add", json!([1, 2])).await;
        (error, started.elapsed())
    };
    let (slept, (error, waited)) = tokio::join!(slow, refused);
    assert_eq!(slept, Value::Null);
    assert_eq!(error["code"], -32003, "{error}");
    assert_eq!(error["data"]["max_concurrent_calls"], 1);
    assert!(waited < Duration::from_millis(2500), "waited {waited:?}");
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
}

/// Four 1 s sleeps in one batch answer in well under 2 s (so at least
/// three-way concurrency), each with its own id.
#[tokio::test]
async fn batch_calls_run_concurrently() {
    let _timing = timing().await;
    let server = hostile_server(&[]).await;
    let call = |id: u32| json!({"jsonrpc": "2.0", "method": "hostile.sleep", "params": [1000], "id": id});
    let started = Instant::now();
    let answer = server.rpc(json!([call(1), call(2), call(3), call(4)])).await;
    let elapsed = started.elapsed();
    let mut answers = answer.as_array().unwrap().clone();
    answers.sort_by_key(|a| a["id"].as_u64());
    let expected: Vec<Value> = (1..=4).map(|id| json!({"jsonrpc": "2.0", "result": null, "id": id})).collect();
    assert_eq!(answers, expected);
    assert!(elapsed < Duration::from_millis(1900), "{elapsed:?}");
}

/// Extra `serve` flags for the fresh-memory test, from
/// `WASMRPC_TEST_FRESHNESS_ARGS` (split at whitespace), so it can be run by
/// hand against any server configuration (pagemap scanning on or off).
fn freshness_args() -> Vec<String> {
    let extra = std::env::var("WASMRPC_TEST_FRESHNESS_ARGS").unwrap_or_default();
    extra.split_whitespace().map(str::to_owned).collect()
}

/// The central promise: every call gets a fresh instance, so nothing a call
/// leaves in memory is seen by another. `hostile.fresh` counts its calls in
/// a static and checks a static buffer is zero before dirtying it; it must
/// see 1 and a clean buffer every time, over 200 sequential and 64
/// concurrent calls. `hostile.mark` leaves a marker all over heap and
/// stack (memory it grew past the initial size); `hostile.scan` then grows
/// its own memory past that (writing nothing), searches all of it for the
/// marker and must not find it (after first showing, with `plant`, that it
/// finds a marker that is there). Default settings: one ready instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_sees_fresh_memory() {
    assert_fresh_memory_with(&[]).await;
}

/// The same with the pool's PAGEMAP_SCAN reset turned off, as it is while
/// swap is active: every kept page is cleared instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_sees_fresh_memory_without_pagemap_scan() {
    assert_fresh_memory_with(&["--no-pagemap-scan"]).await;
}

/// The same with guard pages and signals bounding memory (`--guard-pages`)
/// instead of explicit checks: wasmtime then also changes page protections
/// of a reused slot, a different reset path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_sees_fresh_memory_with_guard_pages() {
    assert_fresh_memory_with(&["--guard-pages"]).await;
}

/// The same with no ready instances (every call makes its own) and with
/// eight (instances made ahead for each of several procedures).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_sees_fresh_memory_with_0_and_8_ready_instances() {
    assert_fresh_memory_with(&["--ready-instances", "0"]).await;
    assert_fresh_memory_with(&["--ready-instances", "8"]).await;
}

/// Memory `hostile.scan` grows to before it scans: well past what `mark`
/// grew to (its 2 MiB heap marker on top of the initial memory), so the
/// scan reads every page an earlier call in the same slot could have dirtied.
const SCAN_BYTES: u64 = 8 << 20;

/// The checks of [`every_call_sees_fresh_memory`] against a server started
/// with `extra` flags (and those of `WASMRPC_TEST_FRESHNESS_ARGS`): a test
/// per server configuration is one line. Ready instances must have served
/// some of the calls unless `--ready-instances 0`: the 200 sequential calls
/// leave the server idle between them.
async fn assert_fresh_memory_with(extra: &[&str]) {
    let _heavy = heavy().await;
    let from_env = freshness_args();
    let mut args = vec!["--max-concurrent-calls", "64"];
    args.extend(extra);
    args.extend(from_env.iter().map(String::as_str));
    let server = Arc::new(hostile_server(&args).await);
    const SEED: u64 = 0x5eed_1e55_c0ff_ee00;
    let planted = server.result("hostile.scan", json!([SEED, true, SCAN_BYTES])).await;
    let found = planted["found"].as_u64().unwrap();
    assert!(found >= (2 << 20) / 32, "the scan misses a marker that is there: {planted}");
    assert!(planted["scanned"].as_u64().unwrap() >= SCAN_BYTES, "{planted}");
    let clean_scan = |scan: &Value, who: &str| {
        assert_eq!(scan["found"], 0, "{who} read an earlier call's memory: {scan}");
        assert!(scan["scanned"].as_u64().unwrap() >= SCAN_BYTES, "{who} scanned too little: {scan}");
    };

    for i in 0..200 {
        assert_eq!(server.result("hostile.fresh", json!([])).await, json!({"calls": 1, "clean": true}), "call {i}");
        if i % 20 == 0 {
            assert_eq!(server.result("hostile.mark", json!([SEED])).await, json!((2 << 20) + 16 * 1024));
            let scan = server.result("hostile.scan", json!([SEED, false, SCAN_BYTES])).await;
            clean_scan(&scan, &format!("call {i}"));
        }
    }
    let clients: Vec<_> = (0..64u64)
        .map(|client| {
            let server = server.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    let fresh = server.result("hostile.fresh", json!([])).await;
                    assert_eq!(fresh, json!({"calls": 1, "clean": true}), "client {client}");
                }
                if client % 8 == 0 {
                    server.result("hostile.mark", json!([SEED])).await;
                } else if client % 8 == 1 {
                    let scan = server.result("hostile.scan", json!([SEED, false, SCAN_BYTES])).await;
                    assert_eq!(scan["found"], 0, "client {client} read another call's memory: {scan}");
                    assert!(scan["scanned"].as_u64().unwrap() >= SCAN_BYTES, "client {client}: {scan}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let scan = server.result("hostile.scan", json!([SEED, false, SCAN_BYTES])).await;
    clean_scan(&scan, "the last call");
    let ready = server.metric("wasmrpc_ready_instance_calls_total{procedure=\"hostile\"}").await.unwrap_or(0.0);
    if extra.windows(2).any(|w| w == ["--ready-instances", "0"]) {
        assert_eq!(ready, 0.0, "no ready instance was made, none can have served");
    } else {
        assert!(ready > 0.0, "no call was served by a ready instance: the test did not test them");
    }
}

/// A ready instance is made with the time limit of the call it was made
/// after; one that waited past it still gives its own call the whole limit.
#[tokio::test]
async fn a_ready_instance_idle_past_the_time_limit_gives_its_call_the_whole_limit() {
    let _timing = timing().await;
    let server = hostile_server(&["--time-limit-ms", "200"]).await;
    let ready_calls = || server.metric("wasmrpc_ready_instance_calls_total{procedure=\"hostile\"}");
    assert_eq!(server.result("hostile.echo", json!([1])).await, json!(1));
    // The next instance is made after this answer, while the server idles.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = ready_calls().await.unwrap_or(0.0);
    assert_eq!(server.result("hostile.sleep", json!([50])).await, Value::Null);
    assert_eq!(ready_calls().await, Some(before + 1.0), "the sleep was not served by the ready instance");
}

/// The limits can be set through `WASMRPC_*` variables, as the limits table
/// of DESIGN.md says: batch length, time, memory, body and module size, and
/// the log format.
#[tokio::test]
async fn limits_from_the_environment() {
    let _timing = timing().await;
    let server = Server::start_with_env(
        &[],
        &[
            ("WASMRPC_MAX_BATCH", "2"),
            ("WASMRPC_TIME_LIMIT_MS", "300"),
            ("WASMRPC_MEMORY_LIMIT_MIB", "16"),
            ("WASMRPC_MAX_BODY_KIB", "1"),
            ("WASMRPC_MAX_MODULE_MIB", "1"),
            ("WASMRPC_LOG_FORMAT", "json"),
        ],
    );
    server.deploy_ok("hostile", "test_hostile").await;
    let call = |id: u32| json!({"jsonrpc": "2.0", "method": "hostile.echo", "params": [id], "id": id});
    assert_eq!(server.rpc(json!([call(1), call(2)])).await.as_array().map(Vec::len), Some(2));
    let three = server.rpc(json!([call(1), call(2), call(3)])).await;
    assert!(three["error"]["data"].as_str().unwrap_or_default().contains("limit is 2"), "{three}");

    let started = Instant::now();
    let error = server.error("hostile.sleep", json!([10_000])).await;
    assert_eq!((error["code"].as_i64(), error["data"]["limit_ms"].as_u64()), (Some(-32001), Some(300)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let error = server.error("hostile.hog", json!([])).await;
    assert_eq!((error["code"].as_i64(), error["data"]["limit_mib"].as_u64()), (Some(-32002), Some(16)), "{error}");

    let big = format!(r#"{{"jsonrpc":"2.0","method":"hostile.echo","params":["{}"],"id":1}}"#, "x".repeat(2048));
    let answer = server.post(&big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.text());
    let answer = server.deploy_bytes("big", vec![0u8; (1 << 20) + 1]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.text());

    let log = server.log();
    assert!(log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "not JSON lines:\n{log}");
}
