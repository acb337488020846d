//! JSON-RPC 2.0: decoding a request body (single, batch, notification),
//! dispatching each call to its procedure, and encoding the answer.
//!
//! Parameters are never re-encoded: the raw JSON text of `params` goes to the
//! guest as it arrived, and the guest's result text goes back as it left it
//! (after a validity check). Ids are echoed byte for byte.
//!
//! Each call goes to [`Registry::call`]; a procedure's own calls
//! (`client.call`) go there too, from the sandbox, without coming here.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::registry::{CallContext, CallError, Registry};

/// Every JSON-RPC error the server answers with: the envelope's own, and
/// a call's, whose code, message and data come from [`CallError`]'s table.
#[derive(Debug)]
pub enum RpcError {
    /// -32700: the body is not JSON.
    ParseError,
    /// -32600: not a valid request object; `detail` names a limit, if one was hit.
    InvalidRequest { detail: Option<String> },
    /// -32603: the server broke the protocol (a bug of ours).
    Internal(Value),
    /// -32005: past the caller's rate limit (`crate::keys::admit`); the
    /// data says which limit and when to retry.
    LimitExceeded(Value),
    /// A call of `method` that failed: not found, stopped by the sandbox, or
    /// the procedure's own error (including its -32602), passed through.
    Call { method: String, error: CallError },
    /// -32006: the call's answer (`size` bytes) would take the request's
    /// answer past `--max-response-mib` (`limit` bytes).
    ResponseTooLarge { size: usize, limit: u64 },
    /// A server method of a WebSocket session (`wasmrpc.subscribe`,
    /// `wasmrpc.unsubscribe`) refused: [`crate::ws::SessionError`] has its
    /// code, message and data.
    Session(crate::ws::SessionError),
}

impl RpcError {
    pub fn code(&self) -> i32 {
        match self {
            RpcError::ParseError => -32700,
            RpcError::InvalidRequest { .. } => -32600,
            RpcError::Internal(_) => -32603,
            RpcError::LimitExceeded(_) => -32005,
            RpcError::Call { error, .. } => error.code(),
            RpcError::ResponseTooLarge { .. } => -32006,
            RpcError::Session(error) => error.code(),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            RpcError::ParseError => "Parse error",
            RpcError::InvalidRequest { .. } => "Invalid Request",
            RpcError::Internal(_) => "Internal error",
            RpcError::LimitExceeded(_) => "Limit exceeded",
            RpcError::Call { error, .. } => error.message(),
            RpcError::ResponseTooLarge { .. } => "Response too large",
            RpcError::Session(error) => error.message(),
        }
    }

    pub fn data(&self) -> Option<Value> {
        match self {
            RpcError::ParseError => None,
            RpcError::InvalidRequest { detail } => detail.clone().map(Value::String),
            RpcError::Internal(d) | RpcError::LimitExceeded(d) => Some(d.clone()),
            RpcError::Call { method, error } => error.data(method),
            RpcError::ResponseTooLarge { size, limit } => Some(json!({
                "reason": format!("the answer of {size} bytes would take the response past its limit of {limit} bytes (--max-response-mib); the call did run"),
                "size_bytes": size,
                "limit_bytes": limit,
            })),
            RpcError::Session(error) => Some(error.data()),
        }
    }
}

/// What the JSON-RPC layer answers with: the registry, and the rules every
/// request is held to, whichever transport (HTTP or WebSocket) it came by.
pub struct Endpoint {
    pub registry: Arc<Registry>,
    /// Calls in one batch (`--max-batch`).
    pub max_batch: usize,
    /// The buckets of client addresses, for calls without a key
    /// (`--rate-limit`); `None`: no limit, and nothing on the call path.
    pub rate_limit: Option<crate::keys::limit::Addresses>,
    /// Bytes of one request's answer, a batch's together (`--max-response-mib`).
    pub max_response_bytes: u64,
    /// Whether calls' spans are exported (`--otlp-endpoint`): the server
    /// sets it at start ([`crate::trace::Tracing::start`]); by default
    /// `traceparent` is only propagated.
    pub tracing: crate::trace::Tracing,
}

impl Endpoint {
    pub fn new(registry: Arc<Registry>, config: &crate::config::Config) -> Self {
        Endpoint {
            registry,
            max_batch: config.max_batch,
            rate_limit: config.rate_limit.map(crate::keys::limit::Addresses::new),
            max_response_bytes: config.max_response_bytes,
            tracing: crate::trace::Tracing::default(),
        }
    }
}

