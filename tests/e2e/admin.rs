//! The admin API: deploy, replace, inspect, delete; every error status; auth.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::seeds;
use crate::support::{sha256_hex, timing, timing_blocking, walk, wasm, wasmrpc, wasmrpc_with_env, Server};

fn error_text(answer: &wasmrpc_client::http::Answer) -> String {
    let body: Value = answer.json().unwrap_or_else(|e| panic!("{e:#}"));
    body["error"].as_str().unwrap_or_else(|| panic!("no error field: {body}")).to_owned()
}

#[tokio::test]
async fn deploy_replace_inspect_delete() {
    let server = Server::start(&[]);
    let first = server.deploy("math", "math").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    let meta = first.json().unwrap();
    assert_eq!(meta["name"], "math");
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["size"], wasm("math").len());
    assert_eq!(meta["sha256"].as_str().unwrap(), sha256_hex(&wasm("math")));
    let deployed_at = meta["deployed_at"].as_str().unwrap();
    assert!(deployed_at.ends_with('Z'), "{meta}");
    let when = time::OffsetDateTime::parse(deployed_at, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("deployed_at is not RFC 3339 ({e}): {meta}"));
    assert!((time::OffsetDateTime::now_utc() - when).whole_minutes().abs() < 10, "{meta}");
    let methods: Vec<&str> = meta["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(methods.contains(&"math.add") && methods.contains(&"math.divide"), "{methods:?}");

    // Identical bytes change nothing.
    let again = server.deploy("math", "math").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json().unwrap(), meta);

    // Different bytes replace it with the next version.
    let replaced = server.deploy("math", "text").await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.json().unwrap()["version"], 2);
    assert_eq!(server.error("math.add", json!([1, 2])).await["code"], -32601);
    server.deploy_ok("math", "math").await;
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));

    let got = server.request(Method::GET, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json().unwrap()["version"], 3);
    server.deploy_ok("text", "text").await;
    let list = server.request(Method::GET, "/procedures", &[], Vec::new()).await.json().unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["math", "text"]);

    let deleted = server.request(Method::DELETE, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let missing = server.request(Method::GET, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(error_text(&missing).contains("math"));
    assert_eq!(server.error("math.add", json!([1, 2])).await["code"], -32601);
    let again = server.request(Method::DELETE, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Versions are never reused: a PUT after a DELETE is a 201 with the next number.
    let back = server.deploy("math", "math").await;
    assert_eq!(back.status, StatusCode::CREATED);
    assert_eq!(back.json().unwrap()["version"], 4);
}

#[tokio::test]
async fn invalid_uploads_are_refused_with_the_reason() {
    let server = Server::start(&[]);
    let component = |wat: &str| wat::parse_str(wat).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text", b"hello, not wasm".to_vec(), "not a WebAssembly file"),
        ("core", component("(module)"), "core WebAssembly module, not a component"),
        ("empty", component("(component)"), "missing export `wasmrpc:procedure/stub@0.1.2`"),
        (
            "http",
            component(r#"(component (import "wasi:http/incoming-handler@0.2.0" (instance)))"#),
            "forbidden import `wasi:http/incoming-handler@0.2.0`",
        ),
        (
            "weird",
            component(r#"(component (import "acme:secret/door" (func)))"#),
            "forbidden import `acme:secret/door`",
        ),
        ("broken", b"\0asm\x0d\0\x01\0\xff\xff".to_vec(), "not a valid WebAssembly component"),
        ("nothing", Vec::new(), "body is empty"),
    ];
    for (name, bytes, expected) in cases {
        let answer = server.deploy_bytes(name, bytes).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}: {}", answer.text());
        let error = error_text(&answer);
        assert!(error.contains(expected), "{name}: {error}");
        let missing = server.request(Method::GET, &format!("/procedures/{name}"), &[], Vec::new()).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{name} must not be deployed");
    }
    // A rejected upload leaves the serving version alone.
    server.deploy_ok("math", "math").await;
    assert_eq!(server.deploy_bytes("math", b"junk".to_vec()).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(server.result("math.add", json!([2, 2])).await, json!(4));
}

#[tokio::test]
async fn names_cannot_escape_the_data_dir() {
    let server = Server::start(&[]);
    for name in ["Math", "rpc", "..", "%2e%2e", "a%2Fb", "a.b", "a%00", "1abc", &"a".repeat(64)] {
        let answer = server.deploy_bytes(name, wasm("math")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}: {}", answer.text());
        assert!(error_text(&answer).contains("name"), "{name}");
    }
    // Sent as is (an HTTP client library might normalise the path first).
    for path in ["/procedures/a/../../b", "/procedures/../b", "/procedures/a%2F..%2F..%2Fb"] {
        let answer = raw_put(&server, path, &wasm("math"));
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("name"), "{path}: {answer}");
    }
    let temp = server.data_dir.parent().unwrap();
    let stored: Vec<_> =
        walk(temp).into_iter().filter(|p| p.extension().is_some_and(|e| e == "wasm" || e == "json")).collect();
    assert!(stored.is_empty(), "nothing may be stored: {stored:?}");
}

/// `PUT path` with `body` over a raw socket, exactly as written; the answer's text.
fn raw_put(server: &Server, path: &str, body: &[u8]) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(stream, "PUT {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len())
        .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[tokio::test]
async fn limits_statuses_and_routes() {
    let server = Server::start(&["--max-module-mib", "1"]);
    let big = vec![0u8; (1 << 20) + 1];
    let answer = server.deploy_bytes("big", big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_text(&answer).contains("1 MiB"));

    let answer = server.request(Method::POST, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error_text(&answer).contains("POST"));
    assert_eq!(answer.headers.get("allow").map(|v| v.as_bytes()), Some(&b"GET, PUT, DELETE"[..]));
    let answer = server.request(Method::GET, "/rpc", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers.get("allow").map(|v| v.as_bytes()), Some(&b"POST"[..]));
    let answer = server.request(Method::DELETE, "/procedures", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers.get("allow").map(|v| v.as_bytes()), Some(&b"GET"[..]));
    let answer = server.request(Method::GET, "/nope", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(error_text(&answer).contains("/nope"));

    let health = server.request(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK);
}

/// A client that sends its whole too-large upload still reads the 413: the
/// server reads and drops the rest of the body before closing, instead of
/// resetting the connection under the client (a broken pipe in curl).
#[test]
fn a_too_large_upload_is_answered_not_reset() {
    let _timing = timing_blocking();
    use std::io::{Read as _, Write as _};
    let server = Server::start(&["--max-module-mib", "1"]);
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let size = (1 << 20) + 1;
    write!(stream, "PUT /procedures/big HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n").unwrap();
    // The body in 64 KiB pieces with pauses: a server that decided early and
    // closed without draining makes a later write fail (a reset), every time.
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let n = chunk.len().min(size - sent);
        stream.write_all(&chunk[..n]).unwrap_or_else(|e| panic!("the server stopped reading after {sent} bytes: {e}"));
        sent += n;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("1 MiB"), "{answer}");
}

#[tokio::test]
async fn metrics_count_calls_errors_and_latency() {
    // No ready instances: each call makes exactly one instance, so the
    // counts below are exact (ready instances have their own test in
    // isolation.rs, and their own counter).
    let server = Server::start(&["--ready-instances", "0"]);
    server.deploy_ok("math", "math").await;
    server.result("math.add", json!([1, 2])).await;
    server.error("math.divide", json!([1, 0])).await;
    let metrics = server.request(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.content_type.as_deref().unwrap_or_default().starts_with("text/plain"));
    let text = metrics.text();
    assert!(text.contains("wasmrpc_calls_total{procedure=\"math\"} 2"), "{text}");
    assert!(text.contains("wasmrpc_errors_total{procedure=\"math\",code=\"1\"} 1\n"), "{text}");
    assert!(text.contains("wasmrpc_call_duration_seconds_count{procedure=\"math\"} 2"), "{text}");
    assert!(text.contains("wasmrpc_procedures_deployed 1"), "{text}");

    // Every call's fresh instance is counted with the time it took to make.
    // `describe` at deploy is not a call and is not counted.
    for i in 0..3 {
        server.result("math.add", json!([i, 1])).await;
    }
    let text = server.request(Method::GET, "/metrics", &[], Vec::new()).await.text();
    let sample = |name: &str| -> f64 {
        let prefix = format!("wasmrpc_instantiate_duration_seconds_{name}{{procedure=\"math\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        line.unwrap_or_else(|| panic!("no {prefix}in\n{text}")).parse().unwrap()
    };
    let count = sample("count");
    assert_eq!(count, 5.0, "{text}");
    assert!(text.contains("wasmrpc_ready_instance_calls_total{procedure=\"math\"} 0\n"), "{text}");
    let sum = sample("sum");
    assert!(sum > 0.0 && sum < 5.0, "{text}");
    assert!(text.contains("# TYPE wasmrpc_instantiate_duration_seconds histogram"), "{text}");
    let all = format!("wasmrpc_instantiate_duration_seconds_bucket{{procedure=\"math\",le=\"+Inf\"}} {count}\n");
    assert!(text.contains(&all), "{text}");
}

/// A deploy runs the module's `describe` in an instance, which needs a call
/// slot like any call. With every slot held by a slow call, a PUT waits the
/// short overload wait, then gets 503 with a JSON error saying why, and
/// nothing of it is stored: the previous version keeps serving and the
/// refused upload does not use up a version number.
#[tokio::test]
async fn a_deploy_when_every_call_slot_is_busy_gets_503_and_stores_nothing() {
    let _timing = timing().await;
    let server = Server::start(&["--max-concurrent-calls", "1", "--time-limit-ms", "5000"]);
    server.deploy_ok("hostile", "test_hostile").await;
    server.deploy_ok("v", "test_v1").await;
    // test_v2's compiled code is cached once it has been deployed: the
    // refused PUT then costs the overload wait, not a compile.
    server.deploy_ok("warm", "test_v2").await;
    let list = || server.request(Method::GET, "/procedures", &[], Vec::new());
    let before = list().await.json().unwrap();
    let files_before = files(&server.data_dir);

    let from = server.log().len();
    let slow = server.result("hostile.sleep", json!([4000]));
    let refused = async {
        // The slow call holds the only slot once it says it is sleeping.
        server.wait_for_log(from, &["sleeping 4000 ms"], std::time::Duration::from_secs(10)).await;
        let started = std::time::Instant::now();
        let answer = server.deploy("v", "test_v2").await;
        (answer, started.elapsed())
    };
    let (_, (answer, took)) = tokio::join!(slow, refused);
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert_eq!(answer.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let error = error_text(&answer);
    assert!(error.contains("overloaded") && error.contains("--max-concurrent-calls"), "{error}");
    // The overload wait (500 ms) and the upload, well before the sleeper ends.
    assert!(took < std::time::Duration::from_millis(2500), "refused after {took:?}");

    assert_eq!(list().await.json().unwrap(), before);
    assert_eq!(files(&server.data_dir), files_before, "the refused upload changed the data dir");
    assert_eq!(server.result("v.version", json!([])).await, json!(1));
    let replaced = server.deploy_ok("v", "test_v2").await;
    assert_eq!(replaced["version"], 2, "{replaced}");
    assert_eq!(server.result("v.version", json!([])).await, json!(2));
}

/// Every file under `dir` with its contents.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    walk(dir).into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}

#[tokio::test]
async fn admin_token_guards_changes_not_calls() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    let none = server.deploy("math", "math").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(error_text(&none).contains("Authorization: Bearer"));
    let wrong =
        server.request(Method::PUT, "/procedures/math", &[("authorization", "Bearer nope")], wasm("math")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right =
        server.request(Method::PUT, "/procedures/math", &[("authorization", "Bearer s3cret")], wasm("math")).await;
    assert_eq!(right.status, StatusCode::CREATED, "{}", right.text());
    // Calls and reads stay open.
    assert_eq!(server.result("math.add", json!([1, 1])).await, json!(2));
    let list = server.request(Method::GET, "/procedures", &[], Vec::new()).await;
    assert_eq!(list.status, StatusCode::OK);
    let delete = server.request(Method::DELETE, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(delete.status, StatusCode::UNAUTHORIZED);
    let delete =
        server.request(Method::DELETE, "/procedures/math", &[("authorization", "Bearer s3cret")], Vec::new()).await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
}

/// The token can come from `WASMRPC_ADMIN_TOKEN` as well as the flag.
#[tokio::test]
async fn the_admin_token_from_the_environment_is_required() {
    let server = Server::start_with_env(&[], &[("WASMRPC_ADMIN_TOKEN", "s3cret")]);
    let none = server.deploy("math", "math").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{}", none.text());
    let empty = server.request(Method::PUT, "/procedures/math", &[("authorization", "Bearer ")], wasm("math")).await;
    assert_eq!(empty.status, StatusCode::UNAUTHORIZED, "{}", empty.text());
    let right =
        server.request(Method::PUT, "/procedures/math", &[("authorization", "Bearer s3cret")], wasm("math")).await;
    assert_eq!(right.status, StatusCode::CREATED, "{}", right.text());
}

/// An empty token means no token: on loopback anyone local may deploy, and
/// a public address is refused as if no token were given (an empty token
/// must never be a password that an empty `Authorization` matches).
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_admin_token_means_no_token() {
    let server = Server::start(&["--admin-token", ""]);
    assert_eq!(server.deploy("math", "math").await.status, StatusCode::CREATED);
    let server = Server::start_with_env(&[], &[("WASMRPC_ADMIN_TOKEN", "")]);
    assert_eq!(server.deploy("math", "math").await.status, StatusCode::CREATED);

    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["serve", "--listen", "0.0.0.0:0", "--data-dir", "/nonexistent/never-created"];
        all.extend(args);
        let (ok, _, stderr) = wasmrpc_with_env(&all, env);
        assert!(!ok, "served {all:?} {env:?}");
        assert!(stderr.contains("without an admin token") && stderr.contains("--admin-token"), "{stderr}");
    };
    tokio::task::block_in_place(|| {
        refused(&["--admin-token", ""], &[]);
        refused(&[], &[("WASMRPC_ADMIN_TOKEN", "")]);
    });
}

#[test]
fn refuses_public_listen_without_a_token() {
    let (ok, _, stderr) = wasmrpc(&["serve", "--listen", "0.0.0.0:0", "--data-dir", "/nonexistent/never-created"]);
    assert!(!ok);
    assert!(stderr.contains("without an admin token") && stderr.contains("--admin-token"), "{stderr}");
}

/// The `module_upload` fuzz target's seeds end where they are meant to: the
/// procedure is deployed and answers, each other one is refused with its
/// reason (so a server that refused everything would not pass for a
/// fuzzing success).
#[tokio::test]
async fn fuzz_seeds_end_where_they_should() {
    let server = Server::start(&[]);
    for (name, wat, outcome) in seeds::seeds() {
        let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        let answer = server.deploy_bytes(name, bytes).await;
        match outcome {
            seeds::Outcome::Accepted => {
                assert_eq!(answer.status, StatusCode::CREATED, "{name}: {}", answer.text());
                assert_eq!(server.result(&format!("{name}.f"), json!([])).await, Value::Null);
            }
            seeds::Outcome::Refused(reason) => {
                assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}: {}", answer.text());
                assert!(error_text(&answer).contains(reason), "{name}: {}", answer.text());
            }
        }
    }
}

/// A component whose `describe` traps, loops, hogs memory, answers what is
/// not JSON, or names a method with an empty or `rpc.` name is refused at
/// deploy with a 400 naming the cause, within the time limit, nothing is
/// stored, and the server keeps serving.
#[tokio::test]
async fn a_describe_that_misbehaves_is_refused_quickly() {
    let _timing = timing().await;
    let server = Server::start(&["--time-limit-ms", "1000", "--memory-limit-mib", "16"]);
    server.deploy_ok("math", "math").await;
    let good = r#"{"methods":[{"name":"f","params":[]}]}"#;
    let grow_until_refused = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
    let cases = [
        ("traps", seeds::procedure("unreachable", good), "trapped"),
        ("loops", seeds::procedure("(loop $l (br $l)) i32.const 0", good), "time limit of 1s"),
        ("hogs", seeds::procedure(grow_until_refused, good), "limit of 16 MiB"),
        ("garbage", seeds::procedure("i32.const 0", "not json"), "invalid JSON"),
        ("nameless", seeds::procedure("i32.const 0", r#"{"methods":[{"name":"","params":[]}]}"#), "name \"\""),
        ("reserved", seeds::procedure("i32.const 0", r#"{"methods":[{"name":"rpc.x","params":[]}]}"#), "\"rpc.x\""),
        ("none", seeds::procedure("i32.const 0", r#"{"nothing":[]}"#), "expected {\"methods\""),
    ];
    for (name, wat, cause) in cases {
        let started = std::time::Instant::now();
        let answer = server.deploy_bytes(name, wat::parse_str(&wat).unwrap()).await;
        let took = started.elapsed();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}: {}", answer.text());
        let error = error_text(&answer);
        assert!(error.contains("describe") && error.contains(cause), "{name}: {error}");
        assert!(took < std::time::Duration::from_secs(5), "{name}: refused after {took:?}");
        let missing = server.request(Method::GET, &format!("/procedures/{name}"), &[], Vec::new()).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{name} must not be deployed");
        assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3), "after {name}");
    }
    // The template itself deploys: the refusals are about describe alone.
    let fine = server.deploy_bytes("fine", wat::parse_str(seeds::procedure("i32.const 0", good)).unwrap()).await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.text());
    let health = server.request(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK);
}

/// Eight clients PUT two versions of one name at once while another
/// DELETEs it: every answer is a success, exactly one PUT creates the name
/// first (201), the versions given are all different, and what serves at
/// the end is what the metadata says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_of_one_name_get_distinct_versions() {
    let server = std::sync::Arc::new(Server::start(&[]));
    // Compiled once, so the racing PUTs overlap instead of queueing on a compile.
    server.deploy_ok("warm1", "test_v1").await;
    server.deploy_ok("warm2", "test_v2").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let file = if i % 2 == 0 { "test_v1" } else { "test_v2" };
                let answer = server.deploy("x", file).await;
                assert!(answer.status.is_success(), "PUT {i}: {} {}", answer.status, answer.text());
                (answer.status, answer.json().unwrap())
            })
        })
        .collect();
    let delete = {
        let server = server.clone();
        tokio::spawn(async move { server.request(Method::DELETE, "/procedures/x", &[], Vec::new()).await.status })
    };
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let deleted = delete.await.unwrap();
    assert!(deleted == StatusCode::NO_CONTENT || deleted == StatusCode::NOT_FOUND, "DELETE: {deleted}");
    let created = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    // A DELETE between PUTs makes the next PUT create the name again.
    let most = if deleted == StatusCode::NO_CONTENT { 2 } else { 1 };
    assert!((1..=most).contains(&created), "{created} PUTs created x: {answers:?}");
    // Identical bytes to the serving version are answered with its metadata
    // (same version); new bytes get a new version: never one twice for
    // different code.
    let mut by_version: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    for (_, meta) in &answers {
        let version = meta["version"].as_u64().unwrap();
        let sha = meta["sha256"].as_str().unwrap().to_owned();
        let seen = by_version.entry(version).or_insert_with(|| sha.clone());
        assert_eq!(*seen, sha, "version {version} given to two different modules: {answers:?}");
    }
    let meta = server.request(Method::GET, "/procedures/x", &[], Vec::new()).await;
    if meta.status == StatusCode::OK {
        let meta = meta.json().unwrap();
        let version = meta["version"].as_u64().unwrap();
        assert_eq!(by_version.get(&version).map(String::as_str), meta["sha256"].as_str(), "{meta} was never answered");
        let serving = server.result("x.version", json!([])).await;
        let expected = if meta["sha256"].as_str() == Some(&sha256_hex(&wasm("test_v1"))) { 1 } else { 2 };
        assert_eq!(serving, json!(expected), "serves other code than its metadata {meta}");
    } else {
        assert_eq!(meta.status, StatusCode::NOT_FOUND);
        assert_eq!(server.error("x.version", json!([])).await["code"], -32601);
    }
    // The next PUT gets a version above every one given so far.
    let next = server.deploy("x", "math").await;
    assert!(next.status.is_success(), "{}", next.text());
    let max = by_version.keys().max().copied().unwrap();
    assert!(next.json().unwrap()["version"].as_u64().unwrap() > max, "a version was reused");
}

/// A body sent without a Content-Length (chunked) is held to the same
/// limits: over them, a call and an upload get 413 with the JSON error.
#[test]
fn a_chunked_body_over_the_limit_is_refused() {
    use std::io::{Read as _, Write as _};
    let server = Server::start(&["--max-module-mib", "1", "--max-body-kib", "1"]);
    let send = |head: &str, size: usize| -> String {
        let mut stream = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        write!(stream, "{head}\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
        let chunk = vec![b' '; 16 * 1024];
        let mut sent = 0;
        while sent < size {
            // The server may answer and close once past the limit.
            if write!(stream, "{:x}\r\n", chunk.len()).and_then(|()| stream.write_all(&chunk)).is_err() {
                break;
            }
            let _ = stream.write_all(b"\r\n");
            sent += chunk.len();
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let call = send("POST /rpc HTTP/1.1\r\nContent-Type: application/json", 64 * 1024);
    assert!(call.starts_with("HTTP/1.1 413"), "{call}");
    let body: Value = serde_json::from_str(call.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], -32600, "{call}");
    assert!(body["error"]["data"].as_str().unwrap_or_default().contains("1 KiB"), "{call}");
    let upload = send("PUT /procedures/big HTTP/1.1", (1 << 20) + 64 * 1024);
    assert!(upload.starts_with("HTTP/1.1 413"), "{upload}");
    assert!(upload.contains("1 MiB"), "{upload}");
}
