//! `wasmrpc-client`: the client half of wasmrpc. It sends JSON-RPC 2.0 calls
//! to a wasmrpc server over HTTP or WebSocket and turns the answers into
//! typed results or errors; `wasmrpc stub --lang rust` generates typed
//! functions on top of it.
//!
//! ```no_run
//! # async fn example() -> Result<(), wasmrpc_client::Error> {
//! use wasmrpc_client::Client;
//!
//! let client = Client::new("http://127.0.0.1:8080");
//! let sum: i64 = client.call("math.add", serde_json::json!({"a": 2, "b": 3})).await?;
//! assert_eq!(sum, 5);
//! match client.call::<f64>("math.divide", serde_json::json!({"a": 1, "b": 0})).await {
//!     Err(wasmrpc_client::Error::Rpc(e)) => assert_eq!(e.code, 1),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! * [`Client`] is async (tokio). The `blocking` feature adds
//!   `blocking::Client` (feature `blocking`), the same calls without async.
//! * A JSON-RPC error answer is [`Error::Rpc`] with the server's `code`,
//!   `message` and `data`; a call that got no answer is
//!   [`Error::Transport`].
//! * [`Call`] is what both clients and a [`Batch`] have in common: generated
//!   stubs are written against it, so one generated file serves the async
//!   client, the blocking one and batches.
//! * [`http`] is the plain HTTP transport underneath (the `wasmrpc` command
//!   line's admin requests use it too).
//! * A `ws://` URL makes a client that keeps one WebSocket connection to the
//!   server: its calls go over it concurrently, answers are matched by id,
//!   and a dropped connection is made again at the next call (the calls in
//!   flight fail with [`Error::Transport`]).
//! * `https://` and `wss://` URLs go over TLS (rustls, HTTP/1.1), the
//!   server's certificate checked against the Mozilla roots built in, the
//!   PEM file the environment variable `SSL_CERT_FILE` names (if set; read
//!   at a client's first TLS connection, once for all the clients of the
//!   default trust), and the certificates given to
//!   [`Client::with_root_certificate`], for a server whose certificate a
//!   private authority signed. One that does not verify fails the call with
//!   [`TransportError::Tls`], which says why. There is no way to skip
//!   verification.

pub mod http;
mod tls;
mod ws;

#[cfg(feature = "blocking")]
pub mod blocking;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use http::TransportError;
/// Re-exported for generated stubs, which need no other dependency.
pub use serde;
/// Re-exported for generated stubs, which need no other dependency.
pub use serde_json;

/// Where `wasmrpc serve` listens unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How long a call (or a whole batch) may take by default, answer included:
/// well past the server's own default time limit per call (2 s), so a slow
/// call ends with the server's -32001, not with a client-side timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON-RPC error answer: the procedure's own error or the server's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// Why a call has no result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// No answer: the server is unreachable, the connection broke, or the
    /// time limit passed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An HTTP answer that holds no JSON-RPC response (a proxy's error page,
    /// a wrong URL).
    #[error("the server answered HTTP {status} without a JSON-RPC response: {body}")]
    Http { status: u16, body: String },
    /// An answer that is JSON, but not the JSON-RPC response it should be.
    #[error("the server's answer is not a JSON-RPC response ({reason}): {body}")]
    InvalidResponse { reason: String, body: String },
    /// A result that does not have the type the caller expects.
    #[error(
        "the result of `{method}` is not what the caller expects: {reason} (if a typed stub made \
         the call, regenerate it with `wasmrpc stub`: the procedure may have changed)"
    )]
    Decode { method: String, reason: String },
    /// Params that cannot be sent: they must serialize to a JSON object
    /// (by name), an array (by position) or nothing.
    #[error("cannot send the params of `{method}`: {reason}")]
    Params { method: String, reason: String },
}

impl Error {
    /// The JSON-RPC error, if the server answered with one.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            Error::Rpc(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the call got no answer at all.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport(_))
    }
}

/// Something that calls JSON-RPC methods: [`Client`], `blocking::Client`
/// or a [`Batch`]. What a call gives back depends on the caller: a future,
/// a result, or a [`Pending`] answer of a batch.
pub trait Call {
    /// What a call of a method with a result of type `T` gives back.
    type Output<T: DeserializeOwned + Send + 'static>;

