//! Slow, stalled and idle clients cannot hold the server: the header and body
//! read timeouts cut them off, and past the connection cap new connections
//! wait in the kernel's backlog until a served one closes. Raw sockets, so
//! the test controls exactly what is sent and when.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{timing, Server};

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Reads one whole answer (head and a Content-Length body), or up to EOF.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                break;
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `GET /healthz` on a kept-alive connection and insists on a 200 within 5 s.
async fn healthy(stream: &mut TcpStream) {
    stream.write_all(HEALTH).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(stream)).await.expect("no answer in 5 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// With `--max-connections 4`, four idle keep-alive connections fill the
/// server: a fifth connects (the kernel completes the handshake) but its
/// request gets no answer while they are held, and is answered as soon as
/// one of them closes.
#[tokio::test]
async fn past_the_connection_cap_a_new_client_waits_for_a_free_slot() {
    let _timing = timing().await;
    let server = Server::start(&["--max-connections", "4"]);
    let addr = addr(&server);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        healthy(&mut stream).await;
        held.push(stream);
    }

    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    fifth.write_all(HEALTH).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(700), fifth.read(&mut byte)).await;
    assert!(early.is_err(), "a fifth connection was served past a cap of 4: {early:?}");
    // The held connections are still served: the server is full, not stuck.
    healthy(&mut held[3]).await;

    drop(held.remove(0));
    let answer = tokio::time::timeout(Duration::from_secs(3), read_answer(&mut fifth))
        .await
        .expect("the waiting connection was not served within 3 s of a slot freeing");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A client that sends headers declaring a 1000-byte body, then only a few
/// bytes, is answered 408 with a JSON error naming the limit and
/// disconnected once `--body-timeout-ms` has passed, for a call and for an
/// upload alike; other clients are served meanwhile.
#[tokio::test]
async fn a_stalled_body_is_cut_off_at_the_body_timeout() {
    let _timing = timing().await;
    let server = Server::start(&["--body-timeout-ms", "600"]);
    server.deploy_ok("math", "math").await;
    let addr = addr(&server);
    let started = Instant::now();
    let mut call = TcpStream::connect(&addr).await.unwrap();
    call.write_all(b"POST /rpc HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"")
        .await
        .unwrap();
    let mut upload = TcpStream::connect(&addr).await.unwrap();
    upload
        .write_all(b"PUT /procedures/late HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n\0asm")
        .await
        .unwrap();

    // Meanwhile other calls are answered, each quickly.
    let mut answered = 0;
    while started.elapsed() < Duration::from_millis(400) {
        let call = Instant::now();
        assert_eq!(server.result("math.add", json!([answered, 1])).await, json!(answered + 1));
        assert!(
            call.elapsed() < Duration::from_millis(300),
            "a call beside the stalled bodies took {:?}",
            call.elapsed()
        );
        answered += 1;
    }
    assert!(answered >= 1, "no call answered beside the stalled bodies");

    for (what, stream) in [("call", &mut call), ("upload", &mut upload)] {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
        let waited = started.elapsed();
        assert!(read.is_ok(), "{what}: the stalled connection was still open after {waited:?}");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{what}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{what}: {answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{what}: {e}: {answer}"));
        // A call gets a JSON-RPC error (as for a body over the limit), an
        // upload the admin API's `{"error": ...}`.
        let error = match what {
            "call" => {
                assert_eq!(body["error"]["code"], -32600, "{body}");
                body["error"]["data"].as_str().unwrap_or_default()
            }
            _ => body["error"].as_str().unwrap_or_default(),
        };
        assert!(error.contains("600 ms") && error.contains("--body-timeout-ms"), "{what}: {body}");
        assert!(
            waited >= Duration::from_millis(550) && waited < Duration::from_millis(2500),
            "{what}: after {waited:?}"
        );
    }
    let late = server.request(hyper::Method::GET, "/procedures/late", &[], Vec::new()).await;
    assert_eq!(late.status, hyper::StatusCode::NOT_FOUND, "{}", late.text());
}

/// A client that sends half a request's headers and stalls is disconnected
/// after `--header-timeout-ms`, and holds nobody else up meanwhile; so is a
/// kept-alive connection that goes idle after a request (idle clients do
/// not keep connection slots).
#[tokio::test]
async fn a_stalled_or_idle_client_is_dropped_at_the_header_timeout() {
    let _timing = timing().await;
    let server = Server::start(&["--header-timeout-ms", "600"]);
    server.deploy_ok("math", "math").await;
    let mut stalled = TcpStream::connect(addr(&server)).await.unwrap();
    stalled.write_all(b"POST /rpc HTTP/1.1\r\nHost: test\r\n").await.unwrap();
    let started = Instant::now();
    let mut idle = TcpStream::connect(addr(&server)).await.unwrap();
    healthy(&mut idle).await;
    assert_eq!(server.result("math.add", json!([1, 2])).await, json!(3));
    for (what, stream) in [("stalled", &mut stalled), ("idle", &mut idle)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        let waited = started.elapsed();
        assert!(read.is_ok(), "the {what} connection was still open after {waited:?}");
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_millis(3000),
            "{what}: dropped after {waited:?}"
        );
    }
}