/// Who sent a request, as its transport found it: each call of the request
/// is checked, counted and traced as this caller's.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client's address, where the transport knows it.
    pub addr: Option<IpAddr>,
    /// The caller key the request presented ([`crate::keys::caller_key`]):
    /// the procedures it may call and its rate limit.
    pub key: Option<Arc<crate::keys::Key>>,
    /// The request's `traceparent` (on a WebSocket, the upgrade request's),
    /// if it had a valid one: [`crate::trace::from_headers`].
    pub trace: Option<crate::trace::Parent>,
    /// The WebSocket connection the request came on (`None` over HTTP):
    /// what `wasmrpc.*` methods act on ([`crate::ws::server_method`]).
    pub session: Option<Arc<crate::ws::Session>>,
}

/// Answers a request body: `None` when nothing is to be returned (notifications).
pub async fn handle(endpoint: &Arc<Endpoint>, caller: &Caller, body: &[u8]) -> Option<Vec<u8>> {
    answer(endpoint, caller, body).await.0
}

/// [`handle`], and `Some(wait)` when a rate limit let none of the
/// request's calls run (HTTP answers 429 with `Retry-After`).
pub async fn answer(endpoint: &Arc<Endpoint>, caller: &Caller, body: &[u8]) -> (Option<Vec<u8>>, Option<Duration>) {
    let mut refused = None;
    let body = respond(endpoint, caller, body, &mut refused).await;
    (body, refused)
}

async fn respond(
    endpoint: &Arc<Endpoint>,
    caller: &Caller,
    body: &[u8],
    refused: &mut Option<Duration>,
) -> Option<Vec<u8>> {
    let max_batch = endpoint.max_batch;
    let Ok(raw) = serde_json::from_slice::<&RawValue>(body) else {
        return Some(error_response(&RpcError::ParseError, None));
    };
    let limit = endpoint.max_response_bytes;
    if !raw.get().starts_with('[') {
        let limited = crate::keys::admit(endpoint, caller, 1).map(|limited| {
            *refused = Some(limited.retry_after);
            limited.data
        });
        return handle_one(endpoint, caller, raw, limited.as_ref()).await.map(|answer| within(answer, 0, limit));
    }
    let Ok(items) = serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()) else {
        return Some(error_response(&RpcError::ParseError, None));
    };
    if items.is_empty() {
        return Some(error_response(&RpcError::InvalidRequest { detail: None }, None));
    }
    if items.len() > max_batch {
        let detail = format!("the batch has {} requests; the limit is {max_batch} (--max-batch)", items.len());
        return Some(error_response(&RpcError::InvalidRequest { detail: Some(detail) }, None));
    }
    // Each call takes a token: the first ones that find one run.
    let limited = crate::keys::admit(endpoint, caller, items.len());
    if let Some(limited) = limited.as_ref().filter(|limited| limited.granted == 0) {
        *refused = Some(limited.retry_after);
    }
    // Calls of a batch run concurrently, each on its own task.
    let tasks: Vec<_> = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (endpoint, caller) = (endpoint.clone(), caller.clone());
            let over = limited.as_ref().filter(|limited| i >= limited.granted).map(|limited| limited.data.clone());
            tokio::spawn(async move { handle_one(&endpoint, &caller, &item, over.as_ref()).await })
        })
        .collect();
    let mut out = Vec::with_capacity(64 * tasks.len());
    out.push(b'[');
    for task in tasks {
        // A panicking task is a bug of ours; the client still gets an answer.
        let answer =
            task.await.unwrap_or_else(|e| Some(error_response(&RpcError::Internal(json!(e.to_string())), None)));
        if let Some(answer) = answer {
            // The brackets and commas are counted too: the limit is the body's.
            let answer = within(answer, out.len() + 2, limit);
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(&answer);
        }
    }
    if out.len() == 1 {
        return None;
    }
    out.push(b']');
    Some(out)
}

/// One request object of a body. Members are kept as raw JSON text.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    /// `Some("null")` for `"id": null`, `None` when there is no id (a notification).
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Whether `jsonrpc` is the string "2.0", however it is spelled in JSON
/// (`"2\u002e0"` is the same string).
fn is_version_2(jsonrpc: &RawValue) -> bool {
    jsonrpc.get() == "\"2.0\"" || serde_json::from_str::<String>(jsonrpc.get()).is_ok_and(|v| v == "2.0")
}

