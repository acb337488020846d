//! JSON-RPC 2.0 over WebSocket on the HTTP port: `GET /rpc` with
//! `Upgrade: websocket`. Owns the handshake, each connection's loop (its
//! limits, pings, idle timeout and close codes) and the server's own
//! methods that need a connection: `wasmrpc.subscribe` and
//! `wasmrpc.unsubscribe`, whose notifications come from
//! [`Registry::changes`](crate::registry::Registry::changes).
//!
//! Each text message is a request body answered by [`rpc::handle`] exactly
//! as `POST /rpc` answers it (single, batch, notification; the same limits
//! and errors); its answer, if any, goes back as one text message. Messages
//! of one connection run concurrently and may be answered out of order (by
//! id), at most [`Limits::max_in_flight`] at once: at the cap the loop reads
//! nothing more until one is answered, so a client that sends faster than
//! it is answered is slowed by TCP, never buffered.
//!
//! Outgoing messages wait in a queue of [`OUTGOING_QUEUE`] per connection,
//! written by the connection's writer task; a client that does not read
//! (the queue is full) is dropped with 1008, never buffered without bound.
//! A connection keeps its `--max-connections` slot until it closes (it
//! holds its [`Connection`]), and the server's shutdown closes it with 1001
//! once its running calls are answered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::config::{DEFAULT_WS_IDLE_TIMEOUT_S, DEFAULT_WS_MAX_IN_FLIGHT, DEFAULT_WS_PING_INTERVAL_S};
use crate::http_error::{HttpError, HttpResponse};
use crate::registry::{CallError, Change};
use crate::rpc::{self, RpcError};
use crate::server::{App, Connection};

/// Subscriptions one connection may hold at once; past it
/// `wasmrpc.subscribe` answers -32005.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Messages waiting to be written to one connection (answers,
/// notifications, pings); a client that lets it fill is dropped (1008).
pub const OUTGOING_QUEUE: usize = 256;
/// How long a close waits for its frame to be written, and then for the
/// client's answering close, before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The one topic `wasmrpc.subscribe` takes, and the method of its notifications.
const TOPIC: &str = "procedures";
const NOTIFICATION_METHOD: &str = "wasmrpc.procedures";

/// WebSocket connections' limits (`--ws-*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages of one connection being answered at once (a batch counts
    /// once); at the cap the server reads no further message until one is
    /// answered.
    pub max_in_flight: usize,
    /// A connection with no message from the client, no call running and no
    /// subscription for this long is closed (1000).
    pub idle_timeout: Duration,
    /// How often the server pings; a connection that sent nothing (not even
    /// a pong) between two pings is closed (1011).
    pub ping_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: DEFAULT_WS_MAX_IN_FLIGHT,
            idle_timeout: Duration::from_secs(DEFAULT_WS_IDLE_TIMEOUT_S),
            ping_interval: Duration::from_secs(DEFAULT_WS_PING_INTERVAL_S),
        }
    }
}

/// Whether `GET /rpc` asks for a WebSocket (`Upgrade: websocket`); without
/// it the route stays `POST`-only (405).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, &UPGRADE, "websocket")
}

/// Whether the comma-separated header `name` has `token` (any case).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The subprotocol a client may offer (and the server then agrees on).
const PROTOCOL: &str = "wasmrpc";
/// The prefix of a caller key offered as a subprotocol.
const BEARER_PROTOCOL: &str = "wasmrpc.bearer.";

