//! The WebSocket transport, for a [`crate::Client`] made from a `ws://` or
//! `wss://` URL (TLS as for `https://`, see [`crate::tls`]):
//! one connection to the server's `/rpc`, JSON-RPC requests sent as text
//! frames, and a reader task that hands each answer to the call waiting for
//! its id (a batch waits under its first id). So calls on one connection run
//! concurrently and may be answered in any order.
//!
//! The connection is made at the first call, and made again at the first
//! call after it dropped. Calls in flight when it drops fail at once with
//! [`TransportError::Broken`]; a request that could not be written at all
//! (the connection had dropped unseen) is sent once more on a new one. Every
//! call is bounded by the client's time limit, the connection's making
//! included. Server notifications (`wasmrpc.procedures`) are not for this
//! client and are skipped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::tls::{ConnectError, Stream, Tls};
use crate::{Error, TransportError};

type Socket = WebSocketStream<Stream>;

/// What a waiting call gets: the answer, or why the connection closed.
type Answer = Result<Value, String>;

/// The WebSocket side of a client: where to connect, the time limit, and
/// the connection (shared by the client's clones).
#[derive(Clone)]
pub(crate) struct WsClient {
    endpoint: String,
    timeout: Duration,
    tls: Tls,
    connection: Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient").field("endpoint", &self.endpoint).field("timeout", &self.timeout).finish()
    }
}

impl WsClient {
    /// A client of `endpoint` (`ws://host:port/rpc`); it connects at its
    /// first call.
    pub(crate) fn new(endpoint: String, timeout: Duration) -> WsClient {
        WsClient { endpoint, timeout, tls: Tls::default(), connection: Arc::default() }
    }

    /// The same client on a connection of its own, also trusting the
    /// certificates in `pem` (see [`Tls::with_pem`]).
    pub(crate) fn with_root_certificate(mut self, pem: &[u8]) -> std::io::Result<WsClient> {
        self.tls = self.tls.with_pem(pem)?;
        Ok(self.unshared())
    }

    pub(crate) fn with_timeout(mut self, timeout: Duration) -> WsClient {
        self.timeout = timeout;
        self
    }

    /// The same client on a connection of its own (made anew with other
    /// handshake headers).
    pub(crate) fn unshared(mut self) -> WsClient {
        self.connection = Arc::default();
        self
    }

    /// Sends `body` (one request with id `id`, or a batch whose first id is
    /// `id`) and returns the answer to it, within the time limit.
    pub(crate) async fn exchange(&self, body: &Value, id: u64, authorization: Option<&str>) -> Result<Value, Error> {
        let text = body.to_string();
        match tokio::time::timeout(self.timeout, self.exchange_unbounded(text, id, authorization)).await {
            Ok(answer) => answer,
            Err(_) => Err(TransportError::Timeout { url: self.endpoint.clone(), timeout: self.timeout }.into()),
        }
    }

    async fn exchange_unbounded(&self, text: String, id: u64, authorization: Option<&str>) -> Result<Value, Error> {
        // A second try only if the first request never left.
        for attempt in 0..2 {
            let connection = self.connection(authorization).await?;
            let (answer, waiting) = match connection.wait_for(id) {
                Some(waiting) => waiting,
                // It dropped since: the next turn connects anew.
                None => continue,
            };
            if let Err(e) = connection.send(&text).await {
                drop(waiting);
                let reason = format!("the request could not be sent: {e}");
                connection.fail(&reason);
                if attempt == 0 {
                    continue;
                }
                return Err(self.broken(&reason).into());
            }
            let answer = answer.await.unwrap_or_else(|_| Err("the connection was dropped".to_owned()));
            drop(waiting);
            return answer.map_err(|reason| self.broken(&reason).into());
        }
        Err(self.broken("it dropped twice while connecting").into())
    }

    fn broken(&self, reason: &str) -> TransportError {
        TransportError::Broken {
            url: self.endpoint.clone(),
            reason: format!("the WebSocket connection closed: {reason}"),
        }
    }

