//! Section 7 of the JSON-RPC 2.0 specification, example by example, against
//! the real procedures in `procedures/jsonrpc-spec/`. Responses are compared
//! as JSON values and, for the host's own errors, byte for byte.

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::Server;

const SPEC_MODULES: [&str; 6] = ["subtract", "sum", "get_data", "update", "notify_hello", "notify_sum"];

async fn spec_server() -> Server {
    let server = Server::start(&[]);
    for name in SPEC_MODULES {
        server.deploy_ok(name, name).await;
    }
    server
}

/// Posts `request` and checks the answer equals `expected` (None: HTTP 204).
async fn exchange(server: &Server, request: &str, expected: Option<&str>) {
    let answer = server.post(request).await;
    match expected {
        None => {
            assert_eq!(answer.status, StatusCode::NO_CONTENT, "{request} -> {}", answer.text());
            assert!(answer.body.is_empty());
        }
        Some(expected) => {
            assert_eq!(answer.status, StatusCode::OK, "{request} -> {}", answer.text());
            let got: Value = answer.json().unwrap();
            let want: Value = serde_json::from_str(expected).unwrap();
            assert_eq!(got, want, "request: {request}");
        }
    }
}

#[tokio::test]
async fn specification_examples() {
    let server = spec_server().await;
    // rpc call with positional parameters
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 1}"#),
    )
    .await;
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
        Some(r#"{"jsonrpc": "2.0", "result": -19, "id": 2}"#),
    )
    .await;
    // rpc call with named parameters
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 3}"#),
    )
    .await;
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 4}"#),
    )
    .await;
    // a notification
    exchange(&server, r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#, None).await;
    exchange(&server, r#"{"jsonrpc": "2.0", "method": "foobar"}"#, None).await;
    // rpc call of non-existent method
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}"#),
    )
    .await;
    // rpc call with invalid JSON
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#),
    )
    .await;
    // rpc call with invalid Request object
    exchange(
        &server,
        r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#),
    )
    .await;
    // rpc call Batch, invalid JSON
    exchange(
        &server,
        r#"[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]"#,
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#),
    )
    .await;
    // rpc call with an empty Array
    exchange(
        &server,
        "[]",
        Some(r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#),
    )
    .await;
    // rpc call with an invalid Batch (but not empty)
    exchange(
        &server,
        "[1]",
        Some(r#"[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]"#),
    )
    .await;
    // rpc call with invalid Batch
    exchange(
        &server,
        "[1,2,3]",
        Some(
            r#"[
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
]"#,
        ),
    )
    .await;
    // rpc call Batch
    exchange(
        &server,
        r#"[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]"#,
        Some(
            r#"[
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    ]"#,
        ),
    )
    .await;
    // rpc call Batch (all notifications)
    exchange(
        &server,
        r#"[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]"#,
        None,
    )
    .await;
}