/// Answers the upgrade of `GET /rpc` (`101 Switching Protocols`) and
/// serves the connection on its own task once hyper hands it over; a
/// request that is not a valid WebSocket handshake is answered 400 (426
/// for a version other than 13) and stays HTTP.
pub async fn upgrade(
    app: &Arc<App>,
    connection: &Arc<Connection>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> HttpResponse {
    let accept = match handshake(req.headers()) {
        Ok(accept) => accept,
        Err(refused) => return *refused,
    };
    // Browsers open sockets to any origin without asking (CORS does not
    // apply): the page's origin is checked here as for a POST.
    if let Err(why) = crate::cors::check(&app.config.cors_origins, req.headers()) {
        return HttpError::Forbidden(why).response();
    }
    let protocol = subprotocol(req.headers_mut());
    let caller = match crate::server::caller_for(app, peer, req.headers()) {
        Ok(caller) => caller,
        Err(refused) => return refused.response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (app, connection) = (app.clone(), connection.clone());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = socket_config(app.config.max_body_bytes);
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                serve(app, connection, caller, socket).await;
            }
            Err(e) => tracing::debug!(%peer, "WebSocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// The subprotocol to answer with (`wasmrpc`, if the client offered it),
/// and a caller key offered as the subprotocol `wasmrpc.bearer.KEY` moved
/// to the `Authorization` header it stands for: a browser's WebSocket
/// cannot send headers, only subprotocols. The key is never echoed (a
/// browser needs `wasmrpc` offered beside it, to have one to agree on).
fn subprotocol(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let offered: Vec<String> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let key = offered.iter().find_map(|p| p.strip_prefix(BEARER_PROTOCOL));
    if let Some(key) = key.filter(|_| !headers.contains_key(AUTHORIZATION)) {
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {key}")) {
            headers.insert(AUTHORIZATION, value);
        }
    }
    offered.iter().any(|p| p == PROTOCOL).then(|| HeaderValue::from_static(PROTOCOL))
}

/// Checks the handshake's headers (RFC 6455, 4.2.1) and returns the
/// `Sec-WebSocket-Accept` value, or the refusal that says what is missing.
fn handshake(headers: &HeaderMap) -> Result<HeaderValue, Box<HttpResponse>> {
    let bad = |why: &str| Box::new(HttpError::BadRequest(format!("not a WebSocket handshake: {why}")).response());
    if !has_token(headers, &CONNECTION, "upgrade") {
        return Err(bad("`Connection: Upgrade` is missing"));
    }
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        let mut refused = bad("this server speaks WebSocket version 13 only (Sec-WebSocket-Version: 13)");
        *refused.status_mut() = StatusCode::UPGRADE_REQUIRED;
        refused.headers_mut().insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(refused);
    }
    match headers.get(SEC_WEBSOCKET_KEY) {
        // The key is 16 bytes in base64: 24 characters.
        Some(key) if key.len() == 24 => {
            HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| bad("unusable Sec-WebSocket-Key"))
        }
        _ => Err(bad("`Sec-WebSocket-Key` is missing or is not 16 bytes in base64")),
    }
}

/// Messages and frames up to the request body limit (`--max-body-kib`);
/// small buffers, as a server may hold thousands of connections.
fn socket_config(max_body_bytes: u64) -> WebSocketConfig {
    let max = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
    WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .write_buffer_size(16 << 10)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

// --- the server methods -------------------------------------------------------

/// Why a `wasmrpc.*` method refused; each case has its JSON-RPC code.
#[derive(Debug)]
pub enum SessionError {
    /// -32600: the method needs a WebSocket connection (it came over HTTP).
    NeedsWebSocket(String),
    /// -32602: the params are not what the method takes; says what it takes.
    InvalidParams(String),
    /// -32005: the connection holds [`MAX_SUBSCRIPTIONS`] already.
    TooManySubscriptions,
}

impl SessionError {
    pub fn code(&self) -> i32 {
        match self {
            SessionError::NeedsWebSocket(_) => -32600,
            SessionError::InvalidParams(_) => -32602,
            SessionError::TooManySubscriptions => -32005,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            SessionError::NeedsWebSocket(_) => "Invalid Request",
            SessionError::InvalidParams(_) => "Invalid params",
            SessionError::TooManySubscriptions => "Limit exceeded",
        }
    }

    pub fn data(&self) -> Value {
        match self {
            SessionError::NeedsWebSocket(method) => Value::String(format!(
                "{method} needs a WebSocket connection: open ws://HOST:PORT/rpc (GET /rpc with \
                 Upgrade: websocket) and send the call there"
            )),
            SessionError::InvalidParams(why) => Value::String(why.clone()),
            SessionError::TooManySubscriptions => json!({
                "reason": format!("this connection holds {MAX_SUBSCRIPTIONS} subscriptions, the most one may; \
                                   unsubscribe one first (wasmrpc.unsubscribe)"),
                "limit": format!("{MAX_SUBSCRIPTIONS} subscriptions per connection"),
            }),
        }
    }
}

/// Answers `wasmrpc.NAME` (`name` is what follows the prefix):
/// `subscribe` and `unsubscribe` on a WebSocket connection; over HTTP
/// (no session) they are refused with -32600, any other name is -32601.
pub fn server_method(caller: &rpc::Caller, name: &str, params: &str) -> Result<String, RpcError> {
    let method = format!("wasmrpc.{name}");
    if !matches!(name, "subscribe" | "unsubscribe") {
        return Err(RpcError::Call { method, error: CallError::MethodNotFound });
    }
    let Some(session) = &caller.session else {
        return Err(RpcError::Session(SessionError::NeedsWebSocket(method)));
    };
    if name == "subscribe" {
        session.subscribe(params).map_err(RpcError::Session)
    } else {
        session.unsubscribe(params).map_err(RpcError::Session)
    }
}

/// Subscription ids, unique in the server's life.
static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

/// A connection's subscriptions, by id: whether each is announced yet
/// (the answer that gave its id is queued). Only announced ones are
/// notified, so a client never sees a notification before its id.
#[derive(Debug, Default)]
struct Subscriptions(Mutex<HashMap<String, bool>>);

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The ids to notify now.
    fn announced(&self) -> Vec<String> {
        self.lock().iter().filter(|(_, announced)| **announced).map(|(id, _)| id.clone()).collect()
    }
}

