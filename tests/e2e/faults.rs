//! Faults and hostile input: SIGKILL in the middle of uploads, random
//! request bodies, and a mixed load of good, bad and hostile calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Value};
use wasmrpc_client::http::HttpClient;

use crate::oracle::{check, Setup};
use wasmrpc_testkit::with_custom_section;

use crate::support::{heavy, sha256_hex, walk, wasm, Killed, Server};

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
/// being redeployed at once, many times. Every PUT sends bytes the server
/// has never seen (v1's or v2's code with a unique 8 MiB custom section), so
/// each writes a module file, compiled code and a record, and kills land
/// inside those writes (every other kill waits for a temporary file to
/// appear, that is for a write under way). Between the kill and the restart, every file in the data
/// dir other than a temporary one is complete (each module hashes to its
/// name, each record reads and names a module that is there); after the
/// restart the temporary files are gone, no compiled code was found torn,
/// each procedure serves the code its metadata names, and no acknowledged
/// deploy is lost. The kills must have cut PUTs off and left temporary
/// files, or the test did not test what it says.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_uploads_loses_nothing() {
    const ROUNDS: u64 = 12;
    // Each module carries this much custom section, so that writing it (and
    // syncing it) is a good part of a PUT rather than a sliver beside the
    // compile: with a few bytes, 36 PUTs cut off by 12 random kills left no
    // temporary file behind.
    const PAYLOAD_BYTES: usize = 8 << 20;
    let _heavy = heavy().await;
    let files = Arc::new([wasm("test_v1"), wasm("test_v2")]);
    let names = ["a", "b", "c"];
    let mut server = Server::start(&[]);
    // sha256 of every module sent -> the answer of its `version` method.
    let shas: Arc<Mutex<HashMap<String, &'static str>>> = Arc::default();
    // name -> highest version a PUT answered for.
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // PUTs cut off by a kill (sent before it, never answered), and rounds
    // whose kill left a temporary file: evidence that kills land inside writes.
    let (mut cut_off, mut torn_writes) = (0, 0);
    for round in 0..ROUNDS {
        let round_acks = Arc::new(AtomicU64::new(0));
        let killing = Arc::new(AtomicBool::new(false));
        // One uploader per name, so writes of three deploys overlap.
        let uploads: Vec<_> = names
            .iter()
            .map(|&name| {
                let url = format!("{}/procedures/{name}", server.url);
                let (acked, files, shas, sent) = (acked.clone(), files.clone(), shas.clone(), sent.clone());
                let (round_acks, killing) = (round_acks.clone(), killing.clone());
                tokio::spawn(async move {
                    let client = HttpClient::new();
                    loop {
                        let n = sent.fetch_add(1, Ordering::SeqCst);
                        let version = (n % 2) as usize;
                        let mut payload = vec![0; PAYLOAD_BYTES];
                        payload[..8].copy_from_slice(&n.to_le_bytes());
                        let bytes = with_custom_section(&files[version], "wasmrpc-test", &payload);
                        shas.lock().unwrap().insert(sha256_hex(&bytes), ["1", "2"][version]);
                        let before_kill = !killing.load(Ordering::SeqCst);
                        // An error here is the kill: the PUT was sent and never answered.
                        let Ok(answer) = client.send(Method::PUT, &url, &[], bytes).await else {
                            return before_kill;
                        };
                        assert!(
                            answer.status == StatusCode::OK || answer.status == StatusCode::CREATED,
                            "round {round}: PUT {url}: {} {}",
                            answer.status,
                            answer.text()
                        );
                        let meta = answer.json().unwrap();
                        let version = meta["version"].as_u64().unwrap();
                        let mut acked = acked.lock().unwrap();
                        let best = acked.entry(name.to_owned()).or_default();
                        *best = (*best).max(version);
                        round_acks.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // At least one deploy is acknowledged in every round, then the kill
        // comes at a random point.
        server
            .eventually(Duration::from_secs(60), "an acknowledged upload", || {
                let n = round_acks.load(Ordering::SeqCst);
                async move { n > 0 }
            })
            .await;
        // Every other kill comes at a random point; the others the moment a
        // temporary file shows up in the data dir, which is a write under way
        // (random points alone landed inside one in about one kill in six).
        if round % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        } else {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20)
                && !walk(&server.data_dir)
                    .iter()
                    .any(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".tmp")))
            {
                // A write of 8 MiB and its sync take tens of milliseconds.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        killing.store(true, Ordering::SeqCst);
        let killed = tokio::task::block_in_place(|| server.kill());
        // Each task ends on the refused connection; a failed assertion
        // inside it fails the test here.
        for upload in uploads {
            let was_cut_off = tokio::time::timeout(Duration::from_secs(30), upload)
                .await
                .expect("an upload task did not stop")
                .expect("an upload task failed");
            cut_off += u32::from(was_cut_off);
        }
        assert!(round_acks.load(Ordering::SeqCst) > 0, "round {round}: nothing acknowledged");

        // The data dir exactly as the kill left it.
        let mut temporary = Vec::new();
        for entry in walk(&killed.data_dir) {
            let file_name = entry.file_name().unwrap().to_string_lossy().into_owned();
            if file_name.starts_with(".tmp") {
                temporary.push(entry);
                continue;
            }
            let bytes = std::fs::read(&entry).unwrap();
            let dir = entry.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
            match dir.as_str() {
                "modules" => assert_eq!(
                    format!("{}.wasm", sha256_hex(&bytes)),
                    file_name,
                    "round {round}: torn module {}",
                    entry.display()
                ),
                "procedures" => {
                    let history = wasmrpc::store::data_dir::parse_record(&bytes)
                        .unwrap_or_else(|e| panic!("round {round}: unreadable {}: {e}", entry.display()));
                    let serving =
                        history.serving_version().unwrap_or_else(|| panic!("round {round}: {file_name} deleted"));
                    assert!(serving.version <= history.last_version, "round {round}: {file_name}");
                    for kept in &history.versions {
                        let module = killed.data_dir.join("modules").join(format!("{}.wasm", kept.sha256));
                        assert!(module.is_file(), "round {round}: {file_name} names a missing module");
                    }
                }
                _ => {}
            }
        }
        torn_writes += u32::from(!temporary.is_empty());

        let restarted = server_log_len(&killed);
        server = tokio::task::block_in_place(|| killed.start_again());
        for entry in &temporary {
            assert!(!entry.exists(), "round {round}: left behind: {}", entry.display());
        }
        let log = server.log()[restarted..].to_owned();
        assert!(!log.contains("compiled cache unusable"), "round {round}: torn compiled code:\n{log}");

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
            let expected = shas.lock().unwrap().get(sha).copied();
            assert_eq!(
                Some(answer.to_string().as_str()),
                expected,
                "round {round}: {name} serves other code than its metadata"
            );
        }
    }
    eprintln!("sigkill: {cut_off} PUTs cut off in {ROUNDS} kills, {torn_writes} kills left a temporary file");
    assert_eq!(acked.lock().unwrap().len(), 3, "the uploads never got going");
    assert!(cut_off > 0, "no kill landed while a PUT was under way");
    assert!(torn_writes > 0, "no kill landed inside a file write: the torn-file checks were never put to the test");
}

/// Kills the server (SIGKILL) at random points while a procedure is rolled
/// back and forth between two kept versions. After each restart the one
/// serving is the last acknowledged activation (or the one a kill cut off),
/// it answers as that version's code, and both versions are still kept.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_rollbacks_loses_nothing() {
    const ROUNDS: u64 = 8;
    let _heavy = heavy().await;
    let mut server = Server::start(&[]);
    for file in ["test_v1", "test_v2"] {
        server.deploy_ok("r", file).await;
    }
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut cut_off = 0;
    for round in 0..ROUNDS {
        let url = server.url.clone();
        // The last activation answered 200, and the one sent after it.
        let acked = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acked2, sent2, stop2) = (acked.clone(), sent.clone(), stop.clone());
        let flips = tokio::spawn(async move {
            let client = HttpClient::new();
            let mut version = 1;
            while !stop2.load(Ordering::SeqCst) {
                version = 3 - version;
                sent2.store(version, Ordering::SeqCst);
                let path = format!("{url}/procedures/r/versions/{version}/activate");
                let Ok(answer) = client.send(Method::POST, &path, &[], Vec::new()).await else { return true };
                assert_eq!(answer.status, StatusCode::OK, "round {round}: activate {version}: {}", answer.text());
                assert_eq!(answer.json().unwrap()["version"], version);
                acked2.store(version, Ordering::SeqCst);
            }
            false
        });
        server
            .eventually(Duration::from_secs(30), "an acknowledged activation", || {
                let n = acked.load(Ordering::SeqCst);
                async move { n > 0 }
            })
            .await;
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        let killed = tokio::task::block_in_place(|| server.kill());
        stop.store(true, Ordering::SeqCst);
        let was_cut_off = tokio::time::timeout(Duration::from_secs(30), flips)
            .await
            .expect("the activation task did not stop")
            .expect("the activation task failed");
        cut_off += u32::from(was_cut_off);
        server = tokio::task::block_in_place(|| killed.start_again());

        let (acked, sent) = (acked.load(Ordering::SeqCst), sent.load(Ordering::SeqCst));
        let meta = server.request(Method::GET, "/procedures/r", &[], Vec::new()).await.json().unwrap();
        let serving = meta["version"].as_u64().unwrap();
        assert!(
            serving == acked || (was_cut_off && serving == sent),
            "round {round}: serves v{serving}; v{acked} was acknowledged, v{sent} sent last"
        );
        // test_v1 answers 1 and test_v2 answers 2: the code is the version's.
        assert_eq!(server.result("r.version", json!([])).await, json!(serving), "round {round}");
        let kept = server.request(Method::GET, "/procedures/r/versions", &[], Vec::new()).await.json().unwrap();
        assert_eq!(kept.as_array().map(Vec::len), Some(2), "round {round}: {kept}");
    }
    eprintln!("sigkill: {cut_off} of {ROUNDS} kills cut an activation off");
}

