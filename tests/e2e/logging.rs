//! Structured logs: with `--log-format json` every line the server writes to
//! stderr is a JSON object, and each call is one line (target
//! `wasmrpc::call`, shown with `RUST_LOG=wasmrpc::call=debug`) carrying its
//! request id, method, duration and outcome.

use serde_json::{json, Value};

use crate::support::Server;

#[tokio::test]
async fn json_logs_have_one_line_per_call_with_id_method_duration_and_outcome() {
    let server = Server::start(&["--log-format", "json"]);
    server.deploy_ok("math", "math").await;
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
    let error = server.error("math.divide", json!([1, 0])).await;

    // The line is written before the answer is sent: it is in the log now.
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}")))
        .collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "ready"), "{log}");
    let calls: Vec<&Value> = lines.iter().filter(|l| l["target"] == "wasmrpc::call").map(|l| &l["fields"]).collect();
    assert_eq!(calls.len(), 2, "one line per call:\n{log}");
    let (good, bad) = (calls[0], calls[1]);

    assert_eq!(good["method"], "math.add", "{good}");
    assert_eq!(good["outcome"], "ok", "{good}");
    assert!(good.get("code").is_none(), "{good}");
    assert_eq!(bad["method"], "math.divide", "{bad}");
    assert_eq!(bad["outcome"], "error", "{bad}");
    assert_eq!(bad["code"], error["code"], "{bad}");
    assert_eq!(bad["message"], error["message"], "{bad}");
    for call in [good, bad] {
        assert!(call["duration_us"].as_u64().is_some_and(|us| us > 0), "{call}");
        assert!(call["request_id"].as_u64().is_some(), "{call}");
    }
    assert_ne!(good["request_id"], bad["request_id"]);
}