/// What one request on a WebSocket connection sees of it
/// ([`rpc::Caller::session`]): the connection's subscriptions, and those
/// this request made (announced once its answer is queued).
#[derive(Debug)]
pub struct Session {
    subscriptions: Arc<Subscriptions>,
    made: Mutex<Vec<String>>,
}

impl Session {
    fn new(subscriptions: Arc<Subscriptions>) -> Self {
        Session { subscriptions, made: Mutex::default() }
    }

    /// `wasmrpc.subscribe` with `["procedures"]`: a new subscription's id.
    fn subscribe(&self, params: &str) -> Result<String, SessionError> {
        let topic = serde_json::from_str::<[String; 1]>(params).ok();
        if topic.as_ref().is_none_or(|[topic]| topic != TOPIC) {
            return Err(SessionError::InvalidParams(format!(
                "wasmrpc.subscribe takes [\"{TOPIC}\"] (deploys, rollbacks and removals), not {}",
                crate::logtext::loggable(params.get(..100).unwrap_or("these params"))
            )));
        }
        let mut all = self.subscriptions.lock();
        if all.len() >= MAX_SUBSCRIPTIONS {
            return Err(SessionError::TooManySubscriptions);
        }
        let id = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed).to_string();
        all.insert(id.clone(), false);
        self.made.lock().unwrap_or_else(|p| p.into_inner()).push(id.clone());
        Ok(Value::String(id).to_string())
    }

    /// `wasmrpc.unsubscribe` with `[ID]`: whether there was such a subscription.
    fn unsubscribe(&self, params: &str) -> Result<String, SessionError> {
        let Ok([id]) = serde_json::from_str::<[Value; 1]>(params) else {
            return Err(SessionError::InvalidParams(
                "wasmrpc.unsubscribe takes [ID], the id wasmrpc.subscribe answered".into(),
            ));
        };
        // A client may send the id as a number.
        let id = match id {
            Value::String(id) => id,
            other => other.to_string(),
        };
        Ok(self.subscriptions.lock().remove(&id).is_some().to_string())
    }

    /// Marks the subscriptions this request made as announced: its answer
    /// is queued, ahead of any notification for them.
    fn announce(&self) {
        let made = std::mem::take(&mut *self.made.lock().unwrap_or_else(|p| p.into_inner()));
        if made.is_empty() {
            return;
        }
        let mut all = self.subscriptions.lock();
        for id in made {
            if let Some(announced) = all.get_mut(&id) {
                *announced = true;
            }
        }
    }
}

/// The notification of a change (`result`: its JSON text) for subscription `id`.
fn notification(id: &str, result: &str) -> String {
    let id = Value::from(id);
    format!(
        r#"{{"jsonrpc":"2.0","method":"{NOTIFICATION_METHOD}","params":{{"subscription":{id},"result":{result}}}}}"#
    )
}

