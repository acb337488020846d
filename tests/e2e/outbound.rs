//! Outgoing HTTP (`wasi:http`) behind a deploy's `allow-outbound` grant,
//! with the `test_http_client` guest (wstd's client). Loopback only: every
//! upstream is a tiny HTTP/1.1 server on 127.0.0.1 started here, granted
//! by its literal address (reachable), by the name `localhost` (which
//! resolves to loopback and must be refused), or not at all. The refused
//! private, link-local and metadata ranges are tested on the address
//! check itself (`host/src/outbound.rs`), never with a packet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{join_all, timing, Server};
use crate::upstream::{deploy_with_grants, Reply, Request, Upstream};

/// A loopback upstream: `/hello`, `/redirect` (302 to /hello), `/slow?ms=N`,
/// `/big?bytes=N`, `/echo` (method and body back).
async fn start_upstream() -> Upstream {
    Upstream::start(route).await
}

fn route(request: &Request) -> Reply {
    match request.path.as_str() {
        "/hello" => Reply::new("200 OK", "hello from upstream").header("x-upstream", "yes"),
        "/redirect" => Reply::new("302 Found", "").header("location", "/hello"),
        "/slow" => Reply::new("200 OK", "slow").after(Duration::from_millis(request.number("ms").unwrap_or(500))),
        "/big" => Reply::new("200 OK", vec![b'x'; usize::try_from(request.number("bytes").unwrap_or(0)).unwrap()]),
        "/echo" => {
            let mut body = format!("{} ", request.method).into_bytes();
            body.extend_from_slice(&request.body);
            Reply::new("200 OK", body)
        }
        _ => Reply::new("404 Not Found", ""),
    }
}

/// How many `/hello`s `upstream` has answered.
fn hellos(upstream: &Upstream) -> usize {
    upstream.seen.lock().unwrap().iter().filter(|r| r.path == "/hello").count()
}

async fn deploy_granting(server: &Server, name: &str, grants: &[&str]) -> (StatusCode, Value) {
    deploy_with_grants(server, name, "test_http_client", grants).await
}

