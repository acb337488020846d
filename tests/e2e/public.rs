//! The public endpoint's own rules for `/rpc` that are not keys, rate limits,
//! WebSocket or tracing: which web pages may call (`--cors-origin`, checked
//! with curl-like requests and in headless Chromium from a page of another
//! origin), and the cap on a response's size (`--max-response-mib`), which
//! answers -32006 for the call whose answer does not fit instead of cutting
//! the text.

use std::path::Path;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{clean_command, heavy, output_within, Server};

/// An origin no server of these tests has: listed, never served.
const PAGE_ORIGIN: &str = "http://localhost:9";

/// Serves one small HTML page to every request on a loopback port, for as
/// long as the test runs: the page of another origin in the browser test
/// (a page the browser only imagined would count as public, and Chromium
/// keeps public pages from calling loopback at all). Returns its origin.
fn page_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && std::io::Read::read(&mut stream, &mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let page = "<!doctype html><title>another origin</title>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    origin
}

#[tokio::test]
async fn only_allowed_origins_may_call_and_read_the_answer() {
    let server = Server::start(&["--cors-origin", PAGE_ORIGIN, "--cors-origin", "https://app.example.com"]);
    server.deploy_ok("math", "math").await;
    let body = json!({"jsonrpc": "2.0", "method": "math.add", "params": [2, 3], "id": 1}).to_string();
    let post = |origin: &'static str| {
        let (server, body) = (&server, body.clone());
        async move {
            let headers = [("content-type", "application/json"), ("origin", origin)];
            server.request(Method::POST, "/rpc", &headers, body).await
        }
    };

    let allowed = post("https://app.example.com").await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text());
    assert_eq!(allowed.json().unwrap()["result"], 5);
    assert_eq!(allowed.headers["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(allowed.headers["vary"], "origin");

    // Refused before anything runs: the JSON-RPC shape, with the flag to set.
    let refused = post("https://evil.example").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let error = refused.json().unwrap();
    assert_eq!(error["error"]["code"], -32600);
    assert!(error["error"]["data"].as_str().unwrap().contains("--cors-origin https://evil.example"), "{error}");
    assert!(!refused.headers.contains_key("access-control-allow-origin"));

    // The server's own pages (the dashboard) always may; clients that are not
    // browsers send no Origin and are not affected.
    let headers = [("content-type", "application/json"), ("origin", server.url.as_str())];
    let same = server.request(Method::POST, "/rpc", &headers, body.clone()).await;
    assert_eq!(same.json().unwrap()["result"], 5);
    assert!(!same.headers.contains_key("access-control-allow-origin"));
    assert_eq!(server.result("math.add", json!([1, 1])).await, 2);

    // Preflights: allowed ones learn what they may send; others get 403.
    let ask = |origin: &'static str| {
        let server = &server;
        async move {
            let headers = [
                ("origin", origin),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization, content-type"),
            ];
            server.request(Method::OPTIONS, "/rpc", &headers, Vec::new()).await
        }
    };
    let preflight = ask("https://app.example.com").await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(preflight.headers["access-control-allow-methods"], "POST");
    let allowed_headers = preflight.headers["access-control-allow-headers"].to_str().unwrap();
    for header in ["authorization", "content-type", "traceparent"] {
        assert!(allowed_headers.contains(header), "{allowed_headers}");
    }
    assert_eq!(ask("https://evil.example").await.status, StatusCode::FORBIDDEN);
    // Both refusals (the POST's, the preflight's) are counted.
    assert_eq!(server.metric("wasmrpc_refused_requests_total{reason=\"origin\"}").await, Some(2.0));

    // Without the flag, no other origin may.
    let closed = Server::start(&[]);
    closed.deploy_ok("math", "math").await;
    let headers = [("content-type", "application/json"), ("origin", "https://app.example.com")];
    let answer = closed.request(Method::POST, "/rpc", &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bad_cors_origin_is_refused_at_start() {
    let output = clean_command(env!("CARGO_BIN_EXE_wasmrpc"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cors-origin", "app.example.com/path"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--cors-origin \"app.example.com/path\"") && stderr.contains("https://"), "{stderr}");
}

/// A page of another origin calls servers from Chromium: one that lists
/// the page's origin (the answer is read, after a preflight for the JSON
/// content type and a traceparent header), one that does not (the
/// browser's fetch fails, and the server ran nothing), and one that also
/// requires a caller key (sent as a header by fetch, and as a subprotocol
/// by the WebSocket, which cannot send headers). The checks are in
/// tests/dashboard/cors.test.mjs.
#[tokio::test]
async fn cross_origin_calls_in_a_browser() {
    let _heavy = heavy().await;
    let page = page_server();
    let open = Server::start(&["--cors-origin", &page]);
    let closed = Server::start(&[]);
    let keyed = Server::start(&["--cors-origin", &page, "--require-call-key"]);
    for server in [&open, &closed, &keyed] {
        server.deploy_ok("math", "math").await;
    }
    let made =
        keyed.request(Method::POST, "/keys", &[], json!({"name": "page", "procedures": ["math"]}).to_string()).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let key = made.json().unwrap()["key"].as_str().unwrap().to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dashboard/cors.test.mjs");
    let mut node = clean_command("node");
    node.arg(&script)
        .env("PAGE_ORIGIN", &page)
        .env("OPEN_URL", &open.url)
        .env("CLOSED_URL", &closed.url)
        .env("KEYED_URL", &keyed.url)
        .env("KEY", &key);
    let output = tokio::task::spawn_blocking(move || output_within(node, Duration::from_secs(120))).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "the browser test failed:\n{stdout}\n{}\n--- open server:\n{}\n--- closed server:\n{}",
        String::from_utf8_lossy(&output.stderr),
        open.log(),
        closed.log()
    );
    // The refused server ran no call: its counter has no math.add.
    assert_eq!(closed.metric("wasmrpc_calls_total{procedure=\"math\"}").await, Some(0.0));
}

#[tokio::test]
async fn an_answer_past_the_response_cap_is_a_named_error_for_its_call() {
    let server = Server::start(&["--max-response-mib", "1", "--max-body-kib", "4096"]);
    server.deploy_ok("text", "text").await;
    let text = |kib: usize| "ab".repeat(kib * 512);
    let upper =
        |id: u32, kib: usize| json!({"jsonrpc": "2.0", "method": "text.upper", "params": [text(kib)], "id": id});

    // One call: under the cap it is answered whole; over it, -32006 with the sizes.
    let fits = server.rpc(upper(1, 1000)).await;
    assert_eq!(fits["result"].as_str().unwrap().len(), 1000 * 1024);
    let refused = server.rpc(upper(2, 1100)).await;
    assert_eq!(refused["id"], 2);
    assert_eq!(refused["error"]["code"], -32006, "{refused}");
    assert_eq!(refused["error"]["message"], "Response too large");
    assert_eq!(refused["error"]["data"]["limit_bytes"], 1 << 20);
    assert!(refused["error"]["data"]["size_bytes"].as_u64().unwrap() > 1100 * 1024);
    assert!(refused["error"]["data"]["reason"].as_str().unwrap().contains("--max-response-mib"));

    // A batch: the cap is the whole body's; answers in order until one does
    // not fit, which (and only which) is the error; small ones still fit.
    let small = json!({"jsonrpc": "2.0", "method": "text.upper", "params": ["x"], "id": 5});
    let batch = server.rpc(json!([upper(3, 600), upper(4, 600), small])).await;
    let batch = batch.as_array().unwrap();
    assert_eq!(batch.len(), 3);
    let by_id = |id: u32| batch.iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(by_id(3)["result"].as_str().unwrap().len(), 600 * 1024);
    assert_eq!(by_id(4)["error"]["code"], -32006);
    assert_eq!(by_id(5)["result"], "X");
    let whole = serde_json::to_vec(&Value::Array(batch.clone())).unwrap();
    assert!(whole.len() <= 1 << 20, "{} bytes", whole.len());
}