    /// The open connection, made now if there is none or it dropped.
    async fn connection(&self, authorization: Option<&str>) -> Result<Arc<Connection>, Error> {
        // Held while connecting: concurrent first calls share one connection.
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        *slot = None;
        let connection = Arc::new(Connection::open(&self.endpoint, authorization, &self.tls).await?);
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

/// One open WebSocket connection: its write half, and the calls waiting
/// for answers that its reader task hands out.
struct Connection {
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    waiting: Arc<Mutex<Waiting>>,
    reader: tokio::task::AbortHandle,
}

/// The calls waiting for their answer by the id they were sent with, and
/// whether the connection closed (then nothing waits; each call was told why).
#[derive(Default)]
struct Waiting {
    calls: BTreeMap<u64, oneshot::Sender<Answer>>,
    closed: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The last client holding it is gone: the reader goes too, and with
        // both halves dropped the socket closes.
        self.reader.abort();
    }
}

impl Connection {
    async fn open(endpoint: &str, authorization: Option<&str>, tls: &Tls) -> Result<Connection, Error> {
        let invalid = |reason: String| TransportError::InvalidUrl { url: endpoint.to_owned(), reason };
        let mut request = endpoint.into_client_request().map_err(|e| invalid(e.to_string()))?;
        if let Some(authorization) = authorization {
            let value = HeaderValue::from_str(authorization)
                .map_err(|_| invalid("the token is not a valid HTTP header value".into()))?;
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let uri = request.uri();
        let (tls, default_port) = match uri.scheme_str() {
            Some("ws") => (None, 80),
            Some("wss") => (Some(tls), 443),
            _ => return Err(invalid("a WebSocket URL starts with ws:// or wss://".into()).into()),
        };
        let host = uri.host().filter(|host| !host.is_empty()).ok_or_else(|| invalid("it names no host".into()))?;
        let stream = Stream::connect(host, uri.port_u16().unwrap_or(default_port), tls).await.map_err(|e| {
            let url = endpoint.to_owned();
            match e {
                ConnectError::Tcp(e) => TransportError::Unreachable { url, reason: e.to_string() },
                ConnectError::Tls(failure) => TransportError::Tls { url, reason: failure.to_string() },
            }
        })?;
        let (socket, _) =
            tokio_tungstenite::client_async(request, stream).await.map_err(|e| handshake_error(endpoint, e))?;
        let (sink, stream) = socket.split();
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let reader = tokio::spawn(read(stream, waiting.clone())).abort_handle();
        Ok(Connection { sink: tokio::sync::Mutex::new(sink), waiting, reader })
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        lock(&self.waiting)
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Registers a call waiting for the answer with `id`: the answer to
    /// come, and a guard that takes the call off the list when dropped
    /// (answered, failed or timed out). `None` if the connection closed.
    fn wait_for(&self, id: u64) -> Option<(oneshot::Receiver<Answer>, Registered<'_>)> {
        let (sender, receiver) = oneshot::channel();
        let mut waiting = self.lock();
        if waiting.closed {
            return None;
        }
        waiting.calls.insert(id, sender);
        Some((receiver, Registered { waiting: &self.waiting, id }))
    }

    async fn send(&self, text: &str) -> Result<(), tungstenite::Error> {
        self.sink.lock().await.send(Message::text(text)).await
    }

    /// Marks the connection closed for `reason`.
    fn fail(&self, reason: &str) {
        close(&self.waiting, reason.to_owned());
    }
}

/// A call on the waiting list, taken off when this is dropped.
struct Registered<'a> {
    waiting: &'a Mutex<Waiting>,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(self.waiting).calls.remove(&self.id);
    }
}

fn lock(waiting: &Mutex<Waiting>) -> MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks the connection closed and fails every waiting call with `reason`.
fn close(waiting: &Mutex<Waiting>, reason: String) {
    let calls = {
        let mut waiting = lock(waiting);
        waiting.closed = true;
        std::mem::take(&mut waiting.calls)
    };
    for (_, call) in calls {
        let _ = call.send(Err(reason.clone()));
    }
}

/// The reader task: hands each answer to its call until the connection
/// ends, then fails the calls still waiting.
async fn read(mut stream: SplitStream<Socket>, waiting: Arc<Mutex<Waiting>>) {
    let reason = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => route(&waiting, text.as_str()),
            Some(Ok(Message::Close(frame))) => {
                break match frame {
                    Some(frame) if !frame.reason.is_empty() => {
                        format!("the server closed it ({} {})", frame.code, frame.reason)
                    }
                    Some(frame) => format!("the server closed it ({})", frame.code),
                    None => "the server closed it".to_owned(),
                };
            }
            // Pings are answered by tungstenite as it reads; JSON-RPC comes
            // in text frames only.
            Some(Ok(_)) => {}
            Some(Err(e)) => break e.to_string(),
            None => break "the server ended it".to_owned(),
        }
    };
    close(&waiting, reason);
}