/// The `wasi:http` error code a failed fetch named.
fn wasi_error(error: &Value) -> &str {
    assert_eq!(error["code"], 20, "{error}");
    error["data"]["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn granted_hosts_are_reached_others_denied_and_redirects_not_followed() {
    let upstream = start_upstream().await;
    let other = start_upstream().await;
    let server = Server::start(&[]);
    let (status, meta) = deploy_granting(&server, "h", &[&upstream.grant()]).await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");
    assert_eq!(meta["allowed_outbound"], json!([upstream.grant()]));
    let shown = server.request(Method::GET, "/procedures/h", &[], Vec::new()).await.json().unwrap();
    assert_eq!(shown["allowed_outbound"], json!([upstream.grant()]));

    let got = server.result("h.fetch", json!({"url": upstream.url("/hello")})).await;
    assert_eq!((got["status"].as_u64(), got["body"].as_str()), (Some(200), Some("hello from upstream")), "{got}");
    assert_eq!(got["headers"]["x-upstream"], "yes");
    let echoed = server.result("h.fetch", json!({"url": upstream.url("/echo"), "method": "POST", "body": "hi"})).await;
    assert_eq!(echoed["body"], "POST hi");

    // A redirect comes back as it is: the host does not follow it.
    let hello_before = hellos(&upstream);
    let got = server.result("h.fetch", json!({"url": upstream.url("/redirect")})).await;
    assert_eq!(got["status"], 302, "{got}");
    assert_eq!(got["headers"]["location"], "/hello");
    assert_eq!(hellos(&upstream), hello_before, "the redirect was not followed");

    // Another port of the same address is another grant: denied, never sent.
    let error = server.error("h.fetch", json!({"url": other.url("/hello")})).await;
    assert_eq!(wasi_error(&error), "HTTP-request-denied", "{error}");
    assert_eq!(other.requests.load(Ordering::SeqCst), 0);
    // So is https to the granted http host.
    let url = format!("https://127.0.0.1:{}/hello", upstream.port);
    assert_eq!(wasi_error(&server.error("h.fetch", json!({ "url": url })).await), "HTTP-request-denied");
    server.wait_for_log(0, &["outbound request refused", "--allow-outbound"], Duration::from_secs(5)).await;

    let ok = "wasmrpc_outbound_requests_total{procedure=\"h\",host=\"127.0.0.1\",outcome=\"ok\"}";
    assert_eq!(server.metric(ok).await, Some(3.0));
    let denied = "wasmrpc_outbound_requests_total{procedure=\"h\",host=\"(not granted)\",outcome=\"denied\"}";
    assert_eq!(server.metric(denied).await, Some(2.0));

    // Without a grant, nothing goes out.
    server.deploy_ok("plain", "test_http_client").await;
    let error = server.error("plain.fetch", json!({"url": upstream.url("/hello")})).await;
    assert_eq!(wasi_error(&error), "HTTP-request-denied");
}

/// A guest sends its request body while it waits for the answer (wstd
/// does): a refusal, or an answer that needs no more of the body, must
/// reach it as such, not as a write error on a body stream closed under it.
#[tokio::test]
async fn a_refusal_or_an_answer_reaches_a_guest_still_sending_its_body() {
    let upstream = start_upstream().await;
    let other = start_upstream().await;
    let server = Server::start(&["--max-body-kib", "8192"]);
    deploy_granting(&server, "h", &[&upstream.grant()]).await;
    let body = "x".repeat(3 << 20);
    for _ in 0..3 {
        let error = server.error("h.fetch", json!({"url": other.url("/echo"), "method": "POST", "body": body})).await;
        assert_eq!(wasi_error(&error), "HTTP-request-denied", "{error}");
    }
    assert_eq!(other.requests.load(Ordering::SeqCst), 0);
    let got = server.result("h.fetch", json!({"url": upstream.url("/echo"), "method": "POST", "body": body})).await;
    assert_eq!(got["status"], 200);
    assert_eq!(got["body"].as_str().map(str::len), Some(body.len() + "POST ".len()));
    // An empty body: the answer may come before the guest has finished it.
    for _ in 0..20 {
        let got = server.result("h.fetch", json!({"url": upstream.url("/hello")})).await;
        assert_eq!(got["status"], 200);
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused() {
    let upstream = start_upstream().await;
    let server = Server::start(&[]);
    let by_name = format!("http://localhost:{}", upstream.port);
    let (status, meta) = deploy_granting(&server, "h", &[&by_name]).await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");
    let error = server.error("h.fetch", json!({"url": format!("{by_name}/hello")})).await;
    assert_eq!(wasi_error(&error), "destination-IP-prohibited", "{error}");
    // The literal address is another entry, not granted here.
    let error = server.error("h.fetch", json!({"url": upstream.url("/hello")})).await;
    assert_eq!(wasi_error(&error), "HTTP-request-denied", "{error}");
    assert_eq!(upstream.requests.load(Ordering::SeqCst), 0, "no request reached the upstream");
    server.wait_for_log(0, &["localhost resolves to", "loopback", "literally"], Duration::from_secs(5)).await;
}

#[tokio::test]
async fn bad_grants_are_refused_saying_why() {
    let server = Server::start(&[]);
    for (grant, why) in [
        ("ftp://example.com", "http or https"),
        ("https://example.com/path", "path"),
        ("example.com", "no scheme"),
        ("https://example.com:0", "port"),
        ("https://*.com", "wildcard"),
    ] {
        let (status, body) = deploy_granting(&server, "h", &[grant]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grant}: {body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{grant}: {body}");
    }
    assert_eq!(server.request(Method::GET, "/procedures/h", &[], Vec::new()).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_response_cap_and_the_request_limit() {
    let upstream = start_upstream().await;
    let server = Server::start(&["--max-outbound-response-mib", "1", "--max-outbound-requests", "3"]);
    deploy_granting(&server, "h", &[&upstream.grant()]).await;
    let small = server.result("h.fetch", json!({"url": upstream.url("/big?bytes=1000")})).await;
    assert_eq!(small["body"].as_str().unwrap().len(), 1000);
    let error = server.error("h.fetch", json!({"url": upstream.url("/big?bytes=2000000")})).await;
    assert_eq!(wasi_error(&error), "HTTP-response-body-size", "{error}");
    server.wait_for_log(0, &["--max-outbound-response-mib"], Duration::from_secs(5)).await;

    let outcomes = server.result("h.fetch_many", json!({"url": upstream.url("/hello"), "count": 4})).await;
    assert_eq!(outcomes, json!(["200", "200", "200", "request failed: internal-error"]), "{outcomes}");
    server.wait_for_log(0, &["--max-outbound-requests"], Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_slow_upstream_is_cut_at_the_call_deadline() {
    let _timing = timing().await;
    let upstream = start_upstream().await;
    let server = Server::start(&["--time-limit-ms", "500"]);
    deploy_granting(&server, "h", &[&upstream.grant()]).await;
    let started = Instant::now();
    let error = server.error("h.fetch", json!({"url": upstream.url("/slow?ms=10000")})).await;
    assert_eq!(error["code"], -32001, "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // The connection ends with the call.
    let deadline = Instant::now() + Duration::from_secs(3);
    while upstream.cut.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.cut.load(Ordering::SeqCst), 1, "the upstream connection was closed");
}

#[tokio::test]
async fn calls_waiting_on_the_network_lend_their_slots() {
    let _timing = timing().await;
    let upstream = start_upstream().await;
    // 64 calls on 32 slots: only lending lets all of them wait at once.
    let server = Server::start(&["--max-concurrent-calls", "32"]);
    deploy_granting(&server, "h", &[&upstream.grant()]).await;
    server.result("h.fetch", json!({"url": upstream.url("/hello")})).await;
    let started = Instant::now();
    let url = upstream.url("/slow?ms=500");
    let calls = (0..64).map(|_| server.call("h.fetch", json!({ "url": url })));
    let answers = join_all(calls).await;
    let elapsed = started.elapsed();
    for answer in &answers {
        assert_eq!(answer["result"]["body"], "slow", "{answer}");
    }
    println!("64 calls each waiting 500 ms upstream, on 32 call slots: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "64 waiting calls took {elapsed:?}");
}

#[tokio::test]
async fn a_grant_is_kept_with_its_version_and_a_rollback_restores_it() {
    let upstream = start_upstream().await;
    let server = Server::start(&[]);
    let (_, v1) = deploy_granting(&server, "h", &[&upstream.grant()]).await;
    assert_eq!(v1["version"], 1);
    // The same bytes without the grant are a new version, not "unchanged".
    let (status, v2) = deploy_granting(&server, "h", &[]).await;
    assert_eq!((status, v2["version"].as_u64()), (StatusCode::OK, Some(2)), "{v2}");
    assert_eq!(v2["allowed_outbound"], json!([]));
    let error = server.error("h.fetch", json!({"url": upstream.url("/hello")})).await;
    assert_eq!(wasi_error(&error), "HTTP-request-denied");
    // And the same bytes with the same grant again change nothing.
    let (status, same) = deploy_granting(&server, "h", &[]).await;
    assert_eq!((status, same["version"].as_u64()), (StatusCode::OK, Some(2)));

    let answer = server.request(Method::POST, "/procedures/h/versions/1/activate", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json().unwrap()["allowed_outbound"], json!([upstream.grant()]));
    let got = server.result("h.fetch", json!({"url": upstream.url("/hello")})).await;
    assert_eq!(got["status"], 200);
    let versions = server.request(Method::GET, "/procedures/h/versions", &[], Vec::new()).await.json().unwrap();
    assert_eq!(versions[1]["allowed_outbound"], json!([upstream.grant()]), "{versions}");

    // The grant survives a restart (the data dir's version record).
    let server = server.restart();
    let got = server.result("h.fetch", json!({"url": upstream.url("/hello")})).await;
    assert_eq!(got["status"], 200);
}

/// `serve --watch DIR`: `DIR/h.toml` grants `DIR/h.wasm` its upstream, and
/// an edit of the sidecar alone redeploys it with the new grant.
#[tokio::test]
async fn a_watched_modules_sidecar_sets_it_up_and_an_edit_redeploys() {
    let _timing = timing().await;
    let upstream = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = dir.path().join("h.toml");
    std::fs::write(&sidecar, format!("allow-outbound = [\"{}\"]\n", upstream.grant())).unwrap();
    std::fs::write(dir.path().join("h.wasm"), crate::support::wasm("test_http_client")).unwrap();
    let server = Server::start(&["--watch", dir.path().to_str().unwrap()]);
    let hello = json!({"url": upstream.url("/hello")});
    server
        .eventually(Duration::from_secs(20), "h deployed with its grant", || async {
            server.call("h.fetch", hello.clone()).await["result"]["status"] == json!(200)
        })
        .await;
    let meta = server.request(Method::GET, "/procedures/h", &[], Vec::new()).await.json().unwrap();
    assert_eq!((meta["version"].as_u64(), &meta["allowed_outbound"]), (Some(1), &json!([upstream.grant()])));

    // The grant removed (and reuse chosen): a new version, and the next call is refused.
    std::fs::write(&sidecar, "allow-outbound = []\nreuse = 20\nreuse-idle-ms = 900\n").unwrap();
    server
        .eventually(Duration::from_secs(20), "h redeployed without the grant", || async {
            let meta = server.request(Method::GET, "/procedures/h", &[], Vec::new()).await.json().unwrap();
            meta["version"] == json!(2)
        })
        .await;
    let meta = server.request(Method::GET, "/procedures/h", &[], Vec::new()).await.json().unwrap();
    assert_eq!(meta["allowed_outbound"], json!([]), "{meta}");
    assert_eq!(meta["reuse"], json!({"calls": 20, "idle_ms": 900, "memory_mib": null}), "{meta}");
    let before = upstream.requests.load(Ordering::SeqCst);
    let error = server.error("h.fetch", hello.clone()).await;
    assert_eq!(wasi_error(&error), "HTTP-request-denied", "{error}");
    assert_eq!(upstream.requests.load(Ordering::SeqCst), before, "the refused request was not sent");

    // A sidecar that does not parse is logged; the version serving stays.
    std::fs::write(&sidecar, "allow-outbound = \"not a list\"\n").unwrap();
    let seen = server.wait_for_log(0, &["is not a valid sidecar"], Duration::from_secs(20)).await;
    // So is a reuse setting out of range.
    std::fs::write(&sidecar, "reuse = 0\n").unwrap();
    server.wait_for_log(seen, &["h.toml: invalid reuse=0"], Duration::from_secs(20)).await;
    let meta = server.request(Method::GET, "/procedures/h", &[], Vec::new()).await.json().unwrap();
    assert_eq!(meta["version"], 2, "{meta}");
}
