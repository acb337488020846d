//! Caller keys and rate limits (`host/src/keys/`), on real servers: the
//! `/keys` admin API and where keys are kept (hashed, never in clear),
//! `--require-call-key` (401), what a key may call (an uncovered procedure
//! is -32601 to the byte, `rpc.discover` lists only what it covers),
//! `--rate-limit` per address and a key's own rate (429 with `Retry-After`,
//! -32005 for the calls of a batch past the limit), keys in PostgreSQL
//! reaching a second replica, and the `wasmrpc keys` command line.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use wasmrpc_client::http::Answer;

use crate::cluster::Postgres;
use crate::support::{self, wasmrpc, Endpoint, Server};

const TOKEN: &str = "adm1n";

/// An admin request with the admin token.
async fn admin(server: &Endpoint, method: Method, path: &str, body: Value) -> Answer {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    server.request(method, path, &[("authorization", &format!("Bearer {TOKEN}"))], body).await
}

/// Deploys procedure `file` as `name` with the admin token.
async fn deploy(server: &Endpoint, name: &str, file: &str) {
    let auth = format!("Bearer {TOKEN}");
    let answer = server
        .request(Method::PUT, &format!("/procedures/{name}"), &[("authorization", &auth)], support::wasm(file))
        .await;
    assert!(answer.status.is_success(), "{}", answer.text());
}