// --- a connection -------------------------------------------------------------

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// How a connection's loop ended.
enum End {
    /// The server closes it with this code and reason.
    Close(CloseCode, String),
    /// The client sent its close (already answered by tungstenite).
    ClosedByClient,
    /// The connection is gone (reset, or the writer failed): nothing to send.
    Gone,
}

impl End {
    /// The close for a read error: a protocol error gets its code, a
    /// broken connection none.
    fn from_error(error: WsError, max_body_bytes: u64) -> End {
        match error {
            WsError::Capacity(_) => End::Close(
                CloseCode::Size,
                format!("message larger than the limit of {} KiB (--max-body-kib)", max_body_bytes >> 10),
            ),
            WsError::Utf8(_) => End::Close(CloseCode::Invalid, "a text message is not valid UTF-8".into()),
            WsError::Protocol(tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
                End::Gone
            }
            WsError::Protocol(e) => End::Close(CloseCode::Protocol, format!("protocol error: {e}")),
            _ => End::Gone,
        }
    }
}

/// A close frame; its reason cut to the 123 bytes a close frame holds.
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code, reason: reason[..end].into() }
}

/// Queues `message`; a full queue (the client does not read) or a
/// finished writer ends the connection.
fn queue(out: &mpsc::Sender<Message>, message: Message) -> Result<(), End> {
    out.try_send(message).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => {
            crate::metrics::count(&crate::metrics::PUBLIC.websockets_dropped, 1);
            End::Close(
                CloseCode::Policy,
                format!("the client is not reading: {OUTGOING_QUEUE} messages wait to be sent"),
            )
        }
        mpsc::error::TrySendError::Closed(_) => End::Gone,
    })
}

