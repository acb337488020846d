//! The admin API: deploy, replace, inspect, delete; every error status; auth.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{wasm, wasmrpc, Server};

fn error_text(answer: &wasmrpc::cli::client::Answer) -> String {
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
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);
    assert!(meta["deployed_at"].as_str().unwrap().ends_with('Z'), "{meta}");
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
        ("empty", component("(component)"), "missing export `wasmrpc:procedure/stub@0.1.1`"),
        (
            "http",
            component(r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#),
            "forbidden import `wasi:http/outgoing-handler@0.2.0`",
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
    let nested = server.deploy_bytes("a/../../b", wasm("math")).await;
    assert!(nested.status.is_client_error(), "{}", nested.status);
    let entries: Vec<_> = std::fs::read_dir(server.data_dir.join("procedures")).unwrap().collect();
    assert!(entries.is_empty(), "nothing may be stored: {entries:?}");
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
    let answer = server.request(Method::GET, "/rpc", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
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
    use std::io::{Read as _, Write as _};
    let server = Server::start(&["--max-module-mib", "1"]);
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let size = (1 << 20) + 1;
    write!(stream, "PUT /procedures/big HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n").unwrap();
    // By now the server has decided; without draining it would have closed.
    std::thread::sleep(std::time::Duration::from_millis(300));
    stream.write_all(&vec![0u8; size]).expect("the server took the whole body");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("1 MiB"), "{answer}");
}

#[tokio::test]
async fn metrics_count_calls_errors_and_latency() {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    server.result("math.add", json!([1, 2])).await;
    server.error("math.divide", json!([1, 0])).await;
    let metrics = server.request(Method::GET, "/metrics", &[], Vec::new()).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.content_type.as_deref().unwrap_or_default().starts_with("text/plain"));
    let text = metrics.text();
    assert!(text.contains("wasmrpc_calls_total{procedure=\"math\"} 2"), "{text}");
    assert!(text.contains("wasmrpc_errors_total{procedure=\"math\",code="), "{text}");
    assert!(text.contains("wasmrpc_call_duration_seconds_count{procedure=\"math\"} 2"), "{text}");
    assert!(text.contains("wasmrpc_procedures_deployed 1"), "{text}");

    // Every call creates a fresh instance and says how long that took;
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
    assert_eq!(sample("count"), 5.0, "{text}");
    let sum = sample("sum");
    assert!(sum > 0.0 && sum < 5.0, "{text}");
    assert!(text.contains("# TYPE wasmrpc_instantiate_duration_seconds histogram"), "{text}");
    assert!(text.contains("wasmrpc_instantiate_duration_seconds_bucket{procedure=\"math\",le=\"+Inf\"} 5\n"), "{text}");
}

/// A deploy runs the module's `describe` in an instance, which needs a call
/// slot like any call. With every slot held by a slow call, a PUT waits the
/// short overload wait, then gets 503 with a JSON error saying why, and
/// nothing of it is stored: the previous version keeps serving and the
/// refused upload does not use up a version number.
#[tokio::test]
async fn a_deploy_when_every_call_slot_is_busy_gets_503_and_stores_nothing() {
    let server = Server::start(&["--max-concurrent-calls", "1", "--time-limit-ms", "5000"]);
    server.deploy_ok("hostile", "test_hostile").await;
    server.deploy_ok("v", "test_v1").await;
    // test_v2's compiled code is cached once it has been deployed: the
    // refused PUT then costs the overload wait, not a compile.
    server.deploy_ok("warm", "test_v2").await;
    let list = || server.request(Method::GET, "/procedures", &[], Vec::new());
    let before = list().await.json().unwrap();
    let files_before = files(&server.data_dir);

    let slow = server.result("hostile.sleep", json!([1500]));
    let refused = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        let answer = server.deploy("v", "test_v2").await;
        (answer, started.elapsed())
    };
    let (_, (answer, took)) = tokio::join!(slow, refused);
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
    assert_eq!(answer.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let error = error_text(&answer);
    assert!(error.contains("overloaded") && error.contains("--max-concurrent-calls"), "{error}");
    assert!(took < std::time::Duration::from_millis(1200), "refused after {took:?}");

    assert_eq!(list().await.json().unwrap(), before);
    assert_eq!(files(&server.data_dir), files_before, "the refused upload changed the data dir");
    assert_eq!(server.result("v.version", json!([])).await, json!(1));
    let replaced = server.deploy_ok("v", "test_v2").await;
    assert_eq!(replaced["version"], 2, "{replaced}");
    assert_eq!(server.result("v.version", json!([])).await, json!(2));
}

/// Every file under `dir` with its contents.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(files(&path));
        } else {
            all.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    all
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

#[test]
fn refuses_public_listen_without_a_token() {
    let (ok, _, stderr) = wasmrpc(&["serve", "--listen", "0.0.0.0:0", "--data-dir", "/nonexistent/never-created"]);
    assert!(!ok);
    assert!(stderr.contains("without an admin token") && stderr.contains("--admin-token"), "{stderr}");
}
