//! Faults and hostile input: SIGKILL in the middle of uploads, random
//! request bodies, and a mixed load of good, bad and hostile calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Value};
use wasmrpc::cli::client::HttpClient;

use crate::support::{wasm, Server};

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Kills the server (SIGKILL) at random points while three procedures are
/// being redeployed, many times. After every restart each procedure serves a
/// complete old or new version, no acknowledged deploy is lost, and nothing
/// half-written is left in the data dir.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_uploads_loses_nothing() {
    const ROUNDS: u64 = 12;
    let files = [("test_v1", wasm("test_v1")), ("test_v2", wasm("test_v2"))];
    let names = ["a", "b", "c"];
    let mut server = Server::start(&[]);
    let shas: Arc<Mutex<HashMap<String, &'static str>>> = Arc::default();
    // Compile both versions once, so that uploads take milliseconds and many
    // of them are under way when the kill comes.
    for (file, _) in &files {
        let meta = server.deploy_ok("warm", file).await;
        let sha = meta["sha256"].as_str().unwrap().to_owned();
        shas.lock().unwrap().insert(sha, if *file == "test_v1" { "1" } else { "2" });
    }
    // name -> highest version a PUT answered for; file -> its sha256.
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..ROUNDS {
        let url = server.url.clone();
        let (acked2, shas2, files2) = (acked.clone(), shas.clone(), files.clone());
        let uploads = tokio::spawn(async move {
            let client = HttpClient::new();
            for i in 0.. {
                let name = names[i % 3];
                let (file, bytes) = &files2[(i / 3 + round as usize) % 2];
                let path = format!("{url}/procedures/{name}");
                let Ok(answer) = client.send(Method::PUT, &path, &[], bytes.clone()).await else { return };
                let Ok(meta) = answer.json() else { return };
                let version = meta["version"].as_u64().unwrap_or(0);
                let sha = meta["sha256"].as_str().unwrap_or_default().to_owned();
                shas2.lock().unwrap().insert(sha, if *file == "test_v1" { "1" } else { "2" });
                let mut acked = acked2.lock().unwrap();
                let best = acked.entry(name.to_owned()).or_default();
                *best = (*best).max(version);
            }
        });
        tokio::time::sleep(Duration::from_millis(50 + rng.below(1500))).await;
        server = tokio::task::block_in_place(|| server.restart());
        let _ = uploads.await;

        for entry in walk(&server.data_dir) {
            let file_name = entry.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!file_name.starts_with(".tmp"), "round {round}: left behind: {}", entry.display());
            if file_name.ends_with(".json") {
                let text = std::fs::read(&entry).unwrap();
                assert!(
                    serde_json::from_slice::<Value>(&text).is_ok(),
                    "round {round}: unreadable {}",
                    entry.display()
                );
            }
        }
        let acked = acked.lock().unwrap().clone();
        for (name, acked_version) in &acked {
            let meta = server.request(Method::GET, &format!("/procedures/{name}"), &[], Vec::new()).await;
            assert_eq!(meta.status, StatusCode::OK, "round {round}: {name} lost: {}", server.log());
            let meta = meta.json().unwrap();
            let version = meta["version"].as_u64().unwrap();
            assert!(
                version >= *acked_version,
                "round {round}: {name} is v{version}, v{acked_version} was acknowledged"
            );
            let answer = server.result(&format!("{name}.version"), json!([])).await;
            let sha = meta["sha256"].as_str().unwrap();
            // Both versions' hashes are known from the warm-up deploys.
            let expected = shas.lock().unwrap().get(sha).copied();
            assert_eq!(
                Some(answer.to_string().as_str()),
                expected,
                "round {round}: {name} serves other code than its metadata"
            );
        }
    }
    assert_eq!(acked.lock().unwrap().len(), 3, "the uploads never got going");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z.]{0,12}".prop_map(Value::from),
        prop_oneof![Just("math.add"), Just("math.divide"), Just("rpc.discover"), Just("hostile.echo")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-z]{1,8}|jsonrpc|method|params|id", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Request-shaped objects with random fields, alone or in batches.