/// Serves one upgraded connection until it closes.
async fn serve(app: Arc<App>, connection: Arc<Connection>, caller: rpc::Caller, socket: Socket) {
    let limits = app.config.ws;
    let peer = caller.addr;
    let (sink, mut stream) = socket.split();
    let (out, outgoing) = mpsc::channel(OUTGOING_QUEUE);
    let (close, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write(sink, outgoing, close_rx));
    let subscriptions = Arc::new(Subscriptions::default());
    let mut changes = app.registry.changes();
    let mut closing = connection.closing.clone();
    let mut calls: JoinSet<(Option<Vec<u8>>, Arc<Session>)> = JoinSet::new();
    let mut ping = tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    // Whether the client sent anything since the last ping, and whether
    // the loop stopped reading (at the in-flight cap) since: then its
    // silence is ours.
    let (mut heard, mut paused) = (true, false);
    let mut shutting_down = false;
    tracing::debug!(?peer, "WebSocket connection open");
    let _open = OpenConnection::count();

    let end = loop {
        if shutting_down && calls.is_empty() {
            break End::Close(CloseCode::Away, "server shutting down".into());
        }
        let reading = calls.len() < limits.max_in_flight && !shutting_down;
        paused |= !reading;
        tokio::select! {
            frame = stream.next(), if reading => match frame {
                Some(Ok(Message::Text(text))) => {
                    // A key removed since the upgrade calls no more: as for
                    // HTTP, "refused from the next request on".
                    if caller.key.as_ref().is_some_and(|key| !app.registry.keys().holds(key)) {
                        break End::Close(CloseCode::Policy, "the caller key was removed: connect again with another".into());
                    }
                    heard = true;
                    idle.as_mut().reset(Instant::now() + limits.idle_timeout);
                    let session = Arc::new(Session::new(subscriptions.clone()));
                    let caller = rpc::Caller { session: Some(session.clone()), ..caller.clone() };
                    let endpoint = app.rpc.clone();
                    calls.spawn(async move { (rpc::handle(&endpoint, &caller, text.as_bytes()).await, session) });
                }
                Some(Ok(Message::Binary(_))) => {
                    break End::Close(CloseCode::Unsupported, "binary messages are not accepted: send JSON-RPC as text".into());
                }
                Some(Ok(Message::Close(_))) => break End::ClosedByClient,
                // Pings (tungstenite answers them), pongs.
                Some(Ok(_)) => heard = true,
                Some(Err(e)) => break End::from_error(e, app.config.max_body_bytes),
                None => break End::Gone,
            },
            Some(done) = calls.join_next() => {
                idle.as_mut().reset(Instant::now() + limits.idle_timeout);
                let (answer, session) = match done {
                    Ok(done) => done,
                    // A panicking call is a bug of ours; its answer is lost, the connection goes on.
                    Err(e) => {
                        tracing::error!(?peer, "a WebSocket message's task failed: {e}");
                        continue;
                    }
                };
                if let Some(answer) = answer {
                    // rpc::handle answers JSON text; a non-UTF-8 answer would be our bug.
                    let text = String::from_utf8(answer).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    if let Err(end) = queue(&out, Message::Text(text.into())) {
                        break end;
                    }
                }
                session.announce();
            }
            change = changes.recv() => match change {
                Ok(change) => {
                    if let Err(end) = notify(&out, &subscriptions, &change) {
                        break end;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) if !subscriptions.is_empty() => {
                    crate::metrics::count(&crate::metrics::PUBLIC.websockets_dropped, 1);
                    break End::Close(
                        CloseCode::Policy,
                        format!("too slow: missed {missed} procedure changes; reconnect and subscribe again"),
                    );
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    break End::Close(CloseCode::Away, "server shutting down".into());
                }
            },
            _ = ping.tick() => {
                if !heard && !paused {
                    let reason = format!("no pong or other message within {} s", limits.ping_interval.as_secs());
                    break End::Close(CloseCode::Error, reason);
                }
                (heard, paused) = (false, false);
                if let Err(end) = queue(&out, Message::Ping(Bytes::new())) {
                    break end;
                }
            }
            () = &mut idle, if calls.is_empty() && subscriptions.is_empty() => {
                let reason = format!("idle for {} s (--ws-idle-timeout-s)", limits.idle_timeout.as_secs());
                break End::Close(CloseCode::Normal, reason);
            }
            // Stop reading; close once the calls running are answered.
            () = async { drop(closing.wait_for(|closing| *closing).await) }, if !shutting_down => shutting_down = true,
        }
    };

    // Calls still running are dropped with the connection.
    calls.abort_all();
    match end {
        End::Close(code, reason) => {
            if code == CloseCode::Policy {
                tracing::warn!(?peer, "dropping a WebSocket client: {reason}");
            } else {
                tracing::info!(?peer, code = u16::from(code), reason, "closing a WebSocket connection");
            }
            let _ = close.send(close_frame(code, &reason));
            let _ = tokio::time::timeout(CLOSE_WAIT, writer).await;
            // The client's answering close, then the end of the stream.
            let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = stream.next().await {} }).await;
        }
        End::ClosedByClient => {
            drop(close);
            let _ = tokio::time::timeout(CLOSE_WAIT, writer).await;
            // Reading on sends tungstenite's answering close.
            let _ = tokio::time::timeout(CLOSE_WAIT, stream.next()).await;
        }
        End::Gone => writer.abort(),
    }
    tracing::debug!(?peer, "WebSocket connection closed");
    drop(connection);
}

/// One open connection in `wasmrpc_websocket_connections`, for as long as
/// it lives (however its task ends).
struct OpenConnection;