    /// Calls `method` with `params`: a struct or map (sent by name), a
    /// tuple or sequence (by position), or `()` for none.
    fn call<T: DeserializeOwned + Send + 'static>(&self, method: &str, params: impl Serialize) -> Self::Output<T>;
}

/// A call in flight on the async [`Client`].
pub type CallFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

/// An async JSON-RPC client of one wasmrpc server. Cloning it shares its
/// connections.
#[derive(Clone, Debug)]
pub struct Client {
    transport: Transport,
    endpoint: String,
    authorization: Option<String>,
    next_id: Arc<AtomicU64>,
}

/// How a client reaches its server.
#[derive(Clone, Debug)]
enum Transport {
    /// One POST per call or batch (shared: a client is cloned per call).
    Http(Arc<http::HttpClient>),
    /// One WebSocket connection for every call.
    WebSocket(ws::WsClient),
}

impl Client {
    /// A client of the server at `url` (`http://127.0.0.1:8080`; JSON-RPC
    /// goes to its `/rpc`, which may also be given). A `ws://` URL makes the
    /// calls over one WebSocket connection (see the [crate] docs).
    pub fn new(url: &str) -> Client {
        let url = url.trim_end_matches('/');
        let endpoint = if url.ends_with("/rpc") { url.to_owned() } else { format!("{url}/rpc") };
        let scheme = endpoint.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        let transport = match scheme.as_deref() {
            Some("ws" | "wss") => Transport::WebSocket(ws::WsClient::new(endpoint.clone(), DEFAULT_TIMEOUT)),
            _ => Transport::Http(Arc::new(http::HttpClient::new().with_timeout(DEFAULT_TIMEOUT))),
        };
        Client { transport, endpoint, authorization: None, next_id: Arc::new(AtomicU64::new(1)) }
    }

    /// The same client, calling with a caller key (`wasmrpc keys create`):
    /// it is sent as `Authorization: Bearer <key>`; over WebSocket in the
    /// handshake, on a connection of this client's own.
    pub fn with_key(self, key: &str) -> Client {
        self.with_admin_token(key)
    }

    /// The same client, sending `Authorization: Bearer <token>` (the server's
    /// admin token, which is also a key to every procedure). Over WebSocket
    /// it is sent in the handshake, on a connection of this client's own.
    pub fn with_admin_token(mut self, token: &str) -> Client {
        self.authorization = Some(format!("Bearer {token}"));
        if let Transport::WebSocket(ws) = self.transport {
            self.transport = Transport::WebSocket(ws.unshared());
        }
        self
    }

    /// The same client, on connections of its own, also trusting the
    /// certificates in `pem` as roots for `https://` and `wss://`: one or
    /// more `-----BEGIN CERTIFICATE-----` blocks, such as the certificate
    /// of the authority that signed a server's private certificate (see
    /// the [crate] docs for what is trusted anyway). Fails if `pem` holds
    /// no usable certificate.
    ///
    /// ```no_run
    /// # fn example() -> std::io::Result<()> {
    /// let pem = std::fs::read("internal-ca.pem")?;
    /// let client = wasmrpc_client::Client::new("https://rpc.internal:8443").with_root_certificate(&pem)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_root_certificate(mut self, pem: &[u8]) -> std::io::Result<Client> {
        self.transport = match self.transport {
            Transport::Http(http) => Transport::Http(Arc::new(Arc::unwrap_or_clone(http).with_root_certificate(pem)?)),
            Transport::WebSocket(ws) => Transport::WebSocket(ws.with_root_certificate(pem)?),
        };
        Ok(self)
    }

    /// The same client with another time limit per call or batch
    /// ([`DEFAULT_TIMEOUT`] otherwise).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.transport = match self.transport {
            Transport::Http(http) => Transport::Http(Arc::new(Arc::unwrap_or_clone(http).with_timeout(timeout))),
            Transport::WebSocket(ws) => Transport::WebSocket(ws.with_timeout(timeout)),
        };
        self
    }

    /// The URL the JSON-RPC requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `method` with `params` (see [`Call::call`]) and returns the
    /// result as a `T` (`serde_json::Value` for any JSON).
    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: impl Serialize) -> Result<T, Error> {
        let params = params_value(method, params)?;
        let value = self.call_value(method, params).await?;
        decode(method, value)
    }

    /// A batch of calls, sent in one request by [`Batch::send`].
    pub fn batch(&self) -> Batch<'_, Client> {
        Batch::new(self)
    }

    async fn call_value(&self, method: &str, params: Option<Value>) -> Result<Value, Error> {
        let id = self.next_ids(1);
        let response = self.send(request(method, params, id), id).await?;
        outcome(response, id)?.map_err(Error::Rpc)
    }

    /// The first of `count` request ids no other call of this client (or
    /// its clones) uses: calls on one WebSocket connection are told apart
    /// by them.
    fn next_ids(&self, count: u64) -> u64 {
        self.next_id.fetch_add(count, Ordering::Relaxed)
    }

    /// Sends one JSON-RPC request body (a request with id `id`, or a batch
    /// whose first id is `id`) and returns the JSON answer.
    async fn send(&self, body: Value, id: u64) -> Result<Value, Error> {
        let http = match &self.transport {
            Transport::Http(http) => http,
            Transport::WebSocket(ws) => return ws.exchange(&body, id, self.authorization.as_deref()).await,
        };
        let mut headers = vec![("content-type", "application/json")];
        if let Some(authorization) = &self.authorization {
            headers.push(("authorization", authorization.as_str()));
        }
        let answer = http.send(Method::POST, &self.endpoint, &headers, body.to_string()).await?;
        // Some refusals (413, 408) still carry a JSON-RPC error: use it.
        match answer.json() {
            Ok(value) if value.is_object() || value.is_array() => Ok(value),
            _ if !answer.status.is_success() => {
                Err(Error::Http { status: answer.status.as_u16(), body: answer.text() })
            }
            _ => Err(Error::InvalidResponse { reason: "expected a JSON object or array".into(), body: answer.text() }),
        }
    }
}