fn envelope() -> impl Strategy<Value = Value> {
    let one = (
        prop_oneof![Just(json!("2.0")), json_value()],
        prop_oneof![Just(json!("math.add")), Just(json!("math.divide")), Just(json!("nope.x")), json_value()],
        prop::option::of(json_value()),
        prop::option::of(prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::from),
            json_value()
        ]),
    )
        .prop_map(|(version, method, params, id)| {
            let mut request = json!({"jsonrpc": version, "method": method});
            if let Some(params) = params {
                request["params"] = params;
            }
            if let Some(id) = id {
                request["id"] = id;
            }
            request
        })
        .boxed();
    prop_oneof![one.clone(), prop::collection::vec(one, 0..5).prop_map(Value::from)]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        envelope().prop_map(|v| v.to_string().into_bytes()),
    ]
}

/// Random bytes, random JSON and random request shapes: the answer is always
/// a valid JSON-RPC response (or an array of them), or 204, never a crash.
#[test]
fn random_bodies_always_get_a_valid_answer() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server = runtime.block_on(async {
        let server = Server::start(&[]);
        server.deploy_ok("math", "math").await;
        server
    });
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(body in body())| {
        let answer = runtime.block_on(server.request(Method::POST, "/rpc", &[], body.clone()));
        let shown = String::from_utf8_lossy(&body).into_owned();
        if answer.status == StatusCode::NO_CONTENT {
            prop_assert!(answer.body.is_empty());
        } else {
            prop_assert_eq!(answer.status, StatusCode::OK, "{} -> {}", shown, answer.text());
            let value: Value = serde_json::from_slice(&answer.body).map_err(|e| TestCaseError::fail(format!("{shown} -> not JSON: {e}")))?;
            let valid = wasmrpc::rpc::is_valid_answer(&value);
            prop_assert!(valid, "{} -> {}", shown, value);
        }
    });
    runtime.block_on(async {
        assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
    });
}

/// 64 clients for a few seconds, mixing good calls, bad requests and hostile
/// guests: every good call is answered correctly, every bad one with its
/// error, and the server's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_is_answered_correctly_with_bounded_memory() {
    let server = Arc::new(Server::start(&["--time-limit-ms", "200", "--memory-limit-mib", "16"]));
    server.deploy_ok("math", "math").await;
    server.deploy_ok("hostile", "test_hostile").await;
    let deadline = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..64u64)
        .map(|client| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut counts = [0u64; 4];
                let mut i = client;
                while Instant::now() < deadline {
                    i += 64;
                    match i % 16 {
                        0 => {
                            let error = server.error("hostile.spin", json!([])).await;
                            assert!(error["code"] == -32001 || error["code"] == -32003, "{error}");
                            counts[2] += 1;
                        }
                        1 => {
                            let error = server.error("hostile.hog", json!([])).await;
                            // Under load it may run out of time before memory.
                            let code = error["code"].as_i64();
                            assert!(matches!(code, Some(-32003..=-32001)), "{error}");
                            counts[2] += 1;
                        }
                        2 | 3 => {
                            let answer = server.post("{\"jsonrpc\": \"2.0\", \"method\"").await;
                            assert_eq!(answer.json().unwrap()["error"]["code"], -32700);
                            counts[1] += 1;
                        }
                        _ => {
                            let response = server.call("math.add", json!([i, client])).await;
                            if response["error"]["code"] == -32003 {
                                counts[3] += 1; // overloaded: refused, never wrong
                            } else {
                                assert_eq!(response["result"], json!(i + client), "{response}");
                                counts[0] += 1;
                            }
                        }
                    }
                }
                counts
            })
        })
        .collect();
    let mut totals = [0u64; 4];
    for client in clients {
        for (total, n) in totals.iter_mut().zip(client.await.unwrap()) {
            *total += n;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!(
        "mixed load: {} good, {} bad, {} hostile, {} refused as overloaded; peak RSS {} MiB",
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        peak_kib / 1024
    );
    assert!(totals[0] > 100 && totals[1] > 10 && totals[2] > 10, "{totals:?}");
    assert!(peak_kib < 1024 * 1024, "peak RSS {peak_kib} KiB");
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
}