impl OpenConnection {
    fn count() -> Self {
        crate::metrics::count(&crate::metrics::PUBLIC.websockets, 1);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::PUBLIC.websockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Queues the notification of `change` for each announced subscription.
fn notify(out: &mpsc::Sender<Message>, subscriptions: &Subscriptions, change: &Change) -> Result<(), End> {
    let ids = subscriptions.announced();
    if ids.is_empty() {
        return Ok(());
    }
    // Serialised once for every subscription of the connection.
    let result = serde_json::to_string(change).unwrap_or_else(|_| "null".into());
    for id in ids {
        queue(out, Message::Text(notification(&id, &result).into()))?;
    }
    Ok(())
}

/// The connection's writer: sends queued messages (a burst is flushed
/// once), until the queue closes or a close frame is asked for, which it
/// sends at once, also while a send is stuck on a client that does not
/// read.
async fn write(
    mut sink: SplitSink<Socket, Message>,
    mut outgoing: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<CloseFrame>,
) {
    loop {
        let message = tokio::select! {
            biased;
            frame = &mut close => return close_with(sink, frame.ok()).await,
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let closed = {
            let sent = async {
                sink.feed(message).await?;
                if outgoing.is_empty() {
                    sink.flush().await?;
                }
                Ok::<_, WsError>(())
            };
            tokio::select! {
                biased;
                frame = &mut close => Some(frame.ok()),
                sent = sent => match sent {
                    Ok(()) => None,
                    Err(_) => return,
                },
            }
        };
        if let Some(frame) = closed {
            return close_with(sink, frame).await;
        }
    }
}

/// Sends `frame` (if the loop asked for one), at most [`CLOSE_WAIT`].
async fn close_with(mut sink: SplitSink<Socket, Message>, frame: Option<CloseFrame>) {
    if let Some(frame) = frame {
        let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(frame)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_is_checked() {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_upgrade(&headers));
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        let refused = handshake(&headers).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(refused.headers()[SEC_WEBSOCKET_VERSION], "13");
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        // RFC 6455's own example.
        assert_eq!(handshake(&headers).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
        assert_eq!(handshake(&headers).unwrap_err().status(), StatusCode::BAD_REQUEST);
        headers.remove(CONNECTION);
        assert_eq!(handshake(&headers).unwrap_err().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_key_offered_as_a_subprotocol_stands_for_the_header_and_is_not_echoed() {
        let mut headers = HeaderMap::new();
        assert_eq!(subprotocol(&mut headers), None);
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("wasmrpc, wasmrpc.bearer.wrpc_abc-_9"));
        assert_eq!(subprotocol(&mut headers).unwrap(), "wasmrpc");
        assert_eq!(headers[AUTHORIZATION], "Bearer wrpc_abc-_9");
        // A header the client sent wins over the subprotocol.
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        let _ = subprotocol(&mut headers);
        assert_eq!(headers[AUTHORIZATION], "Bearer other");
        // Without `wasmrpc` offered there is nothing to agree on.
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("wasmrpc.bearer.k"));
        assert_eq!(subprotocol(&mut headers), None);
    }

    #[test]
    fn subscriptions_are_announced_after_their_answer_and_capped() {
        let subscriptions = Arc::new(Subscriptions::default());
        let session = Session::new(subscriptions.clone());
        let id: String = serde_json::from_str(&session.subscribe(r#"["procedures"]"#).unwrap()).unwrap();
        assert!(subscriptions.announced().is_empty());
        session.announce();
        assert_eq!(subscriptions.announced(), vec![id.clone()]);
        for bad in ["null", "[]", r#"["other"]"#, r#"{"topic":"procedures"}"#, r#"["procedures", 1]"#] {
            assert_eq!(session.subscribe(bad).unwrap_err().code(), -32602, "{bad}");
        }
        for _ in 1..MAX_SUBSCRIPTIONS {
            session.subscribe(r#"["procedures"]"#).unwrap();
        }
        assert_eq!(session.subscribe(r#"["procedures"]"#).unwrap_err().code(), -32005);
        assert_eq!(session.unsubscribe(&format!("[\"{id}\"]")).unwrap(), "true");
        assert_eq!(session.unsubscribe(&format!("[\"{id}\"]")).unwrap(), "false");
        assert_eq!(session.unsubscribe("[]").unwrap_err().code(), -32602);
    }

    #[test]
    fn over_http_the_methods_say_what_they_need() {
        let caller = rpc::Caller::default();
        let Err(RpcError::Session(refused)) = server_method(&caller, "subscribe", r#"["procedures"]"#) else {
            panic!("wasmrpc.subscribe over HTTP must be refused");
        };
        assert_eq!(refused.code(), -32600);
        assert!(refused.data().as_str().unwrap().contains("needs a WebSocket connection"));
        let Err(error) = server_method(&caller, "nope", "[]") else { panic!("wasmrpc.nope must not exist") };
        assert_eq!(error.code(), -32601);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let frame = close_frame(CloseCode::Policy, &"é".repeat(100));
        assert!(frame.reason.len() <= 123);
        assert_eq!(close_frame(CloseCode::Away, "bye").reason.as_str(), "bye");
    }
}
