//! Other languages against the real server: procedures written in Python
//! (componentize-py) and JavaScript (ComponentizeJS), and clients in Python with the published
//! `jsonrpcclient` library and in Node with its built-in `fetch` (scripts in
//! `tests/clients/`). The Makefile installs the Python packages into a
//! virtualenv and points `WASMRPC_PYTHON` at it.

use std::path::Path;
use std::time::Duration;

use crate::support::{clean_command, heavy, output_within, Server};

async fn clients_server() -> Server {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    server.deploy_ok("text", "text").await;
    server
}

/// How long a client script may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `program script url` (at most [`CLIENT_TIMEOUT`]) and insists it succeeds.
async fn run_client(program: String, script: &str, url: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients").join(script);
    let shown = format!("{program} {}", script.display());
    let mut command = clean_command(&program);
    command.arg(&script).arg(url);
    let output = tokio::task::spawn_blocking(move || output_within(command, CLIENT_TIMEOUT)).await.unwrap();
    assert!(
        output.status.success(),
        "{shown} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn python_client_with_jsonrpcclient() {
    let server = clients_server().await;
    let python = std::env::var("WASMRPC_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run_client(python, "client.py", &server.url).await;
}

#[tokio::test]
async fn node_client_with_fetch() {
    let server = clients_server().await;
    run_client("node".to_owned(), "client.mjs", &server.url).await;
}

/// A procedure written in Python (`procedures/python/stats`, built with
/// componentize-py) deploys by PUT like any other and answers calls.
#[tokio::test]
async fn a_python_procedure() {
    // Compiling a megabyte component loads both cores.
    let _heavy = heavy().await;
    use serde_json::json;
    let server = Server::start(&[]);
    server.deploy_ok("pystats", "pystats").await;
    assert_eq!(server.result("pystats.mean", json!([[1, 2, 3, 4]])).await, json!(2.5));
    assert_eq!(server.result("pystats.median", json!({"values": [5, 1, 3]})).await, json!(3));
    let summary = server.result("pystats.summary", json!([[1, 2, 3, 10]])).await;
    assert_eq!(summary["count"], 4);
    assert_eq!(server.error("pystats.mean", json!([[]])).await, json!({"code": 1, "message": "values is empty"}));
    assert_eq!(server.error("pystats.mean", json!(["x"])).await["code"], -32602);
    assert_eq!(server.error("pystats.nope", json!([])).await["code"], -32601);
    let discover = server.result("rpc.discover", serde_json::Value::Null).await;
    let names: Vec<&str> = discover["methods"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["pystats.mean", "pystats.median", "pystats.summary"]);
}

/// A Python procedure keeps state too: `pycounter` counts through
/// `wasi:keyvalue` (draft2), and its counts survive a restart.
#[tokio::test]
async fn a_python_procedure_with_key_value_state() {
    let _heavy = heavy().await;
    use serde_json::json;
    let server = Server::start(&[]);
    server.deploy_ok("pycounter", "pycounter").await;
    for n in 1..=3 {
        assert_eq!(server.result("pycounter.hit", json!(["docs"])).await, json!(n));
    }
    assert_eq!(server.result("pycounter.hit", json!([])).await, json!(1));
    let server = server.restart();
    assert_eq!(server.result("pycounter.visits", json!(["docs"])).await, json!(3));
    let kv = server.request(hyper::Method::GET, "/procedures/pycounter/kv/default/visits:docs", &[], Vec::new()).await;
    assert_eq!(kv.text(), "3", "a counter is decimal text");
}

/// A procedure written in JavaScript (`procedures/js/strings`, built with
/// ComponentizeJS) deploys by PUT like any other and answers calls.
#[tokio::test]
async fn a_javascript_procedure() {
    // Compiling a megabyte component loads both cores.
    let _heavy = heavy().await;
    use serde_json::json;
    let server = Server::start(&[]);
    server.deploy_ok("jsstrings", "jsstrings").await;
    assert_eq!(server.result("jsstrings.capitalize", json!(["hello big world"])).await, json!("Hello Big World"));
    assert_eq!(server.result("jsstrings.vowels", json!({"text": "education"})).await, json!(5));
    assert_eq!(server.result("jsstrings.camel", json!(["Hello big World"])).await, json!("helloBigWorld"));
    let error = server.error("jsstrings.camel", json!([5])).await;
    assert_eq!(error["code"], -32602, "{error}");
    assert_eq!(error["data"], json!({"parameter": "text"}));
}

/// `@open-rpc/test-coverage` (npm) calls every example method (Rust, Python
/// and JavaScript) with params generated from its schemas in `rpc.discover`
/// and checks every result against the result schema: all pass.
#[tokio::test]
async fn openrpc_test_coverage_passes_for_every_example() {
    // Compiling a megabyte component loads both cores.
    let _heavy = heavy().await;
    let server = Server::start(&[]);
    let examples = [
        "math",
        "text",
        "json",
        "subtract",
        "sum",
        "get_data",
        "update",
        "notify_hello",
        "notify_sum",
        "pystats",
        "jsstrings",
    ];
    for name in examples {
        server.deploy_ok(name, name).await;
    }
    run_client("node".to_owned(), "openrpc-coverage.cjs", &server.url).await;
}
