//! Procedures' configuration (`wasi:config/store`): variables and secrets
//! set through the admin API and the CLI, read by the SDK guest
//! `test_config_sdk`, a change seen by the next call without a redeploy,
//! kept across a restart in a file of mode 0600, bad keys and values
//! refused, a planted secret found nowhere but in the guest's own answer,
//! and a change on one replica seen by calls on another (PostgreSQL).

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cluster::Postgres;
use crate::support::{self, Endpoint, Server};

/// The secret the tests plant, searched for everywhere it must not be.
const SECRET: &str = "s3cr3t-7f1d9a2c-planted";

async fn put_config(endpoint: &Endpoint, name: &str, body: Value) -> (StatusCode, Value) {
    let answer =
        endpoint.request(Method::PUT, &format!("/procedures/{name}/config"), &[], body.to_string().into_bytes()).await;
    (answer.status, answer.json().unwrap_or(Value::Null))
}

async fn get_config(endpoint: &Endpoint, name: &str) -> Value {
    let answer = endpoint.request(Method::GET, &format!("/procedures/{name}/config"), &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_and_secrets_reach_the_guest_and_a_change_the_next_call() {
    let _timing = support::timing().await;
    let server = Server::start(&[]);
    // Set before the first deploy: configuration belongs to the name.
    let (status, shown) = put_config(
        &server,
        "cfg",
        json!({"variables": {"greeting": "hello", "db.host": "10.0.0.5"}, "secrets": {"api_key": SECRET}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, json!({"variables": {"db.host": "10.0.0.5", "greeting": "hello"}, "secrets": ["api_key"]}));
    server.deploy_ok("cfg", "test_config_sdk").await;
    assert_eq!(server.result("cfg.get", json!(["greeting"])).await, json!("hello"));
    assert_eq!(server.result("cfg.get", json!(["api_key"])).await, json!(SECRET));
    assert_eq!(server.result("cfg.get", json!(["nothing"])).await, Value::Null);
    assert_eq!(
        server.result("cfg.all", json!([])).await,
        json!({"api_key": SECRET, "db.host": "10.0.0.5", "greeting": "hello"})
    );

    // A merge: keys not in the body stay; null unsets; a key changes kind.
    let (status, shown) =
        put_config(&server, "cfg", json!({"variables": {"greeting": "hi", "db.host": null, "api_key": "public"}}))
            .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, json!({"variables": {"api_key": "public", "greeting": "hi"}, "secrets": []}));
    // The very next call sees it, with no redeploy.
    assert_eq!(server.result("cfg.all", json!([])).await, json!({"api_key": "public", "greeting": "hi"}));
    assert_eq!(get_config(&server, "cfg").await, shown);

    // A bad key from the guest is an error (-32011), not a quiet null.
    let error = server.error("cfg.get", json!(["Not Valid"])).await;
    assert_eq!(error["code"], -32011, "{error}");
    assert!(error["message"].as_str().unwrap().contains("a-z, 0-9"), "{error}");
    assert_eq!(error["data"]["kind"], "upstream");

    // DELETE unsets everything.
    let answer = server.request(Method::DELETE, "/procedures/cfg/config", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json().unwrap(), json!({"variables": {}, "secrets": []}));
    assert_eq!(server.result("cfg.all", json!([])).await, json!({}));
    // Another name's configuration is its own.
    put_config(&server, "other", json!({"variables": {"greeting": "other's"}})).await;
    assert_eq!(server.result("cfg.get", json!(["greeting"])).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_unsets_and_lists_without_showing_secrets() {
    let _timing = support::timing().await;
    let server = Server::start(&["--admin-token", "tok"]);
    let auth = [("authorization", "Bearer tok")];
    let deployed =
        server.request(Method::PUT, "/procedures/cfg", &auth, wasmrpc_testkit::wasm("test_config_sdk")).await;
    assert_eq!(deployed.status, StatusCode::CREATED, "{}", deployed.text());
    let cli = |args: &[&str]| {
        let mut all = vec!["config", "cfg"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &server.url, "--admin-token", "tok"]);
        support::wasmrpc(&all)
    };
    let (ok, out, err) = cli(&["set", "greeting", "hello world"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("set variable greeting of cfg"), "{out}");
    let (ok, out, err) = cli(&["set", "api_key", SECRET, "--secret"]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains(SECRET), "{out}");
    let (ok, out, err) = cli(&["list"]);
    assert!(ok, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("greeting") && l.contains("variable") && l.ends_with("hello world")));
    assert!(out.lines().any(|l| l.starts_with("api_key") && l.contains("secret") && l.ends_with("(hidden)")));
    assert!(!out.contains(SECRET), "{out}");
    assert_eq!(server.result("cfg.length", json!(["api_key"])).await, json!(SECRET.len()));

    let (ok, out, err) = cli(&["unset", "greeting"]);
    assert!(ok && out.contains("unset greeting"), "{out}{err}");
    assert_eq!(server.result("cfg.get", json!(["greeting"])).await, Value::Null);
    let (ok, out, _) = cli(&["list"]);
    assert!(ok && !out.contains("greeting"), "{out}");

    // Refusals come back with the server's message and a failing status.
    let (ok, _, err) = cli(&["set", "Bad Key", "x"]);
    assert!(!ok && err.contains("invalid configuration key \"Bad Key\""), "{err}");
    let (ok, _, err) = support::wasmrpc(&["config", "cfg", "list", "--server", &server.url]);
    assert!(!ok && err.contains("401"), "{err}");
    // Without a token, the API refuses too.
    let answer = server.request(Method::GET, "/procedures/cfg/config", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_survives_a_restart_in_a_file_only_the_server_can_read() {
    let _timing = support::timing().await;
    let server = Server::start(&[]);
    server.deploy_ok("cfg", "test_config_sdk").await;
    put_config(&server, "cfg", json!({"variables": {"greeting": "hello"}, "secrets": {"api_key": SECRET}})).await;
    let dir = server.data_dir.join("config");
    let file = dir.join("cfg.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    // Rewritten atomically: still 0600, and no temporary file left behind.
    put_config(&server, "cfg", json!({"secrets": {"other": "x"}})).await;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["cfg.json"]);

    let server = server.restart();
    assert_eq!(server.result("cfg.get", json!(["greeting"])).await, json!("hello"));
    assert_eq!(server.result("cfg.length", json!(["api_key"])).await, json!(SECRET.len()));
    assert_eq!(
        get_config(&server, "cfg").await,
        json!({"variables": {"greeting": "hello"}, "secrets": ["api_key", "other"]})
    );
    // Unsetting the last key removes the file.
    server.request(Method::DELETE, "/procedures/cfg/config", &[], Vec::new()).await;
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_and_values_are_refused_with_clear_messages() {
    let _timing = support::timing().await;
    let server = Server::start(&[]);
    let big = "x".repeat((64 << 10) + 1);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"variables": {"Greeting": "x"}}), "invalid configuration key \"Greeting\": use 1 to 128 characters"),
        (json!({"variables": {"": "x"}}), "invalid configuration key \"\""),
        (json!({"variables": {"k".repeat(129): "x"}}), "use 1 to 128 characters of a-z, 0-9, `_`, `.` and `-`"),
        (json!({"secrets": {"api_key": big}}), "the value of \"api_key\" is 65537 bytes: values are at most 65536"),
        (json!({"secrets": {"api_key": 12}}), "the value of \"api_key\" in `secrets` is not a string"),
        (json!({"secrets": {"a": SECRET}, "variables": {"a": SECRET}}), "is both in `variables` and in `secrets`"),
        (json!({"secret": {"a": SECRET}}), "unknown field \"secret\""),
        (json!([SECRET]), "the body must be a JSON object"),
    ];
    for (body, expected) in cases {
        let (status, answer) = put_config(&server, "cfg", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{message} should contain {expected}");
        assert!(!message.contains(SECRET), "{message}");
    }
    let answer =
        server.request(Method::PUT, "/procedures/cfg/config", &[], format!("{{\"secrets\": {{\"a\": \"{SECRET}")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text().contains("the body is not JSON") && !answer.text().contains(SECRET), "{}", answer.text());
    // 1 MiB in all: sixteen values of 64 KiB (and their keys) are past it,
    // and the whole PUT is refused.
    let value = "x".repeat(64 << 10);
    let many: serde_json::Map<String, Value> = (0..16).map(|i| (format!("k{i}"), json!(value))).collect();
    let (status, answer) = put_config(&server, "cfg", json!({"variables": many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("past the limit of 1048576 bytes (1 MiB)"), "{answer}");
    assert_eq!(get_config(&server, "cfg").await, json!({"variables": {}, "secrets": []}));
    // A bad procedure name, a wrong method.
    let (status, answer) = put_config(&server, "Bad", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("invalid procedure name"), "{answer}");
    let answer = server.request(Method::POST, "/procedures/cfg/config", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_secret_shows_nowhere_but_in_the_guests_own_answer() {
    let _timing = support::timing().await;
    let server = Server::start(&[]);
    server.deploy_ok("cfg", "test_config_sdk").await;
    let (status, _) =
        put_config(&server, "cfg", json!({"variables": {"greeting": "hi"}, "secrets": {"api_key": SECRET}})).await;
    assert_eq!(status, StatusCode::OK);
    // The guest reads it (the one place it may be), and uses it.
    assert_eq!(server.result("cfg.length", json!(["api_key"])).await, json!(SECRET.len()));
    server.result("cfg.get", json!(["api_key"])).await;
    server.result("cfg.all", json!([])).await;
    // Refusals that involve it.
    put_config(&server, "cfg", json!({"secrets": {"api_key": SECRET, "BAD": SECRET}})).await;
    put_config(&server, "cfg", json!({"secrets": {"x": 1}, "variables": {"x": SECRET}})).await;
    server.error("cfg.get", json!(["BAD KEY"])).await;
    // Every answer an operator or a client sees, after a redeploy.
    server.deploy_ok("cfg", "test_config_sdk").await;
    let mut seen = Vec::new();
    for path in [
        "/procedures",
        "/procedures/cfg",
        "/procedures/cfg/versions",
        "/procedures/cfg/config",
        "/procedures/cfg/kv",
        "/metrics",
        "/",
        "/healthz",
    ] {
        let answer = server.request(Method::GET, path, &[], Vec::new()).await;
        seen.push(format!("GET {path}: {}", answer.text()));
    }
    seen.push(server.rpc(json!({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"})).await.to_string());
    let (ok, out, err) = support::wasmrpc(&["config", "cfg", "list", "--server", &server.url]);
    assert!(ok, "{err}");
    seen.push(out + &err);
    for answer in &seen {
        assert!(!answer.contains(SECRET), "the secret is in {answer}");
    }
    let log = server.log();
    assert!(log.contains("configuration changed"), "{log}");
    assert!(!log.contains(SECRET), "the secret is in the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_on_one_replica_reaches_calls_on_the_others_through_postgresql() {
    let _machine = support::heavy().await;
    let pg = Postgres::start();
    let url = pg.url();
    let replicas: Vec<Server> = (0..3).map(|_| Server::start(&["--registry", &url])).collect();
    replicas[0].deploy_ok("cfg", "test_config_sdk").await;
    for replica in &replicas {
        replica
            .eventually(Duration::from_secs(20), "cfg deployed", || async {
                replica.call("cfg.get", json!(["greeting"])).await.get("result").is_some()
            })
            .await;
        // Cached now, as null: the change must replace what it cached.
        assert_eq!(replica.result("cfg.get", json!(["greeting"])).await, Value::Null);
    }
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        let greeting = format!("hello {round}");
        let writer = &replicas[round % 3];
        let (status, shown) =
            put_config(writer, "cfg", json!({"variables": {"greeting": greeting}, "secrets": {"api_key": SECRET}}))
                .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        let answered = Instant::now();
        // The replica that answered: at once.
        assert_eq!(writer.result("cfg.get", json!(["greeting"])).await, json!(greeting));
        for replica in &replicas {
            loop {
                if replica.result("cfg.get", json!(["greeting"])).await == json!(greeting) {
                    break;
                }
                assert!(answered.elapsed() < Duration::from_secs(5), "replica {} never saw {greeting}", replica.url);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        worst = worst.max(answered.elapsed());
    }
    println!("a configuration change reached every replica's calls within {worst:?} (worst of 5)");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    // Every replica shows the same, survives a restart of one, and logs no secret.
    let restarted = replicas.into_iter().next().unwrap().restart();
    assert_eq!(restarted.result("cfg.length", json!(["api_key"])).await, json!(SECRET.len()));
    assert_eq!(
        get_config(&restarted, "cfg").await,
        json!({"variables": {"greeting": "hello 4"}, "secrets": ["api_key"]})
    );
    assert!(!restarted.log().contains(SECRET));
}

/// A guest built against Spin's `wasi:config@0.2.0-draft-2024-09-27` with
/// plain wit-bindgen (`test_config_draft`) reads variables and secrets as
/// the SDK's `@0.2.0-rc.1` does, and a bad key is an `upstream` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_built_for_spins_draft_reads_variables_and_secrets() {
    let _timing = support::timing().await;
    let server = Server::start(&[]);
    server.deploy_ok("spin", "test_config_draft").await;
    assert_eq!(server.result("spin.all", json!([])).await, json!({}));
    let (status, _) =
        put_config(&server, "spin", json!({"variables": {"greeting": "hello"}, "secrets": {"api_key": SECRET}})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.result("spin.get", json!(["greeting"])).await, json!("hello"));
    assert_eq!(server.result("spin.get", json!({"key": "api_key"})).await, json!(SECRET));
    assert_eq!(server.result("spin.get", json!(["nothing"])).await, Value::Null);
    assert_eq!(server.result("spin.all", json!([])).await, json!({"api_key": SECRET, "greeting": "hello"}));
    let error = server.error("spin.get", json!(["Not Valid"])).await;
    assert_eq!(error["code"], -32011, "{error}");
    assert!(error["message"].as_str().unwrap().starts_with("upstream: "), "{error}");
    // The change reaches the next call here too.
    put_config(&server, "spin", json!({"variables": {"greeting": null}})).await;
    assert_eq!(server.result("spin.all", json!([])).await, json!({"api_key": SECRET}));
    assert!(!server.log().contains(SECRET));
}