/// Creates a key and returns it.
async fn create(server: &Endpoint, body: Value) -> String {
    let answer = admin(server, Method::POST, "/keys", body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    answer.json().unwrap()["key"].as_str().unwrap().to_owned()
}

/// POSTs `body` to /rpc with `key` (if any) as the bearer.
async fn rpc_with(server: &Endpoint, key: Option<&str>, body: &Value) -> Answer {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<_> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    server.post_with(&headers, &body.to_string()).await
}

fn add(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "method": "math.add", "params": [id, 1], "id": id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_removed_and_kept_only_hashed() {
    let server = Server::start(&["--admin-token", TOKEN]);
    deploy(&server, "math", "math").await;

    let answer = admin(&server, Method::POST, "/keys", json!({"name": "billing", "procedures": ["math"]})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let created = answer.json().unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wrpc_") && key.len() >= 5 + 22, "{key}");
    assert_eq!(created["procedures"], json!(["math"]));
    assert_eq!(created["rate"], Value::Null);
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    // Admin auth: no token, no keys.
    let answer = server.request(Method::GET, "/keys", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // A taken name, a bad name, a bad glob, a bad rate.
    let refused = [
        (json!({"name": "billing", "procedures": ["*"]}), StatusCode::CONFLICT, "exists"),
        (json!({"name": "Bad Name", "procedures": ["*"]}), StatusCode::BAD_REQUEST, "invalid key name"),
        (json!({"name": "b", "procedures": ["math.add"]}), StatusCode::BAD_REQUEST, "invalid procedure glob"),
        (json!({"name": "b", "procedures": ["*"], "rate": {"per_second": 0}}), StatusCode::BAD_REQUEST, "bad `rate`"),
    ];
    for (body, status, message) in refused {
        let answer = admin(&server, Method::POST, "/keys", body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text());
        assert!(answer.json().unwrap()["error"].as_str().unwrap().contains(message), "{}", answer.text());
    }

    // Listed without the key.
    let listed = admin(&server, Method::GET, "/keys", Value::Null).await.json().unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "billing");
    assert!(listed[0].get("key").is_none(), "{listed}");
    assert!(!listed.to_string().contains(&key));

    // The key works; nothing in the data dir holds it in clear, its hash is kept.
    let answer = rpc_with(&server, Some(&key), &add(1)).await;
    assert_eq!(answer.json().unwrap()["result"], 2, "{}", answer.text());
    let hash = support::sha256_hex(key.as_bytes());
    let mut hashed = false;
    for file in support::walk(&server.data_dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "{} holds the key", file.display());
        hashed |= bytes.windows(hash.len()).any(|w| w == hash.as_bytes());
    }
    assert!(hashed, "no file holds the key's hash");

    // Kept across a restart.
    let server = server.restart();
    let answer = rpc_with(&server, Some(&key), &add(2)).await;
    assert_eq!(answer.json().unwrap()["result"], 3, "{}", answer.text());

    // Removed: the key is refused, a second removal is 404.
    let answer = admin(&server, Method::DELETE, "/keys/billing", Value::Null).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    let answer = rpc_with(&server, Some(&key), &add(3)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
    let answer = admin(&server, Method::DELETE, "/keys/billing", Value::Null).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Without --require-call-key a call without a key still runs.
    let answer = rpc_with(&server, None, &add(4)).await;
    assert_eq!(answer.json().unwrap()["result"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_call_key_a_key_calls_only_what_it_covers() {
    let server = Server::start(&["--admin-token", TOKEN, "--require-call-key"]);
    for name in ["math", "calc", "text"] {
        deploy(&server, name, name).await;
    }
    // No key, a wrong key, a malformed header: 401 with a JSON-RPC body.
    for (key, says) in [(None, "missing caller key"), (Some("wrpc_nope"), "wrong caller key")] {
        let answer = rpc_with(&server, key, &add(1)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
        let body = answer.json().unwrap();
        assert_eq!(body["error"]["code"], -32600, "{body}");
        assert!(body["error"]["data"].as_str().unwrap().contains(says), "{body}");
    }
    let answer = server.request(Method::POST, "/rpc", &[("authorization", "Basic eDp5")], add(1).to_string()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let refused = |reason: &str| format!("wasmrpc_refused_requests_total{{reason=\"{reason}\"}}");
    assert_eq!(server.metric(&refused("missing_key")).await, Some(1.0));
    assert_eq!(server.metric(&refused("wrong_key")).await, Some(2.0));
    // The admin token is a key to everything.
    let answer = rpc_with(&server, Some(TOKEN), &add(1)).await;
    assert_eq!(answer.json().unwrap()["result"], 2, "{}", answer.text());

    let key = create(&server, json!({"name": "m", "procedures": ["ma*", "calc"]})).await;
    assert_eq!(rpc_with(&server, Some(&key), &add(1)).await.json().unwrap()["result"], 2);
    let hypot = json!({"jsonrpc": "2.0", "method": "calc.hypot", "params": [3, 4], "id": 1});
    assert_eq!(rpc_with(&server, Some(&key), &hypot).await.json().unwrap()["result"], 5.0);
    // `text` exists but is not covered: the same bytes as a procedure that does not exist.
    let uncovered =
        rpc_with(&server, Some(&key), &json!({"jsonrpc": "2.0", "method": "text.reverse", "params": ["a"], "id": 7}))
            .await;
    let missing =
        rpc_with(&server, Some(&key), &json!({"jsonrpc": "2.0", "method": "nosuch.reverse", "params": ["a"], "id": 7}))
            .await;
    assert_eq!(uncovered.status, StatusCode::OK);
    assert_eq!(uncovered.text(), missing.text());
    assert_eq!(uncovered.text(), r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":7}"#);
    // The admin sees text's methods; the key's discovery lists only what it covers.
    let discover = json!({"jsonrpc": "2.0", "method": "rpc.discover", "id": 1});
    let names = |answer: Answer| -> Vec<String> {
        let doc = answer.json().unwrap();
        doc["result"]["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
    };
    let all = names(rpc_with(&server, Some(TOKEN), &discover).await);
    assert!(all.iter().any(|n| n.starts_with("text.")), "{all:?}");
    let covered = names(rpc_with(&server, Some(&key), &discover).await);
    assert!(covered.contains(&"math.add".to_owned()) && covered.contains(&"calc.hypot".to_owned()), "{covered:?}");
    assert!(covered.iter().all(|n| n.starts_with("math.") || n.starts_with("calc.")), "{covered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_rate_limit_calls_answer_32005_and_a_whole_request_429() {
    let server = Server::start(&["--admin-token", TOKEN, "--rate-limit", "1/3"]);
    deploy(&server, "math", "math").await;

    // Per address, without a key: a batch of 5 on a full bucket of 3.
    let batch: Vec<Value> = (1..=5).map(add).collect();
    let answer = rpc_with(&server, None, &json!(batch)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let answers = answer.json().unwrap();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 5);
    for (i, answer) in answers.iter().enumerate() {
        let id = answer["id"].as_u64().unwrap();
        assert_eq!(id, i as u64 + 1);
        if i < 3 {
            assert_eq!(answer["result"], id + 1, "{answer}");
        } else {
            let error = &answer["error"];
            assert_eq!((error["code"].as_i64(), error["message"].as_str()), (Some(-32005), Some("Limit exceeded")));
            assert_eq!(error["data"]["limit"], "1 call per second, burst 3", "{error}");
            assert_eq!(error["data"]["per"], "address");
            assert!(error["data"]["retry_after_ms"].as_u64().unwrap() <= 1000, "{error}");
        }
    }
    // A request none of whose calls fit: 429 with Retry-After (the bucket
    // gains a token a second, so a few tries are enough whatever the pace).
    let mut refused = None;
    for i in 0..10 {
        let answer = rpc_with(&server, None, &add(100 + i)).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("no request was refused with 429");
    assert_eq!(refused.headers["retry-after"], "1");
    let body = refused.json().unwrap();
    assert_eq!(body["error"]["code"], -32005, "{body}");
    assert!(body["id"].as_u64().unwrap() >= 100);

    // A key with its own rate has its own bucket, not the address's.
    let key = create(&server, json!({"name": "k", "procedures": ["*"], "rate": {"per_second": 1, "burst": 2}})).await;
    let answer = rpc_with(&server, Some(&key), &json!([add(1), add(2), add(3)])).await;
    let answers = answer.json().unwrap();
    assert_eq!(answers[0]["result"], 2, "{answers}");
    assert_eq!(answers[1]["result"], 3, "{answers}");
    assert_eq!(answers[2]["error"]["code"], -32005, "{answers}");
    assert_eq!(answers[2]["error"]["data"]["per"], "key");
    assert_eq!(answers[2]["error"]["data"]["limit"], "1 call per second, burst 2");

    // Counted by bucket: the batch's 2 and the refused request's 1, the key's 1.
    let series = |per: &str| format!("wasmrpc_rate_limited_calls_total{{per=\"{per}\"}}");
    assert_eq!(server.metric(&series("address")).await, Some(3.0));
    assert_eq!(server.metric(&series("key")).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_made_on_one_replica_is_honoured_and_removed_on_another() {
    let _machine = support::heavy().await;
    let pg = Postgres::start();
    let url = pg.url();
    let args = ["--registry", &url, "--admin-token", TOKEN, "--require-call-key"];
    let (a, b) = (Server::start(&args), Server::start(&args));
    deploy(&a, "math", "math").await;
    let key = create(&a, json!({"name": "shared", "procedures": ["math"]})).await;
    b.eventually(Duration::from_secs(20), "the key and math on the second replica", || async {
        rpc_with(&b, Some(&key), &add(1)).await.json().ok().is_some_and(|v| v["result"] == 2)
    })
    .await;
    let listed = admin(&b, Method::GET, "/keys", Value::Null).await.json().unwrap();
    assert_eq!(listed[0]["name"], "shared", "{listed}");
    // A taken name is taken on every replica.
    let answer = admin(&b, Method::POST, "/keys", json!({"name": "shared", "procedures": ["*"]})).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());

    let answer = admin(&b, Method::DELETE, "/keys/shared", Value::Null).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    a.eventually(Duration::from_secs(20), "the key refused on the first replica", || async {
        rpc_with(&a, Some(&key), &add(1)).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_creates_lists_and_removes_keys() {
    let server = Server::start(&["--admin-token", TOKEN]);
    deploy(&server, "math", "math").await;
    let url = server.url.clone();
    let run = move |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &url, "--admin-token", TOKEN]);
        wasmrpc(&all)
    };
    let (ok, key, err) =
        run(&["keys", "create", "cli", "--procedure", "math", "--procedure", "calc*", "--rate", "5/10"]);
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("wrpc_") && !key.contains(char::is_whitespace), "{key}");
    assert!(err.contains("math, calc*") && err.contains("5/s, burst 10"), "{err}");
    let answer = rpc_with(&server, Some(&key), &add(1)).await;
    assert_eq!(answer.json().unwrap()["result"], 2, "{}", answer.text());

    let (ok, out, err) = run(&["keys", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("cli") && out.contains(&key[..11]) && out.contains("math, calc*"), "{out}");
    assert!(!out.contains(&key), "{out}");

    let (ok, _, err) = run(&["keys", "create", "cli", "--procedure", "*"]);
    assert!(!ok && err.contains("409") && err.contains("exists"), "{err}");
    let (ok, _, err) = run(&["keys", "create", "x", "--procedure", "*", "--rate", "fast"]);
    assert!(!ok && err.contains("RATE/BURST"), "{err}");

    let (ok, out, err) = run(&["keys", "remove", "cli"]);
    assert!(ok && out.contains("removed caller key cli"), "{out}{err}");
    let (ok, out, _) = run(&["keys", "list"]);
    assert!(ok && out.contains("no caller keys"), "{out}");
    let (ok, _, err) = run(&["keys", "remove", "cli"]);
    assert!(!ok && err.contains("404"), "{err}");

    let (ok, out, _) = wasmrpc(&["keys", "create", "--help"]);
    assert!(ok && out.contains("--procedure <GLOB>") && out.contains("--rate <RATE[/BURST]>"), "{out}");
}