/// Ids may be strings, numbers or null.
fn valid_id(id: &RawValue) -> bool {
    matches!(id.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9' | b'n'))
}

/// Answers one request object; `over_limit` (-32005's data) when a rate
/// limit refused it: then it is checked but not run.
async fn handle_one(
    endpoint: &Arc<Endpoint>,
    caller: &Caller,
    raw: &RawValue,
    over_limit: Option<&Value>,
) -> Option<Vec<u8>> {
    let invalid = RpcError::InvalidRequest { detail: None };
    // A request is an object; serde would also read the struct from an
    // array, member by member in order.
    if !raw.get().starts_with('{') {
        return Some(error_response(&invalid, None));
    }
    let Ok(envelope) = serde_json::from_str::<Envelope>(raw.get()) else {
        return Some(error_response(&invalid, None));
    };
    let id = envelope.id.filter(|id| valid_id(id));
    if envelope.id.is_some() && id.is_none() {
        return Some(error_response(&invalid, None));
    }
    let method = envelope.method.and_then(|m| serde_json::from_str::<String>(m.get()).ok());
    let params_ok = envelope.params.is_none_or(|p| p.get().starts_with(['[', '{']));
    let (Some(method), true, true) = (method, params_ok, envelope.jsonrpc.is_some_and(is_version_2)) else {
        return Some(error_response(&invalid, id));
    };
    if let Some(data) = over_limit {
        // Not run; a notification answers nothing.
        return Some(error_response(&RpcError::LimitExceeded(data.clone()), Some(id?)));
    }
    let params = envelope.params.map_or("null", RawValue::get);
    let result = dispatch(endpoint, caller, &method, params).await;
    let id = id?; // a notification: run, but answer nothing
    Some(match result {
        Ok(json) => result_response(&json, id),
        Err(err) => error_response(&err, Some(id)),
    })
}

/// Calls `method` (`module.method`, or `name` for `name.name`) with `params`.
async fn dispatch(endpoint: &Arc<Endpoint>, caller: &Caller, method: &str, params: &str) -> Result<String, RpcError> {
    if let Some(name) = method.strip_prefix("wasmrpc.") {
        return crate::ws::server_method(caller, name, params);
    }
    let registry = &endpoint.registry;
    let outcome = match method.strip_prefix("rpc.") {
        Some("discover") => return Ok(discover(registry, caller).to_string()),
        Some(_) => Err(CallError::MethodNotFound),
        // A procedure the caller's key does not cover does not exist for it.
        None if !crate::keys::covers(caller, method) => Err(CallError::MethodNotFound),
        None => {
            let span = endpoint.tracing.top_level(caller.trace.as_ref());
            let ctx = CallContext::new(crate::metrics::next_request_id()).with_trace(span);
            registry.call(method, params, ctx).await
        }
    };
    outcome.map_err(|error| RpcError::Call { method: method.to_owned(), error })
}

/// `answer`, or, if it would take a response already `used` bytes long past
/// `limit`, the -32006 error for its id in its place. Never a cut text: the
/// client learns which call's answer was too large. An error answer is
/// small and always fits (a batch of 100 of them is some 30 KB).
fn within(answer: Vec<u8>, used: usize, limit: u64) -> Vec<u8> {
    if (used + answer.len()) as u64 <= limit {
        return answer;
    }
    // The id is the answer's last member (`result_response`, `error_response`),
    // and `,"id":` cannot occur inside it: a quote in a JSON string is `\"`.
    let id = answer
        .windows(6)
        .rposition(|w| w == b",\"id\":")
        .and_then(|at| std::str::from_utf8(&answer[at + 6..answer.len() - 1]).ok())
        .and_then(|id| RawValue::from_string(id.to_owned()).ok());
    error_response(&RpcError::ResponseTooLarge { size: answer.len(), limit }, id.as_deref())
}

/// Whether `value` is a whole, valid answer to a request body: one JSON-RPC
/// 2.0 response object, or a non-empty array of them. The property tests
/// and the fuzzers hold every answer to this.
pub fn is_valid_answer(value: &Value) -> bool {
    fn is_response(value: &Value) -> bool {
        let Some(object) = value.as_object() else { return false };
        let id_ok = matches!(object.get("id"), Some(Value::Null | Value::Number(_) | Value::String(_)));
        let outcome_ok = match (object.get("result"), object.get("error")) {
            (Some(_), None) => true,
            (None, Some(error)) => error["code"].is_i64() && error["message"].is_string(),
            _ => false,
        };
        object.get("jsonrpc").and_then(Value::as_str) == Some("2.0") && id_ok && outcome_ok && object.len() == 3
    }
    match value {
        Value::Array(items) => !items.is_empty() && items.iter().all(is_response),
        other => is_response(other),
    }
}

/// The OpenRPC document of every deployed method the caller may call.
fn discover(registry: &Registry, caller: &Caller) -> Value {
    let mut methods = registry.method_objects();
    if caller.key.is_some() {
        methods.retain(|method| crate::keys::covers(caller, method["name"].as_str().unwrap_or_default()));
    }
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "wasmrpc",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Procedures deployed on this wasmrpc server; each call runs in a fresh WebAssembly instance.",
        },
        "methods": methods,
    })
}