#[tokio::test]
async fn host_errors_are_byte_exact() {
    let server = Server::start(&[]);
    let cases = [
        ("{", r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#),
        ("[]", r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#),
        (
            r#"{"jsonrpc":"2.0","method":"nope.x","id":7}"#,
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":7}"#,
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(server.post(request).await.text(), expected, "{request}");
    }
}

#[tokio::test]
async fn ids_of_every_type_are_echoed_exactly() {
    let server = spec_server().await;
    for id in [
        "1",
        "-7",
        "0",
        "\"abc\"",
        "\"\"",
        "\"\\u00e9\\n\"",
        "12345678901234567890123",
        "1.5",
        "2.50",
        "1e3",
        "null",
        "1e400",
        "-1e400",
    ] {
        let request = format!(r#"{{"jsonrpc":"2.0","method":"subtract","params":[3,1],"id":{id}}}"#);
        let text = server.post(&request).await.text();
        assert_eq!(text, format!(r#"{{"jsonrpc":"2.0","result":2,"id":{id}}}"#));
    }
    // Ids that are not a string, number or null make the request invalid.
    for id in ["true", "{}", "[1]"] {
        let request = format!(r#"{{"jsonrpc":"2.0","method":"subtract","params":[3,1],"id":{id}}}"#);
        let text = server.post(&request).await.text();
        assert_eq!(text, r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#, "{id}");
    }
}

/// A notification is run, though nothing is answered: the procedure's
/// call count rises by one (alone and in a batch of notifications).
#[tokio::test]
async fn notifications_run_though_nothing_is_answered() {
    let server = spec_server().await;
    let calls = || server.metric("wasmrpc_calls_total{procedure=\"update\"}");
    let before = calls().await.unwrap_or(0.0);
    exchange(&server, r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#, None).await;
    assert_eq!(calls().await, Some(before + 1.0));
    let two = r#"[{"jsonrpc": "2.0", "method": "update", "params": [1]}, {"jsonrpc": "2.0", "method": "update", "params": [2]}]"#;
    exchange(&server, two, None).await;
    assert_eq!(calls().await, Some(before + 3.0));
}

/// A method name is split at its first dot: `hostile.scale.point` is method
/// `scale.point` of module `hostile`; `rpc.` names other than
/// `rpc.discover` do not exist.
#[tokio::test]
async fn method_names_split_at_the_first_dot() {
    let server = Server::start(&[]);
    server.deploy_ok("hostile", "test_hostile").await;
    assert_eq!(server.result("hostile.scale.point", json!([1.5, 4])).await, json!(6.0));
    assert_eq!(server.result("hostile.scale.point", json!({"x": 2, "factor": 3})).await, json!(6.0));
    assert_eq!(server.error("hostile.scale", json!([1, 2])).await["code"], -32601);
    assert_eq!(server.error("rpc.nope", json!([])).await["code"], -32601);
    assert_eq!(server.error("rpc.hostile.echo", json!([1])).await["code"], -32601);
    let discover = server.result("rpc.discover", Value::Null).await;
    let names: Vec<&str> = discover["methods"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"hostile.scale.point"), "{names:?}");
}

/// What curl sends by default (`-d` and `--data-binary` set
/// `Content-Type: application/x-www-form-urlencoded`) is accepted on a call
/// and on a deploy, as the README's examples do.
#[tokio::test]
async fn curls_default_content_type_is_accepted() {
    let server = Server::start(&[]);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let put = server.request(hyper::Method::PUT, "/procedures/math", &form, crate::support::wasm("math")).await;
    assert_eq!(put.status, hyper::StatusCode::CREATED, "{}", put.text());
    let body = r#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":1}"#;
    let call = server.request(hyper::Method::POST, "/rpc", &form, body).await;
    assert_eq!(call.text(), r#"{"jsonrpc":"2.0","result":3,"id":1}"#);
}

#[tokio::test]
async fn malformed_envelopes_are_invalid_requests() {
    let server = spec_server().await;
    let cases = [
        json!({"method": "subtract", "params": [1, 2], "id": 1}),
        json!({"jsonrpc": "1.0", "method": "subtract", "params": [1, 2], "id": 1}),
        json!({"jsonrpc": 2.0, "method": "subtract", "params": [1, 2], "id": 1}),
        json!({"jsonrpc": "2.0", "params": [1, 2], "id": 1}),
        json!({"jsonrpc": "2.0", "method": ["subtract"], "id": 1}),
        json!({"jsonrpc": "2.0", "method": "subtract", "params": 5, "id": 1}),
        json!({"jsonrpc": "2.0", "method": "subtract", "params": "x", "id": 1}),
        json!("just a string"),
        json!(42),
    ];
    for request in cases {
        let response = server.rpc(request.clone()).await;
        assert_eq!(response["error"]["code"], -32600, "{request} -> {response}");
        assert_eq!(response["error"]["message"], "Invalid Request");
    }
    // The id is echoed where it could be read.
    let response = server.rpc(json!({"jsonrpc": "1.0", "method": "subtract", "id": "k"})).await;
    assert_eq!(response["id"], "k");
    // A request is an object, not its members in order in an array; and
    // "2.0" is a JSON string however it is escaped.
    exchange(
        &server,
        r#"[["2.0", "subtract", [42, 23], 1]]"#,
        Some(r#"[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]"#),
    )
    .await;
    exchange(
        &server,
        r#"{"jsonrpc": "2\u002e0", "method": "subtract", "params": [42, 23], "id": 1}"#,
        Some(r#"{"jsonrpc": "2.0", "result": 19, "id": 1}"#),
    )
    .await;
}

/// A body that cannot be read as HTTP (a broken chunked encoding) is still
/// answered as JSON-RPC: a -32600 error object saying why, never the admin
/// API's `{"error": ...}` shape.
#[tokio::test]
async fn an_unreadable_body_gets_a_json_rpc_error() {
    use std::io::{Read as _, Write as _};
    let server = Server::start(&[]);
    let mut stream = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(stream, "POST /rpc HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert_eq!(body["error"]["message"], "Invalid Request", "{body}");
    assert!(body["error"]["data"].as_str().unwrap().starts_with("cannot read the request body"), "{body}");
    assert_eq!(body["id"], Value::Null);
}
