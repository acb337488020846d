//! Clients in other languages against the real server: Python with the
//! published `jsonrpcclient` library, and Node with its built-in `fetch`
//! (scripts in `tests/clients/`). The Makefile installs the Python packages
//! into a virtualenv and points `WASMRPC_PYTHON` at it.

use std::path::Path;
use std::process::Command;

use crate::support::Server;

async fn clients_server() -> Server {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    server.deploy_ok("text", "text").await;
    server
}

/// Runs `program script url` and insists it succeeds.
async fn run_client(program: String, script: &str, url: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients").join(script);
    let url = url.to_owned();
    let shown = format!("{program} {}", script.display());
    let output = tokio::task::spawn_blocking(move || Command::new(&program).arg(&script).arg(&url).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e} (run `make test`, which installs the clients)"));
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
