//! Versions and rollback: the kept history (`--keep-versions`), activating a
//! kept version over HTTP and with the CLI, auth, the refusals, and a history
//! that survives a restart.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{sha256_hex, wasm, wasmrpc, Server};

async fn versions(server: &Server, name: &str) -> Vec<Value> {
    let answer = server.request(Method::GET, &format!("/procedures/{name}/versions"), &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json().unwrap().as_array().unwrap().clone()
}

/// (version, serving) of each kept version, newest first.
fn summary(kept: &[Value]) -> Vec<(u64, bool)> {
    kept.iter().map(|v| (v["version"].as_u64().unwrap(), v["serving"].as_bool().unwrap())).collect()
}

async fn activate(server: &Server, name: &str, version: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let path = format!("/procedures/{name}/versions/{version}/activate");
    let answer = server.request(Method::POST, &path, headers, Vec::new()).await;
    (answer.status, answer.json().unwrap_or_else(|e| panic!("{e:#}: {}", answer.text())))
}

#[tokio::test]
async fn history_rollback_and_the_refusals() {
    let server = Server::start(&["--keep-versions", "3"]);
    // v1 math, v2 text, v3 math again (same bytes as v1, a new number), v4 json.
    for file in ["math", "text", "math", "json"] {
        server.deploy_ok("p", file).await;
    }
    let kept = versions(&server, "p").await;
    assert_eq!(summary(&kept), [(4, true), (3, false), (2, false)], "only the 3 newest are kept");
    assert_eq!(kept[1]["sha256"].as_str().unwrap(), sha256_hex(&wasm("math")));
    assert_eq!(kept[1]["name"], "p");
    assert!(kept[1]["methods"].as_array().unwrap().contains(&json!("p.add")), "{}", kept[1]);
    assert!(kept[0]["deployed_at"].as_str().unwrap().ends_with('Z'));

    // Roll back to text (v2): it serves under its own number.
    let (status, meta) = activate(&server, "p", "2", &[]).await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!((meta["version"].as_u64(), meta["sha256"].as_str()), (Some(2), Some(&*sha256_hex(&wasm("text")))));
    assert_eq!(server.error("p.add", json!([1, 2])).await["code"], -32601);
    assert_eq!(server.request(Method::GET, "/procedures/p", &[], Vec::new()).await.json().unwrap()["version"], 2);
    assert_eq!(summary(&versions(&server, "p").await), [(4, false), (3, false), (2, true)]);
    // Activating the serving version again changes nothing.
    assert_eq!(activate(&server, "p", "2", &[]).await.0, StatusCode::OK);

    // The next deploy takes the next number: numbers never go to other code.
    let meta = server.deploy_ok("p", "math").await;
    assert_eq!(meta["version"], 5);
    assert_eq!(server.result("p.add", json!([1, 2])).await, json!(3));

    for (version, expected) in [("1", "no version 1"), ("99", "no version 99"), ("x", "not a version number")] {
        let (status, body) = activate(&server, "p", version, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{version}: {body}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{version}: {body}");
    }
    let (status, body) = activate(&server, "never", "1", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("was ever deployed"), "{body}");
    let missing = server.request(Method::GET, "/procedures/never/versions", &[], Vec::new()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let wrong_method = server.request(Method::GET, "/procedures/p/versions/2/activate", &[], Vec::new()).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "POST");
}

#[tokio::test]
async fn a_removed_procedure_comes_back_by_activation_and_history_survives_restarts() {
    let server = Server::start(&[]);
    server.deploy_ok("p", "math").await;
    server.deploy_ok("p", "text").await;
    let removed = server.request(Method::DELETE, "/procedures/p", &[], Vec::new()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(summary(&versions(&server, "p").await), [(2, false), (1, false)]);
    let (status, meta) = activate(&server, "p", "1", &[]).await;
    assert_eq!((status, meta["version"].as_u64()), (StatusCode::OK, Some(1)), "{meta}");
    assert_eq!(server.result("p.add", json!([2, 2])).await, json!(4));

    // SIGKILL and start again: the history, the serving version and the
    // counter are as they were, and the rolled-back code loads from the
    // compiled cache instead of compiling again.
    let from = server.log().len();
    let server = server.restart();
    assert_eq!(summary(&versions(&server, "p").await), [(2, false), (1, true)]);
    assert_eq!(server.result("p.add", json!([2, 3])).await, json!(5));
    let (status, _) = activate(&server, "p", "2", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let log = server.log()[from..].to_owned();
    assert!(!log.contains("compiling (no cached code)"), "kept versions keep their compiled code:\n{log}");
    assert_eq!(server.deploy_ok("p", "json").await["version"], 3);
}

#[tokio::test]
async fn activation_needs_the_admin_token_and_the_cli_rolls_back() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    let auth = [("authorization", "Bearer s3cret")];
    for file in ["math", "text"] {
        let answer = server.request(Method::PUT, "/procedures/p", &auth, wasm(file)).await;
        assert!(answer.status.is_success(), "{}", answer.text());
    }
    let (status, body) = activate(&server, "p", "1", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = activate(&server, "p", "1", &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Reading the history is not an admin action, like GET /procedures.
    assert_eq!(summary(&versions(&server, "p").await), [(2, true), (1, false)]);

    let url = server.url.clone();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--admin-token", "s3cret"]);
        wasmrpc(&all)
    };
    let (ok, out, err) = cli(&["versions", "p"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("p v2 ") && lines[0].ends_with("<- serving"), "{out}");
    assert!(lines[1].starts_with("p v1 ") && !lines[1].contains("serving"), "{out}");

    // Without a version: back to the one before the serving one.
    let (ok, out, err) = cli(&["rollback", "p"]);
    assert!(ok, "{err}");
    assert!(out.contains("p now serves version 1"), "{out}");
    assert_eq!(server.result("p.add", json!([1, 1])).await, json!(2));
    let (ok, _, err) = cli(&["rollback", "p"]);
    assert!(!ok);
    assert!(err.contains("no kept version older than version 1"), "{err}");
    let (ok, out, err) = cli(&["rollback", "p", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("p now serves version 2"), "{out}");
    let (ok, _, err) = cli(&["rollback", "p", "7"]);
    assert!(!ok);
    assert!(err.contains("404") && err.contains("no version 7"), "{err}");
}