/// Hands the answer in `text` to the call waiting for it.
fn route(waiting: &Mutex<Waiting>, text: &str) {
    // Not JSON, or a notification: no call waits for it.
    let Ok(answer) = serde_json::from_str::<Value>(text) else { return };
    let mut waiting = lock(waiting);
    let key = match &answer {
        Value::Object(object) if object.contains_key("method") => return,
        Value::Object(object) => match object.get("id") {
            Some(Value::Null) | None => {
                // An error the server could not tie to a request (one it
                // could not read): it answers the oldest call, the first it
                // read.
                waiting.calls.keys().next().copied()
            }
            Some(id) => id.as_u64(),
        },
        // A batch's answers: it waits under its first id, but any of them
        // names it (an answer may be missing, and they come in any order).
        Value::Array(answers) => {
            answers.iter().filter_map(|a| a.get("id").and_then(Value::as_u64)).find(|id| waiting.calls.contains_key(id))
        }
        _ => None,
    };
    if let Some(call) = key.and_then(|id| waiting.calls.remove(&id)) {
        let _ = call.send(Ok(answer));
    }
}

/// The error of a failed handshake: the server unreachable, or its HTTP
/// refusal (a JSON-RPC error in its body, such as a missing key, is that
/// error).
fn handshake_error(endpoint: &str, error: tungstenite::Error) -> Error {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            let rpc = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|value| crate::outcome(value, 0).ok())
                .and_then(Result::err);
            match rpc {
                Some(rpc) => Error::Rpc(rpc),
                None => Error::Http {
                    status,
                    body: format!("{body} (the WebSocket handshake was refused: does this server take ws:// URLs?)"),
                },
            }
        }
        tungstenite::Error::Url(e) => {
            TransportError::InvalidUrl { url: endpoint.to_owned(), reason: e.to_string() }.into()
        }
        other => TransportError::Unreachable { url: endpoint.to_owned(), reason: other.to_string() }.into(),
    }
}

#[cfg(test)]
mod tests {
    //! Against a WebSocket server of the test's own, which answers as told:
    //! out of order, not at all, or by dropping the connection. The real
    //! server's side is tested end to end (`tests/e2e/stubs.rs`).

    use std::future::Future;

    use serde_json::json;
    use tokio::net::{TcpListener, TcpStream};

    use crate::{Call as _, Client};

    use super::*;

    type ServerSocket = WebSocketStream<TcpStream>;