impl Call for Client {
    type Output<T: DeserializeOwned + Send + 'static> = CallFuture<T>;

    fn call<T: DeserializeOwned + Send + 'static>(&self, method: &str, params: impl Serialize) -> CallFuture<T> {
        let client = self.clone();
        let method = method.to_owned();
        let params = params_value(&method, params);
        Box::pin(async move {
            let value = client.call_value(&method, params?).await?;
            decode(&method, value)
        })
    }
}

/// Several calls sent in one HTTP request. Each call gives a [`Pending`]
/// handle; [`Batch::send`] returns the [`Answers`], from which each handle
/// takes its typed result.
///
/// ```no_run
/// # async fn example(client: wasmrpc_client::Client) -> Result<(), wasmrpc_client::Error> {
/// use wasmrpc_client::Call as _;
///
/// let batch = client.batch();
/// let sum = batch.call::<i64>("math.add", [2, 3]);
/// let quotient = batch.call::<f64>("math.divide", [1, 0]);
/// let answers = batch.send().await?;
/// assert_eq!(answers.get(sum)?, 5);
/// assert_eq!(answers.get(quotient).unwrap_err().rpc().map(|e| e.code), Some(1));
/// # Ok(())
/// # }
/// ```
pub struct Batch<'c, C> {
    client: &'c C,
    calls: Mutex<Vec<Queued>>,
}

impl<C> std::fmt::Debug for Batch<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("calls", &self.lock().len()).finish_non_exhaustive()
    }
}

/// One call of a batch, or why its params cannot be sent.
type Queued = (String, Result<Option<Value>, Error>);

impl<'c, C> Batch<'c, C> {
    fn new(client: &'c C) -> Self {
        Batch { client, calls: Mutex::new(Vec::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn len(&self) -> u64 {
        self.lock().len() as u64
    }

    /// The calls, checked, and the body of the request that sends them,
    /// with ids from `first_id` on.
    fn into_request(self, first_id: u64) -> Result<(Vec<String>, Value), Error> {
        let calls = self.calls.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut methods = Vec::with_capacity(calls.len());
        let mut requests = Vec::with_capacity(calls.len());
        for (index, (method, params)) in calls.into_iter().enumerate() {
            requests.push(request(&method, params?, first_id + index as u64));
            methods.push(method);
        }
        Ok((methods, Value::Array(requests)))
    }
}

impl<C> Call for Batch<'_, C> {
    type Output<T: DeserializeOwned + Send + 'static> = Pending<T>;

    fn call<T: DeserializeOwned + Send + 'static>(&self, method: &str, params: impl Serialize) -> Pending<T> {
        let mut calls = self.lock();
        calls.push((method.to_owned(), params_value(method, params)));
        Pending { index: calls.len() - 1, result: PhantomData }
    }
}

impl Batch<'_, Client> {
    /// Sends every call in one request. An empty batch sends nothing.
    pub async fn send(self) -> Result<Answers, Error> {
        let client = self.client;
        let first_id = client.next_ids(self.len());
        let (methods, body) = self.into_request(first_id)?;
        if methods.is_empty() {
            return Ok(Answers { methods, outcomes: Vec::new() });
        }
        let response = client.send(body, first_id).await?;
        Answers::from_response(methods, response, first_id)
    }
}