/// A successful response: the result's JSON text and the request's id, as given.
pub fn result_response(result: &str, id: &RawValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(result.len() + id.get().len() + 32);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"result\":");
    out.extend_from_slice(result.as_bytes());
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.push(b'}');
    out
}

/// An error response; `id` is null where the request's id could not be read.
pub fn error_response(err: &RpcError, id: Option<&RawValue>) -> Vec<u8> {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), err.code().into());
    error.insert("message".into(), err.message().into());
    if let Some(data) = err.data() {
        error.insert("data".into(), data);
    }
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"error\":");
    // Serialising a map of plain values cannot fail.
    let _ = serde_json::to_writer(&mut out, &error);
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code() {
        let call = |error| RpcError::Call { method: "a.b".into(), error };
        let cases = [
            (RpcError::ParseError, -32700),
            (RpcError::InvalidRequest { detail: None }, -32600),
            (call(CallError::MethodNotFound), -32601),
            (RpcError::Internal(Value::Null), -32603),
            (RpcError::LimitExceeded(Value::Null), -32005),
            (call(CallError::Overloaded(1)), -32003),
            (call(CallError::Guest { code: 7, message: "m".into(), data: None }), 7),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err:?}");
        }
    }

    #[test]
    fn spec_errors_have_exact_messages_and_no_data() {
        let out = error_response(&RpcError::ParseError, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#
        );
        let id = RawValue::from_string("\"1\"".into()).unwrap();
        let not_found = RpcError::Call { method: "a.b".into(), error: CallError::MethodNotFound };
        let out = error_response(&not_found, Some(&id));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"1"}"#
        );
    }

    #[test]
    fn valid_answers_are_told_apart() {
        assert!(is_valid_answer(&json!({"jsonrpc": "2.0", "result": null, "id": 1})));
        assert!(is_valid_answer(&json!([{"jsonrpc": "2.0", "error": {"code": -1, "message": "m"}, "id": null}])));
        assert!(!is_valid_answer(&json!([])));
        assert!(!is_valid_answer(&json!({"jsonrpc": "2.0", "result": 1, "error": {}, "id": 1})));
        assert!(!is_valid_answer(&json!({"jsonrpc": "2.0", "result": 1, "id": true})));
        assert!(!is_valid_answer(&json!({"jsonrpc": "1.0", "result": 1, "id": 1})));
    }

    #[test]
    fn an_answer_past_the_limit_becomes_an_error_for_its_id() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        let big = format!("\"{}\"", "x".repeat(100));
        for id in ["7", "null", r#""a,\"id\":1""#, "-1.5e3"] {
            let answer = result_response(&big, &raw(id));
            assert_eq!(within(answer.clone(), 0, 1000), answer);
            let refused: Value = serde_json::from_slice(&within(answer, 0, 100)).unwrap();
            assert_eq!(refused["error"]["code"], -32006, "{refused}");
            assert_eq!(refused["id"], serde_json::from_str::<Value>(id).unwrap());
            assert_eq!(refused["error"]["data"]["limit_bytes"], 100);
            assert!(is_valid_answer(&refused));
        }
        // What the batch has used counts.
        let answer = result_response("1", &raw("1"));
        assert_eq!(within(answer.clone(), 990, 1000)[..], *error_response_for_test(answer.len(), 1000, "1"));
    }

    fn error_response_for_test(size: usize, limit: u64, id: &str) -> Vec<u8> {
        let id = RawValue::from_string(id.to_owned()).unwrap();
        error_response(&RpcError::ResponseTooLarge { size, limit }, Some(&id))
    }

    #[test]
    fn the_version_is_read_as_a_json_string() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        assert!(is_version_2(&raw("\"2.0\"")));
        assert!(is_version_2(&raw("\"2\\u002e0\"")));
        for bad in ["\"2.00\"", "2.0", "\"1.0\"", "null"] {
            assert!(!is_version_2(&raw(bad)), "{bad}");
        }
    }

    #[test]
    fn ids_are_echoed_exactly() {
        let id = RawValue::from_string("12345678901234567890.50".into()).unwrap();
        assert!(valid_id(&id));
        let out = result_response("true", &id);
        assert!(String::from_utf8(out).unwrap().ends_with(r#""id":12345678901234567890.50}"#));
        for bad in ["{}", "[]", "true"] {
            assert!(!valid_id(&RawValue::from_string(bad.into()).unwrap()));
        }
    }
}