/// The length of a killed server's log.
fn server_log_len(killed: &Killed) -> usize {
    std::fs::metadata(killed.log()).map(|m| m.len() as usize).unwrap_or(0)
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

/// Request-shaped objects with random fields.
fn request_shaped() -> impl Strategy<Value = Value> {
    (
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
}

/// A parameter of a `math` method: mostly integers (small, zero, any, at
/// the edges of i64), some floats, lists, and values of a wrong type.
fn math_arg() -> impl Strategy<Value = Value> {
    prop_oneof![
        5 => (-20i64..20).prop_map(Value::from),
        1 => Just(json!(0)),
        2 => any::<i64>().prop_map(Value::from),
        1 => prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(1 << 62)].prop_map(Value::from),
        1 => (-800i32..800).prop_map(|k| json!(f64::from(k) / 8.0)),
        1 => prop::collection::vec(-20i64..20, 0..4).prop_map(Value::from),
        1 => prop_oneof![
            Just(json!("3")),
            Just(json!(null)),
            Just(json!(true)),
            Just(json!(u64::MAX)),
            Just(json!({"a": 1}))
        ],
    ]
}

/// Calls and notifications of `math` (each of its methods, one it lacks,
/// the module name alone) and of `rpc.discover`, with params by position
/// or by name that fit or not (too few, too many, an unknown name, none,
/// null, a wrong type, an overflow, a division by zero): the oracle knows
/// the answer to each.
fn math_call() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        3 => Just("math.add"),
        2 => Just("math.subtract"),
        2 => Just("math.multiply"),
        3 => Just("math.divide"),
        1 => Just("math.round"),
        1 => Just("math.stats"),
        1 => Just("math.nope"),
        1 => Just("math"),
        1 => Just("rpc.discover"),
    ];
    let id = prop::option::weighted(
        0.8,
        prop_oneof![any::<u64>().prop_map(Value::from), "[ -~]{0,12}".prop_map(Value::from), Just(Value::Null)],
    );
    (method, prop::collection::vec(math_arg(), 3), 0..11u8, any::<bool>(), id).prop_map(
        |(method, mut args, shape, edge, id)| {
            // Half the time, a division by zero or an operand at the edge of i64.
            if edge {
                match method {
                    "math.divide" => args[1] = json!(0),
                    "math.subtract" => args[0] = json!(i64::MIN),
                    _ => args[0] = json!(i64::MAX),
                }
            }
            let names: &[&str] = match method {
                "math.round" => &["x", "digits"],
                "math.stats" => &["values"],
                _ => &["a", "b"],
            };
            let named =
                |names: &[&str]| Value::Object(names.iter().map(|n| (*n).to_owned()).zip(args.clone()).collect());
            let n = names.len();
            let params = match shape {
                0..=3 => Some(Value::from(&args[..n])),
                4 | 5 => Some(named(names)),
                6 => Some(Value::from(&args[..n - 1])),
                7 => Some(Value::from(&args[..=n])),
                8 => Some(named(&[names[0], "c"])),
                9 => Some(Value::Null),
                _ => None,
            };
            let mut request = json!({"jsonrpc": "2.0", "method": method});
            if let Some(params) = params {
                request["params"] = params;
            }
            if let Some(id) = id {
                request["id"] = id;
            }
            request
        },
    )
}

