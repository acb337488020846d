//! JSON-RPC over WebSocket on `GET /rpc`: clients nobody here wrote (the
//! Python `websockets` package, jsonrpsee's WebSocket client) making calls,
//! batches and subscriptions, and the connection's limits seen from a raw
//! client: the in-flight cap, the idle timeout, pings, the message size
//! limit, a client that does not read, and shutdown.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::{Method, StatusCode};
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::{clean_command, output_within, wasm, wasm_path, Server};

/// How long one expected message may take to arrive.
const WAIT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<TcpStream>;

fn ws_url(server: &Server) -> String {
    format!("{}/rpc", server.url.replacen("http://", "ws://", 1))
}

/// A WebSocket client on `socket` (already connected to `server`).
async fn handshake(server: &Server, socket: TcpStream) -> Ws {
    let (ws, response) = tokio_tungstenite::client_async(ws_url(server), socket).await.expect("WebSocket handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

async fn open(server: &Server) -> Ws {
    let address = server.url.trim_start_matches("http://").to_owned();
    handshake(server, TcpStream::connect(address).await.unwrap()).await
}

async fn send(ws: &mut Ws, request: Value) {
    ws.send(Message::Text(request.to_string().into())).await.unwrap();
}

/// The next text message, as JSON (pings and pongs skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns it; text messages and
/// pings before it are skipped.
async fn close_frame(ws: &mut Ws) -> CloseFrame {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("the server did not close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return frame,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn call(method: &str, params: Value, id: u64) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id})
}

#[tokio::test]
async fn python_websockets_client() {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    let python = std::env::var("WASMRPC_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/websocket_client.py");
    let mut command = clean_command(&python);
    command.arg(&script).arg(&server.url).arg(wasm_path("text"));
    let output = tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(120))).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed:\n{stdout}\n{}\n--- server log:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[tokio::test]
async fn jsonrpsee_client_calls_batches_and_subscribes() {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    let client = WsClientBuilder::default().build(ws_url(&server)).await.unwrap();

    let sum: i64 = client.request("math.add", rpc_params![2, 3]).await.unwrap();
    assert_eq!(sum, 5);
    match client.request::<i64, _>("math.add", rpc_params!["x", 1]).await {
        Err(jsonrpsee::core::ClientError::Call(error)) => assert_eq!(error.code(), -32602, "{error:?}"),
        other => panic!("expected -32602, got {other:?}"),
    }

    let mut batch = BatchRequestBuilder::new();
    batch.insert("math.add", rpc_params![1, 2]).unwrap();
    batch.insert("math.multiply", rpc_params![6, 7]).unwrap();
    batch.insert("math.nope", rpc_params![]).unwrap();
    let answers = client.batch_request::<i64>(batch).await.unwrap();
    let answers: Vec<Result<i64, i32>> = answers.into_iter().map(|a| a.map_err(|e| e.code())).collect();
    assert_eq!(answers, [Ok(3), Ok(42), Err(-32601)]);

    let mut changes: Subscription<Value> =
        client.subscribe("wasmrpc.subscribe", rpc_params!["procedures"], "wasmrpc.unsubscribe").await.unwrap();
    server.deploy_ok("text", "text").await;
    let change = tokio::time::timeout(WAIT, changes.next()).await.expect("no notification").unwrap().unwrap();
    assert_eq!((&change["name"], &change["change"]), (&json!("text"), &json!("deployed")), "{change}");
    assert_eq!(change["procedure"]["version"], 1, "{change}");
    let removed = server.request(Method::DELETE, "/procedures/text", &[], Vec::new()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    let change = tokio::time::timeout(WAIT, changes.next()).await.expect("no notification").unwrap().unwrap();
    assert_eq!(change, json!({"name": "text", "change": "removed", "procedure": null}));
    changes.unsubscribe().await.unwrap();
}

/// Subscribes `ws` to procedure changes.
async fn subscribe(ws: &mut Ws) -> Value {
    send(ws, call("wasmrpc.subscribe", json!(["procedures"]), 0)).await;
    let answer = next_json(ws).await;
    assert!(answer["result"].is_string(), "{answer}");
    answer["result"].clone()
}

/// Changes this server did not make through its API are told too: a deploy
/// and a removal made on another replica of a shared PostgreSQL registry,
/// and a file appearing in `--watch`'s directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_another_replica_and_from_watch_are_told() {
    let pg = crate::cluster::Postgres::start();
    let url = pg.url();
    let (a, b) = (Server::start(&["--registry", &url]), Server::start(&["--registry", &url]));
    let mut ws = open(&b).await;
    let id = subscribe(&mut ws).await;
    a.deploy_ok("math", "math").await;
    let note = next_json(&mut ws).await;
    assert_eq!(note["params"]["subscription"], id);
    let change = &note["params"]["result"];
    assert_eq!((&change["name"], &change["change"]), (&json!("math"), &json!("deployed")), "{note}");
    assert_eq!(change["procedure"]["version"], 1, "{note}");
    let removed = a.request(Method::DELETE, "/procedures/math", &[], Vec::new()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    let note = next_json(&mut ws).await;
    assert_eq!(note["params"]["result"], json!({"name": "math", "change": "removed", "procedure": null}));

    let dir = tempfile::tempdir().unwrap();
    let watching = Server::start(&["--watch", dir.path().to_str().unwrap()]);
    let mut ws = open(&watching).await;
    subscribe(&mut ws).await;
    // Written aside, then renamed in: the watcher sees the whole file.
    std::fs::write(dir.path().join("calc.tmp"), wasm("math")).unwrap();
    std::fs::rename(dir.path().join("calc.tmp"), dir.path().join("calc.wasm")).unwrap();
    let note = next_json(&mut ws).await;
    assert_eq!(note["params"]["result"]["name"], "calc", "{note}");
    assert_eq!(note["params"]["result"]["change"], "deployed", "{note}");
}

/// A rollback is told as one; over HTTP the subscription methods are
/// refused with a reason, and the name `wasmrpc` cannot be deployed.
#[tokio::test]
async fn rollbacks_are_told_and_http_cannot_subscribe() {
    let server = Server::start(&[]);
    server.deploy_ok("flip", "test_v1").await;
    server.deploy_ok("flip", "test_v2").await;
    let mut ws = open(&server).await;
    send(&mut ws, call("wasmrpc.subscribe", json!(["procedures"]), 1)).await;
    let id = next_json(&mut ws).await["result"].clone();
    let answer = server.request(Method::POST, "/procedures/flip/versions/1/activate", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let note = next_json(&mut ws).await;
    assert_eq!(note["params"]["subscription"], id);
    assert_eq!(note["params"]["result"]["change"], "rolled_back", "{note}");
    assert_eq!(note["params"]["result"]["procedure"]["version"], 1, "{note}");

    send(&mut ws, call("wasmrpc.subscribe", json!(["everything"]), 2)).await;
    assert_eq!(next_json(&mut ws).await["error"]["code"], -32602);
    send(&mut ws, call("wasmrpc.nope", json!([]), 3)).await;
    assert_eq!(next_json(&mut ws).await["error"]["code"], -32601);

    let refused = server.error("wasmrpc.subscribe", json!(["procedures"])).await;
    assert_eq!(refused["code"], -32600, "{refused}");
    assert!(refused["data"].as_str().unwrap().contains("needs a WebSocket connection"), "{refused}");
    let answer = server.deploy("wasmrpc", "math").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text().contains("reserved"), "{}", answer.text());
    // A GET /rpc that does not ask for a WebSocket is still refused.
    let answer = server.request(Method::GET, "/rpc", &[], Vec::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// At `--ws-max-in-flight 2` a third message waits until one of the two
/// running ones is answered: the quick call is answered after a slow one,
/// where without the cap it would be answered first.
#[tokio::test]
async fn the_in_flight_cap_holds_further_messages_back() {
    let server = Server::start(&["--ws-max-in-flight", "2"]);
    server.deploy_ok("hostile", "test_hostile").await;
    server.deploy_ok("math", "math").await;
    let mut ws = open(&server).await;
    send(&mut ws, call("hostile.sleep", json!([1000]), 1)).await;
    send(&mut ws, call("hostile.sleep", json!([1000]), 2)).await;
    send(&mut ws, call("math.add", json!([1, 2]), 3)).await;
    let first = next_json(&mut ws).await;
    assert!(first["id"] == 1 || first["id"] == 2, "the quick call was not held back: {first}");
    let mut ids: Vec<u64> = vec![first["id"].as_u64().unwrap()];
    for _ in 0..2 {
        ids.push(next_json(&mut ws).await["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_a_reason() {
    let server = Server::start(&["--ws-idle-timeout-s", "1"]);
    server.deploy_ok("math", "math").await;
    let mut ws = open(&server).await;
    send(&mut ws, call("math.add", json!([1, 2]), 1)).await;
    assert_eq!(next_json(&mut ws).await["result"], 3);
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Normal);
    assert!(frame.reason.contains("--ws-idle-timeout-s"), "{frame:?}");
    // A subscription keeps a connection open however quiet it is.
    let mut ws = open(&server).await;
    send(&mut ws, call("wasmrpc.subscribe", json!(["procedures"]), 1)).await;
    next_json(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    send(&mut ws, call("math.add", json!([2, 2]), 2)).await;
    assert_eq!(next_json(&mut ws).await["result"], 4);
}

/// A client that does not answer pings (it does not read) is closed with
/// 1011 after the next ping.
#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed() {
    let server = Server::start(&["--ws-ping-interval-s", "1"]);
    let mut ws = open(&server).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Error);
    assert!(frame.reason.contains("no pong"), "{frame:?}");
    // One that keeps talking (and reading, so it answers pings) stays open
    // over several ping intervals: a message every 250 ms, so each interval
    // hears from it however late a busy machine runs the tick.
    let mut ws = open(&server).await;
    for id in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        send(&mut ws, call("rpc.discover", Value::Null, id)).await;
        assert_eq!(next_json(&mut ws).await["id"], id);
    }
}

#[tokio::test]
async fn a_message_past_the_body_limit_is_closed_with_1009() {
    let server = Server::start(&["--max-body-kib", "1"]);
    server.deploy_ok("math", "math").await;
    let mut ws = open(&server).await;
    // Just under the limit: answered.
    let pad = "x".repeat(900);
    send(&mut ws, json!({"jsonrpc": "2.0", "method": "math.add", "params": [1, 2], "id": 1, "pad": pad})).await;
    assert_eq!(next_json(&mut ws).await["result"], 3);
    let pad = "x".repeat(2048);
    send(&mut ws, json!({"jsonrpc": "2.0", "method": "math.add", "params": [1, 2], "id": 2, "pad": pad})).await;
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Size);
    assert!(frame.reason.contains("--max-body-kib"), "{frame:?}");
    // Invalid UTF-8 in a text frame: 1007.
    let mut ws = open(&server).await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    ws.send(Message::Frame(frame)).await.unwrap();
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Invalid, "{frame:?}");
}

/// A client that subscribes and stops reading while procedures change is
/// dropped once its queue is full; the server goes on serving.
#[tokio::test]
async fn a_client_that_does_not_read_is_dropped() {
    let server = Server::start(&[]);
    // A small receive window, so the kernel holds little for the client.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = server.url.trim_start_matches("http://").parse().unwrap();
    let mut ws = handshake(&server, socket.connect(address).await.unwrap()).await;
    assert_eq!(server.metric("wasmrpc_websocket_connections").await, Some(1.0));
    // Every subscription is told of every change: 64 notifications a deploy.
    for id in 0..64 {
        send(&mut ws, call("wasmrpc.subscribe", json!(["procedures"]), id)).await;
        assert!(next_json(&mut ws).await["result"].is_string());
    }
    let versions = [wasm("test_v1"), wasm("test_v2")];
    let mut dropped = false;
    for n in 0..400 {
        let answer = server.deploy_bytes("flip", versions[n % 2].clone()).await;
        assert!(answer.status.is_success(), "{}", answer.text());
        if server.log().contains("dropping a WebSocket client") {
            eprintln!("dropped after {} deploys", n + 1);
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the client was never dropped:\n{}", server.log());
    assert!(server.log().contains("the client is not reading"), "{}", server.log());
    // What was sent before is still there to read; then the connection ends.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection did not end");
    assert_eq!(server.metric("wasmrpc_websocket_dropped_total").await, Some(1.0));
    // The gauge falls once the server's side of the connection has ended.
    server
        .eventually(WAIT, "no open WebSocket connection in the gauge", || async {
            server.metric("wasmrpc_websocket_connections").await == Some(0.0)
        })
        .await;
    let methods = server.result("rpc.discover", Value::Null).await["methods"].clone();
    assert!(methods.as_array().unwrap().iter().any(|m| m["name"].as_str().unwrap().starts_with("flip.")), "{methods}");
}

/// An open WebSocket connection holds its `--max-connections` slot: with
/// both slots taken by WebSockets a new HTTP request is not served until
/// one of them closes.
#[tokio::test]
async fn a_websocket_connection_holds_its_connection_slot() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut first = open(&server).await;
    let _second = open(&server).await;
    let url = format!("{}/healthz", server.url);
    let waiting = tokio::spawn(async move { wasmrpc_client::http::send(Method::GET, &url, &[], "").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection was served while two WebSockets were open");
    first.close(None).await.unwrap();
    let answer = tokio::time::timeout(WAIT, waiting).await.expect("never served").unwrap().unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}

/// Shutdown closes open WebSocket connections with 1001 instead of waiting
/// for them, and the server exits well within its grace period.
#[tokio::test]
async fn shutdown_closes_connections_with_1001() {
    let server = Server::start(&[]);
    let mut ws = open(&server).await;
    send(&mut ws, call("wasmrpc.subscribe", json!(["procedures"]), 1)).await;
    next_json(&mut ws).await;
    let closed = tokio::spawn(async move { close_frame(&mut ws).await });
    let stopped = tokio::task::spawn_blocking(move || server.stop_within("TERM", Duration::from_secs(8)));
    let frame = tokio::time::timeout(WAIT, closed).await.expect("no close frame").unwrap();
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason.as_str(), "server shutting down");
    assert!(stopped.await.unwrap().is_some(), "the server did not exit in time");
}

/// A caller key removed while its WebSocket is open calls no more: the
/// connection's next message closes it with 1008 and a reason, as a POST
/// with the key would be refused from then on.
#[tokio::test]
async fn a_key_removed_while_its_connection_is_open_calls_no_more() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Server::start(&["--require-call-key"]);
    server.deploy_ok("math", "math").await;
    let made =
        server.request(Method::POST, "/keys", &[], json!({"name": "gone", "procedures": ["*"]}).to_string()).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let key = made.json().unwrap()["key"].as_str().unwrap().to_owned();
    let mut request = ws_url(&server).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    let socket = TcpStream::connect(server.url.trim_start_matches("http://")).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, socket).await.expect("WebSocket handshake");
    send(&mut ws, call("math.add", json!([1, 2]), 1)).await;
    assert_eq!(next_json(&mut ws).await["result"], 3);
    let removed = server.request(Method::DELETE, "/keys/gone", &[], Vec::new()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    send(&mut ws, call("math.add", json!([1, 2]), 2)).await;
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("caller key was removed"), "{frame:?}");
}
