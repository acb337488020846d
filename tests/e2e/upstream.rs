//! A loopback HTTP/1.1 upstream for the outgoing-HTTP tests: a tiny server
//! on 127.0.0.1 (never any other address) that answers each request with
//! what the test's handler says, counts requests, and notices a caller
//! that hangs up before a delayed answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{wasm, Server};

/// A request as the upstream read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Query parameter `key` as a number.
    pub fn number(&self, key: &str) -> Option<u64> {
        self.query.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))).and_then(|v| v.parse().ok())
    }
}

/// What the upstream answers.
#[derive(Debug)]
pub struct Reply {
    /// `200 OK`, `404 Not Found`, ...
    pub status: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Answer after this long, unless the caller hangs up first.
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, headers: Vec::new(), body: body.into(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running upstream; it stops with the test's runtime.
pub struct Upstream {
    pub port: u16,
    /// Requests it has read.
    pub requests: Arc<AtomicUsize>,
    /// Connections closed by the caller before a delayed answer.
    pub cut: Arc<AtomicUsize>,
    /// Every request read, in order.
    pub seen: Arc<Mutex<Vec<Request>>>,
}

impl Upstream {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Upstream { port, requests: Arc::default(), cut: Arc::default(), seen: Arc::default() };
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = (upstream.requests.clone(), upstream.cut.clone(), upstream.seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), shared.clone()));
            }
        });
        upstream
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `allow-outbound` entry that grants it.
    pub fn grant(&self) -> String {
        self.url("")
    }
}

type Shared = (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Mutex<Vec<Request>>>);

async fn serve(mut stream: TcpStream, handler: Arc<Handler>, (requests, cut, seen): Shared) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut words = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or("").to_owned(), words.next().unwrap_or("/").to_owned());
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: buf[head_end..head_end + length].to_vec(),
    };
    requests.fetch_add(1, Ordering::SeqCst);
    seen.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    if !reply.delay.is_zero() {
        // Only an end of stream (or an error) is a caller hanging up: bytes
        // still arriving are the rest of its request (a chunked body's last
        // chunk), read and dropped. Taking them for a hang-up closed the
        // socket with unread data, a reset the caller saw as its answer.
        let mut probe = [0u8; 64];
        let wait = tokio::time::sleep(reply.delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                read = stream.read(&mut probe) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        cut.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    }
    let mut head =
        format!("HTTP/1.1 {}\r\ncontent-length: {}\r\nconnection: close\r\n", reply.status, reply.body.len());
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
    // Read what the client still sends (a chunked body's last chunk, which
    // this server does not parse) until it closes: a socket closed with
    // unread bytes sends a reset, which may reach the client before it has
    // read the answer.
    let mut rest = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Deploys the built procedure `module` as `name` with `?allow-outbound=`
/// each of `grants`: the status and the JSON answered.
pub async fn deploy_with_grants(server: &Server, name: &str, module: &str, grants: &[&str]) -> (StatusCode, Value) {
    let query: String = grants
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{}allow-outbound={}", if i == 0 { "?" } else { "&" }, percent(g)))
        .collect();
    let answer = server.request(Method::PUT, &format!("/procedures/{name}{query}"), &[], wasm(module)).await;
    (answer.status, answer.json().unwrap_or_else(|e| panic!("{e:#}: {}", answer.text())))
}

/// `text` percent-encoded for a URL's query or path.
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