/// Requests alone or in batches (empty, small, and around the server's
/// `--max-batch` of [`MAX_BATCH`]).
fn envelope() -> impl Strategy<Value = Value> {
    let one = prop_oneof![1 => request_shaped(), 2 => math_call()].boxed();
    prop_oneof![
        one.clone(),
        prop::collection::vec(one.clone(), 0..5).prop_map(Value::from),
        prop::collection::vec(one, MAX_BATCH - 1..=MAX_BATCH + 1).prop_map(Value::from),
    ]
}

/// Texts the JSON model cannot make, alone or in batches: nesting past
/// serde_json's 128 levels (as a batch, as an id, as params, as a member
/// the server ignores), ids beyond f64 or with their own spelling (`1E+2`,
/// `-0`, `2.50`), huge ids, and numbers beyond f64 in params.
fn edge_text() -> impl Strategy<Value = Vec<u8>> {
    fn call(method: &str, params: &str, id: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":{id}}}"#)
    }
    fn deep(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }
    let id = prop_oneof![
        prop_oneof![Just("1e400"), Just("-1e400"), Just("1E+2"), Just("-0"), Just("2.50"), Just("0.1e-3")]
            .prop_map(str::to_owned),
        "[1-9][0-9]{19,59}",
        "[a-z]{1000,5000}".prop_map(|id| format!("\"{id}\"")),
    ];
    let params = (-9i64..9, -2i64..3, any::<bool>()).prop_map(|(a, b, named)| {
        if named {
            format!(r#"{{"a":{a},"b":{b}}}"#)
        } else {
            format!("[{a},{b}]")
        }
    });
    let beyond_f64 =
        prop_oneof![Just("[1e400,1]"), Just("[1,-1e400]"), Just("[5,1e-400]"), Just(r#"{"a":1e400,"a":1,"b":2}"#)];
    let depth = 1usize..400;
    let piece = prop_oneof![
        (prop_oneof![Just("math.add"), Just("math.divide"), Just("math.nope")], params, id)
            .prop_map(|(method, params, id)| call(method, &params, &id)),
        depth.clone().prop_map(deep),
        depth.clone().prop_map(|d| call("math.add", "[1,2]", &deep(d))),
        depth.clone().prop_map(|d| call("math.add", &deep(d), "1")),
        (depth, any::<bool>()).prop_map(|(d, note)| {
            let id = if note { "" } else { r#","id":1"# };
            format!(r#"{{"jsonrpc":"2.0","method":"math.add","params":[1,2],"x":{}{id}}}"#, deep(d))
        }),
        (prop_oneof![Just("math.add"), Just("math.divide")], beyond_f64)
            .prop_map(|(method, params)| call(method, params, "1")),
        // A request's members in an array (not a request: -32600), and the
        // version spelled with an escape (the same string "2.0").
        (-9i64..9, -9i64..9).prop_map(|(a, b)| format!(r#"["2.0","math.add",[{a},{b}],1]"#)),
        (-9i64..9, -9i64..9)
            .prop_map(|(a, b)| format!(r#"{{"jsonrpc":"2\u002e0","method":"math.add","params":[{a},{b}],"id":1}}"#)),
    ]
    .boxed();
    prop_oneof![piece.clone(), prop::collection::vec(piece, 1..=4).prop_map(|p| format!("[{}]", p.join(",")))]
        .prop_map(String::into_bytes)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => envelope().prop_map(|v| v.to_string().into_bytes()),
        1 => edge_text(),
    ]
}

/// The server's `--max-batch` in the property test.
const MAX_BATCH: usize = 8;

/// Random bytes, random JSON, random request shapes and calls of `math`:
/// the answer is what the specification and `math` require of that very
/// body, judged by an oracle that shares no code with the server
/// (`oracle.rs`): -32700 exactly when the body is not JSON, one response
/// per request with its id as written, 204 exactly when every request is a
/// notification, and each call of `math` answered as the procedure
/// computes it (a sum, an overflow, a division by zero, -32601, -32602);
/// never a crash.
#[test]
fn random_bodies_always_get_the_answer_the_spec_requires() {
    use crate::oracle::{expected, Answer, Outcome};

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let max_batch = MAX_BATCH.to_string();
    let server = runtime.block_on(async {
        let server = Server::start(&["--max-batch", &max_batch]);
        server.deploy_ok("math", "math").await;
        server
    });
    let setup = Setup { modules: &["math"], max_batch: MAX_BATCH };
    // Answers the oracle pinned: [results, errors of math (code 1), -32602, -32601, -32600].
    let pinned = std::cell::Cell::new([0u32; 5]);
    let config = ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(body in body())| {
        let answer = runtime.block_on(server.request(Method::POST, "/rpc", &[], body.clone()));
        let shown = String::from_utf8_lossy(&body).into_owned();
        let answered = if answer.status == StatusCode::NO_CONTENT {
            prop_assert!(answer.body.is_empty(), "{} -> 204 with a body", shown);
            None
        } else {
            prop_assert_eq!(answer.status, StatusCode::OK, "{} -> {}", shown, answer.text());
            Some(&answer.body[..])
        };
        let verdict = check(&body, setup, answered);
        prop_assert!(verdict.is_ok(), "{} -> {}: {}", shown, answer.text(), verdict.unwrap_err());
        // The server's own checker agrees (where serde_json can hold the answer).
        if let Some(Ok(value)) = answered.map(serde_json::from_slice::<Value>) {
            prop_assert!(wasmrpc::rpc::is_valid_answer(&value), "{} -> {}", shown, value);
        }
        let due = match expected(&body, setup) {
            Answer::One(one) => vec![one],
            Answer::Batch(list) => list,
            Answer::ParseError | Answer::Nothing => Vec::new(),
        };
        let mut counts = pinned.get();
        for entry in due {
            match entry.outcome {
                Outcome::Returns(_) => counts[0] += 1,
                Outcome::Error { code: 1, .. } => counts[1] += 1,
                Outcome::Error { code: -32602, .. } => counts[2] += 1,
                Outcome::Error { code: -32601, .. } => counts[3] += 1,
                Outcome::Error { code: -32600, .. } => counts[4] += 1,
                _ => {}
            }
        }
        pinned.set(counts);
    });
    let pinned = pinned.get();
    eprintln!(
        "pinned answers: {} results, {} math errors, {} -32602, {} -32601, {} -32600",
        pinned[0], pinned[1], pinned[2], pinned[3], pinned[4]
    );
    // The draws reach every kind of answer the oracle pins.
    assert!(pinned.iter().all(|&n| n >= 10), "{pinned:?}");
    runtime.block_on(async {
        assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
    });
}

/// 64 clients in two rounds of a few seconds, mixing good calls, bad
/// requests and hostile guests: every good call is answered correctly (or
/// refused as overloaded or, rarely, out of time on 2 busy cores), every bad
/// one with its error, and the server's memory does not grow from the first
/// round to the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_is_answered_correctly_with_bounded_memory() {
    let _heavy = heavy().await;
    let server = Arc::new(Server::start(&["--time-limit-ms", "200", "--memory-limit-mib", "16"]));
    server.deploy_ok("math", "math").await;
    server.deploy_ok("hostile", "test_hostile").await;
    let mut totals = [0u64; 5];
    let mut rss_kib = Vec::new();
    for _round in 0..2 {
        for (total, n) in totals.iter_mut().zip(mixed_load(&server, Duration::from_secs(2)).await) {
            *total += n;
        }
        rss_kib.push(status_kib(server.pid(), "VmRSS:"));
    }
    let peak_kib = status_kib(server.pid(), "VmHWM:");
    eprintln!(
        "mixed load: {} good, {} bad, {} hostile, {} refused as overloaded, {} good ones timed out; \
         RSS {:?} MiB after each round, peak {} MiB",
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        totals[4],
        rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>(),
        peak_kib / 1024
    );
    assert!(totals[0] > 100 && totals[1] > 10 && totals[2] > 10, "{totals:?}");
    assert!(totals[4] * 20 <= totals[0], "too many good calls timed out: {totals:?}");
    assert!(peak_kib < 1024 * 1024, "peak RSS {peak_kib} KiB");
    // The second round reuses what the first allocated: a leak per call
    // (thousands of calls a round) shows as growth.
    let growth_kib = rss_kib[1].saturating_sub(rss_kib[0]);
    assert!(growth_kib < 64 * 1024, "RSS grew {} MiB from round 1 to round 2", growth_kib / 1024);
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
}

/// 64 clients for `length`: counts of [good, bad, hostile, overloaded, good but timed out].
async fn mixed_load(server: &Arc<Server>, length: Duration) -> [u64; 5] {
    let deadline = Instant::now() + length;
    let clients: Vec<_> = (0..64u64)
        .map(|client| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut counts = [0u64; 5];
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
                            } else if response["error"]["code"] == -32001 {
                                counts[4] += 1; // slowed past 200 ms beside the spinners
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
    let mut totals = [0u64; 5];
    for client in clients {
        for (total, n) in totals.iter_mut().zip(client.await.unwrap()) {
            *total += n;
        }
    }
    totals
}

/// A `kB` field (`VmRSS:`, `VmHWM:`) of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}