/// The handle of one call in a [`Batch`]: [`Answers::get`] takes its result.
pub struct Pending<T> {
    index: usize,
    result: PhantomData<fn() -> T>,
}

impl<T> Clone for Pending<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Pending<T> {}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("index", &self.index).finish()
    }
}

/// The answers to a batch, in the order of its calls.
#[derive(Debug)]
pub struct Answers {
    methods: Vec<String>,
    outcomes: Vec<Result<Value, RpcError>>,
}

impl Answers {
    /// The answers in `response` to the calls `methods`, sent with ids
    /// from `first_id` on.
    fn from_response(methods: Vec<String>, response: Value, first_id: u64) -> Result<Answers, Error> {
        let responses = match response {
            Value::Array(responses) => responses,
            // A batch refused whole (longer than the server's limit) is
            // answered with one error.
            other => {
                let body = other.to_string();
                return Err(outcome(other, 0)?.err().map_or_else(
                    || Error::InvalidResponse { reason: "a batch needs an array of answers".into(), body },
                    Error::Rpc,
                ));
            }
        };
        let mut outcomes: Vec<Option<Result<Value, RpcError>>> = vec![None; methods.len()];
        for response in responses {
            let id = response.get("id").and_then(Value::as_u64).unwrap_or(0);
            let slot = id.checked_sub(first_id).and_then(|i| usize::try_from(i).ok()).and_then(|i| outcomes.get_mut(i));
            let Some(slot) = slot else {
                return Err(Error::InvalidResponse {
                    reason: format!("an answer with unknown id {id}"),
                    body: response.to_string(),
                });
            };
            *slot = Some(outcome(response, id)?);
        }
        let outcomes = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| {
                outcome.ok_or_else(|| Error::InvalidResponse {
                    reason: format!("no answer to call {} (`{}`)", index + 1, methods[index]),
                    body: String::new(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Answers { methods, outcomes })
    }

    /// The typed result of the call `pending` stands for.
    pub fn get<T: DeserializeOwned>(&self, pending: Pending<T>) -> Result<T, Error> {
        let (Some(method), Some(outcome)) = (self.methods.get(pending.index), self.outcomes.get(pending.index)) else {
            return Err(Error::Decode {
                method: format!("call {}", pending.index + 1),
                reason: format!("this batch had {} calls: the handle is from another batch", self.methods.len()),
            });
        };
        decode(method, outcome.clone().map_err(Error::Rpc)?)
    }

    /// How many calls the batch had.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether the batch had no calls.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// Every outcome as JSON, in the order of the calls.
    pub fn into_values(self) -> Vec<Result<Value, RpcError>> {
        self.outcomes
    }
}

/// The JSON of `params`: `None` for nothing (`()`, `None`, unit structs).
fn params_value(method: &str, params: impl Serialize) -> Result<Option<Value>, Error> {
    let params_error = |reason: String| Error::Params { method: method.to_owned(), reason };
    match serde_json::to_value(params).map_err(|e| params_error(e.to_string()))? {
        Value::Null => Ok(None),
        value @ (Value::Array(_) | Value::Object(_)) => Ok(Some(value)),
        other => Err(params_error(format!(
            "they are `{other}`, but JSON-RPC params are an object (by name) or an array (by position)"
        ))),
    }
}

fn request(method: &str, params: Option<Value>, id: u64) -> Value {
    let mut request = json!({"jsonrpc": "2.0", "method": method, "id": id});
    if let Some(params) = params {
        request["params"] = params;
    }
    request
}

/// The result or error of JSON-RPC response `response` to the request with
/// `id` (0: any id, for an error the server could not tie to a request).
fn outcome(response: Value, id: u64) -> Result<Result<Value, RpcError>, Error> {
    let invalid =
        |reason: &str, response: &Value| Error::InvalidResponse { reason: reason.into(), body: response.to_string() };
    if response.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("no \"jsonrpc\": \"2.0\"", &response));
    }
    let mut object = match response {
        Value::Object(object) => object,
        other => return Err(invalid("not an object", &other)),
    };
    if let Some(error) = object.remove("error") {
        let error: RpcError = serde_json::from_value(error.clone())
            .map_err(|e| invalid(&format!("its error is malformed: {e}"), &error))?;
        return Ok(Err(error));
    }
    let answered = object.get("id").and_then(Value::as_u64);
    if id != 0 && answered != Some(id) {
        return Err(invalid(&format!("it answers id {answered:?}, not {id}"), &Value::Object(object)));
    }
    match object.remove("result") {
        Some(result) => Ok(Ok(result)),
        None => Err(invalid("neither a result nor an error", &Value::Object(object))),
    }
}

fn decode<T: DeserializeOwned>(method: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Decode { method: method.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_objects_arrays_or_nothing() {
        assert_eq!(params_value("m", json!({"a": 1})).unwrap(), Some(json!({"a": 1})));
        assert_eq!(params_value("m", (1, 2)).unwrap(), Some(json!([1, 2])));
        assert_eq!(params_value("m", ()).unwrap(), None);
        let err = params_value("m", 5).unwrap_err();
        assert!(err.to_string().contains("cannot send the params of `m`: they are `5`"), "{err}");
    }

    #[test]
    fn responses_become_results_or_rpc_errors() {
        let ok = json!({"jsonrpc": "2.0", "result": 5, "id": 3});
        assert_eq!(outcome(ok, 3).unwrap(), Ok(json!(5)));
        let err =
            json!({"jsonrpc": "2.0", "error": {"code": 1, "message": "division by zero", "data": {"a": 1.0}}, "id": 3});
        let err = outcome(err, 3).unwrap().unwrap_err();
        assert_eq!((err.code, err.message.as_str(), err.data), (1, "division by zero", Some(json!({"a": 1.0}))));
        let wrong_id = json!({"jsonrpc": "2.0", "result": 5, "id": 4});
        assert!(matches!(outcome(wrong_id, 3), Err(Error::InvalidResponse { .. })));
        assert!(matches!(outcome(json!({"result": 5, "id": 3}), 3), Err(Error::InvalidResponse { .. })));
    }

    #[test]
    fn batch_answers_are_matched_by_id_and_typed() {
        let client = Client::new("http://127.0.0.1:9");
        let batch = client.batch();
        let sum = batch.call::<i64>("math.add", [2, 3]);
        let quotient = batch.call::<f64>("math.divide", [1, 0]);
        let (methods, body) = batch.into_request(1).unwrap();
        assert_eq!(body[1], json!({"jsonrpc": "2.0", "method": "math.divide", "params": [1, 0], "id": 2}));
        // Out of order, as a server may answer.
        let response = json!([
            {"jsonrpc": "2.0", "error": {"code": 1, "message": "division by zero"}, "id": 2},
            {"jsonrpc": "2.0", "result": 5, "id": 1},
        ]);
        let answers = Answers::from_response(methods, response, 1).unwrap();
        assert_eq!(answers.get(sum).unwrap(), 5);
        assert_eq!(answers.get(quotient).unwrap_err().rpc().unwrap().code, 1);
        let wrong_type = Pending::<String> { index: 0, result: PhantomData };
        assert!(matches!(answers.get(wrong_type), Err(Error::Decode { .. })));
    }

    #[test]
    fn a_batch_refused_whole_is_its_error() {
        let refused = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null});
        let err = Answers::from_response(vec!["a.b".into()], refused, 1).unwrap_err();
        assert_eq!(err.rpc().unwrap().code, -32600);
    }

    #[test]
    fn the_endpoint_is_the_servers_rpc_path() {
        assert_eq!(Client::new("http://127.0.0.1:8080").endpoint(), "http://127.0.0.1:8080/rpc");
        assert_eq!(Client::new("http://127.0.0.1:8080/").endpoint(), "http://127.0.0.1:8080/rpc");
        assert_eq!(Client::new("http://h:1/rpc").endpoint(), "http://h:1/rpc");
    }

    #[tokio::test]
    async fn no_server_is_a_transport_error() {
        // Port 9 on loopback: nothing listens there.
        let err = Client::new("http://127.0.0.1:9").call::<Value>("math.add", [1, 2]).await.unwrap_err();
        assert!(err.is_transport(), "{err:?}");
        assert!(err.to_string().contains("cannot reach the server at http://127.0.0.1:9/rpc"), "{err}");
    }
}
