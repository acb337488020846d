//! The example `procedures/fetch`: configuration (`base-url`) and a secret
//! (`api-key`) set through the admin API, an upstream reached through the
//! deploy's `allow-outbound` grant, and every refusal answered with what
//! to do. The upstream is a loopback server started here that checks the
//! bearer key; the key is found nowhere but in the requests it received.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{timing, Server};
use crate::upstream::{deploy_with_grants, Reply, Upstream};

/// The API key the tests plant, searched for everywhere it must not be.
const KEY: &str = "k3y-5b8e1f0a-planted";

/// `/items?limit=N`: up to 4 items (`item I` priced 1.5 * I) for the right
/// bearer key, 401 for any other; `/broken/items`: 503.
async fn items_api() -> Upstream {
    Upstream::start(|request| {
        if request.path == "/broken/items" {
            return Reply::new("503 Service Unavailable", "down for maintenance");
        }
        if request.path != "/items" {
            return Reply::new("404 Not Found", "");
        }
        if request.header("authorization") != Some(&format!("Bearer {KEY}")) {
            return Reply::new("401 Unauthorized", r#"{"error": "bad key"}"#);
        }
        let limit = request.number("limit").unwrap_or(10).min(4);
        let items: Vec<Value> =
            (1..=limit).map(|i| json!({"title": format!("item {i}"), "price": 1.5 * i as f64})).collect();
        Reply::new("200 OK", json!({ "items": items }).to_string()).header("content-type", "application/json")
    })
    .await
}

async fn configure(server: &Server, name: &str, body: Value) -> Value {
    let answer =
        server.request(Method::PUT, &format!("/procedures/{name}/config"), &[], body.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_summarizes_the_configured_upstream_with_its_secret_key() {
    let _timing = timing().await;
    let api = items_api().await;
    let server = Server::start(&[]);
    let mut answers = Vec::new();
    let (status, meta) = deploy_with_grants(&server, "fetch", "fetch", &[&api.grant()]).await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");

    // Nothing configured: the error says which command sets what.
    let error = server.error("fetch.summary", json!({})).await;
    assert_eq!(error["code"], -32011, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("base-url is not configured") && message.contains("wasmrpc config"), "{message}");
    assert_eq!(error["data"], json!({"kind": "missing", "key": "base-url"}));
    configure(&server, "fetch", json!({"variables": {"base-url": api.url("/")}})).await;
    let error = server.error("fetch.summary", json!({})).await;
    assert_eq!(error["code"], -32011, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("api-key is not configured") && message.contains("--secret"), "{message}");
    assert_eq!(api.requests.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing was sent without the key");

    // Configured: the summary, the key sent as a bearer token.
    let shown = configure(&server, "fetch", json!({"secrets": {"api-key": KEY}})).await;
    assert_eq!(shown, json!({"variables": {"base-url": api.url("/")}, "secrets": ["api-key"]}));
    let summary = server.result("fetch.summary", json!({"limit": 3})).await;
    assert_eq!(summary, json!({"count": 3, "titles": ["item 1", "item 2", "item 3"], "total": 9.0}));
    let summary = server.result("fetch.summary", json!([])).await;
    assert_eq!(summary, json!({"count": 4, "titles": ["item 1", "item 2", "item 3"], "total": 15.0}));
    answers.push(summary.to_string());
    let sent = api.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!((sent.method.as_str(), sent.path.as_str(), sent.query.as_str()), ("GET", "/items", "limit=10"));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    let error = server.error("fetch.summary", json!({"limit": 0})).await;
    assert_eq!(error["code"], -32602, "{error}");

    // Answers other than 2xx: the status, and for 401 which secret to check.
    configure(&server, "fetch", json!({"secrets": {"api-key": "wrong"}})).await;
    let error = server.error("fetch.summary", json!({})).await;
    assert_eq!((error["code"].as_i64(), error["data"]["status"].as_u64()), (Some(21), Some(401)), "{error}");
    assert!(error["message"].as_str().unwrap().contains("check the secret api-key"), "{error}");
    answers.push(error.to_string());
    configure(&server, "fetch", json!({"variables": {"base-url": api.url("/broken")}, "secrets": {"api-key": KEY}}))
        .await;
    let error = server.error("fetch.summary", json!({})).await;
    assert_eq!(error["code"], 21, "{error}");
    assert_eq!(error["message"], format!("{} answered 503 Service Unavailable", api.grant()));
    answers.push(error.to_string());

    // Deployed under another name without a grant: refused, saying how to grant it.
    let (status, _) = deploy_with_grants(&server, "nogrant", "fetch", &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    configure(&server, "nogrant", json!({"variables": {"base-url": api.url("")}, "secrets": {"api-key": KEY}})).await;
    let before = api.requests.load(std::sync::atomic::Ordering::SeqCst);
    let error = server.error("nogrant.summary", json!({})).await;
    assert_eq!(error["code"], 20, "{error}");
    let wanted = format!("the server refused the request to {0}: deploy with `--allow-outbound {0}`", api.grant());
    assert_eq!(error["message"], wanted);
    answers.push(error.to_string());
    // A name that resolves to loopback is a private address, even granted.
    let by_name = format!("http://localhost:{}", api.port);
    deploy_with_grants(&server, "byname", "fetch", &[&by_name]).await;
    configure(&server, "byname", json!({"variables": {"base-url": by_name}, "secrets": {"api-key": KEY}})).await;
    let error = server.error("byname.summary", json!({})).await;
    assert_eq!(error["code"], 20, "{error}");
    assert!(error["message"].as_str().unwrap().contains("private address"), "{error}");
    answers.push(error.to_string());
    assert_eq!(api.requests.load(std::sync::atomic::Ordering::SeqCst), before, "neither request was sent");

    // The key is nowhere an operator or a client looks.
    for path in ["/procedures", "/procedures/fetch", "/procedures/fetch/config", "/metrics", "/"] {
        answers.push(server.request(Method::GET, path, &[], Vec::new()).await.text());
    }
    answers.push(server.rpc(json!({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"})).await.to_string());
    for answer in &answers {
        assert!(!answer.contains(KEY), "the key is in {answer}");
    }
    let log = server.log();
    assert!(!log.contains(KEY), "the key is in the log:\n{log}");
}