    /// A server on a free loopback port that runs `connection` for each
    /// connection it accepts (the number of it, from 0); its `ws://` URL.
    async fn server<F, Fut>(connection: F) -> String
    where
        F: Fn(usize, ServerSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for number in 0.. {
                let (tcp, _) = listener.accept().await.unwrap();
                let socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
                tokio::spawn(connection(number, socket));
            }
        });
        url
    }

    /// The next request read from `socket`.
    async fn next_request(socket: &mut ServerSocket) -> Value {
        loop {
            match socket.next().await.unwrap().unwrap() {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                _ => continue,
            }
        }
    }

    /// The answer to `request`: the sum of its params.
    fn sum_of(request: &Value) -> Value {
        let sum: i64 = request["params"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).sum();
        json!({"jsonrpc": "2.0", "result": sum, "id": request["id"]})
    }

    async fn reply(socket: &mut ServerSocket, answer: Value) {
        socket.send(Message::text(answer.to_string())).await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_calls_share_one_connection_and_take_their_own_answers() {
        let url = server(|number, mut socket| async move {
            assert_eq!(number, 0, "one connection for every call");
            // Three calls read, then answered last first, with a
            // notification and a stray answer between.
            let requests =
                [next_request(&mut socket).await, next_request(&mut socket).await, next_request(&mut socket).await];
            reply(&mut socket, json!({"jsonrpc": "2.0", "method": "wasmrpc.procedures", "params": {}})).await;
            reply(&mut socket, json!({"jsonrpc": "2.0", "result": 0, "id": 999})).await;
            for request in requests.iter().rev() {
                reply(&mut socket, sum_of(request)).await;
            }
            while socket.next().await.is_some() {}
        })
        .await;
        let client = Client::new(&url).with_timeout(Duration::from_secs(10));
        assert_eq!(client.endpoint(), format!("{url}/rpc"));
        let (a, b, c) = tokio::join!(
            client.call::<i64>("math.add", [1, 2]),
            client.call::<i64>("math.add", [10, 20]),
            // The `Call` trait's future: its own clone of the client.
            crate::Call::call::<i64>(&client, "math.add", [100, 200]),
        );
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (3, 30, 300));
    }

    #[tokio::test]
    async fn a_batch_takes_its_answers_in_any_order() {
        let url = server(|_, mut socket| async move {
            let batch = next_request(&mut socket).await;
            let mut answers: Vec<Value> = batch.as_array().unwrap().iter().map(sum_of).collect();
            answers.reverse();
            answers[0] = json!({"jsonrpc": "2.0", "error": {"code": 1, "message": "no"}, "id": answers[0]["id"]});
            reply(&mut socket, Value::Array(answers)).await;
            while socket.next().await.is_some() {}
        })
        .await;
        let client = Client::new(&url).with_timeout(Duration::from_secs(10));
        // The ids of a batch follow the client's earlier ones.
        let _ = client.next_ids(5);
        let batch = client.batch();
        let one = batch.call::<i64>("math.add", [1, 2]);
        let two = batch.call::<i64>("math.add", [3, 4]);
        let answers = batch.send().await.unwrap();
        assert_eq!(answers.get(one).unwrap(), 3);
        assert_eq!(answers.get(two).unwrap_err().rpc().unwrap().code, 1);
    }

    #[tokio::test]
    async fn a_dropped_connection_fails_its_calls_and_the_next_call_connects_anew() {
        let url = server(|number, mut socket| async move {
            let request = next_request(&mut socket).await;
            if number == 0 {
                // Read, never answered: the connection drops under it.
                drop(socket);
                return;
            }
            reply(&mut socket, sum_of(&request)).await;
            while socket.next().await.is_some() {}
        })
        .await;
        let client = Client::new(&url).with_timeout(Duration::from_secs(30));
        let err = client.call::<i64>("math.add", [1, 2]).await.unwrap_err();
        assert!(err.is_transport(), "{err:?}");
        assert!(err.to_string().contains("the WebSocket connection closed"), "{err}");
        assert_eq!(client.call::<i64>("math.add", [1, 2]).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_call_without_answer_times_out_and_a_late_answer_is_nobodys() {
        let url = server(|_, mut socket| async move {
            let late = next_request(&mut socket).await;
            let next = next_request(&mut socket).await;
            reply(&mut socket, sum_of(&late)).await;
            reply(&mut socket, sum_of(&next)).await;
            while socket.next().await.is_some() {}
        })
        .await;
        let client = Client::new(&url).with_timeout(Duration::from_millis(300));
        let err = client.call::<i64>("math.add", [1, 2]).await.unwrap_err();
        assert!(matches!(err, Error::Transport(TransportError::Timeout { .. })), "{err:?}");
        let client = client.with_timeout(Duration::from_secs(10));
        assert_eq!(client.call::<i64>("math.add", [5, 5]).await.unwrap(), 10);
    }

    #[tokio::test]
    async fn unreachable_servers_say_where() {
        for url in ["ws://127.0.0.1:9", "wss://127.0.0.1:9"] {
            let err = Client::new(url).call::<Value>("math.add", [1, 2]).await.unwrap_err();
            assert!(matches!(err, Error::Transport(TransportError::Unreachable { .. })), "{err:?}");
            assert!(err.to_string().contains(&format!("cannot reach the server at {url}/rpc")), "{err}");
        }
    }

    #[tokio::test]
    async fn a_refused_handshake_is_an_http_error_or_its_json_rpc_error() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let bodies = [r#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"no key"},"id":null}"#, "not here"];
            for body in bodies {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let mut buffer = [0; 4096];
                let _ = tcp.read(&mut buffer).await.unwrap();
                let head = format!("HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\n\r\n", body.len());
                tcp.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
            }
        });
        let client = Client::new(&url).with_admin_token("t");
        let err = client.call::<Value>("math.add", [1, 2]).await.unwrap_err();
        assert_eq!(err.rpc().map(|e| e.code), Some(-32001), "{err:?}");
        let err = client.call::<Value>("math.add", [1, 2]).await.unwrap_err();
        assert!(matches!(err, Error::Http { status: 401, .. }), "{err:?}");
    }
}
