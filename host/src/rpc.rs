//! JSON-RPC 2.0: decoding a request body (single, batch, notification),
//! dispatching each call to its procedure, and encoding the answer.
//!
//! Parameters are never re-encoded: the raw JSON text of `params` goes to the
//! guest as it arrived, and the guest's result text goes back as it left it
//! (after a validity check). Ids are echoed byte for byte.
//!
//! A procedure's own calls (`client.call`) come here too, through the
//! [`Client`] implementation at the end: the same method names, errors and
//! log line as a request's call, without the envelope.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::logtext::loggable;
use crate::registry::{BoxFuture, CallContext, CallError, Client, ErrorObject, Registry};

/// Every JSON-RPC error the server answers with, one variant per code.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcError {
    /// -32700: the body is not JSON.
    ParseError,
    /// -32600: not a valid request object; `detail` names a limit, if one was hit.
    InvalidRequest { detail: Option<String> },
    /// -32601: no such module, or no such method in it.
    MethodNotFound,
    /// -32603: the server or the procedure broke the protocol.
    Internal(Value),
    /// -32000: the procedure trapped.
    Trapped(Value),
    /// -32001: the procedure ran past its time limit.
    TimedOut(Value),
    /// -32002: the procedure tried to grow past its memory limit.
    MemoryLimit(Value),
    /// -32003: too many calls at once.
    Overloaded(Value),
    /// -32004: a nested call past the call depth or nested-call limit;
    /// the message names the limit.
    LimitReached { message: &'static str, data: Value },
    /// The procedure's own error (including its -32602), passed through unchanged.
    Procedure { code: i32, message: String, data: Option<Value> },
}

impl RpcError {
    pub fn code(&self) -> i32 {
        match self {
            RpcError::ParseError => -32700,
            RpcError::InvalidRequest { .. } => -32600,
            RpcError::MethodNotFound => -32601,
            RpcError::Internal(_) => -32603,
            RpcError::Trapped(_) => -32000,
            RpcError::TimedOut(_) => -32001,
            RpcError::MemoryLimit(_) => -32002,
            RpcError::Overloaded(_) => -32003,
            RpcError::LimitReached { .. } => -32004,
            RpcError::Procedure { code, .. } => *code,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            RpcError::ParseError => "Parse error",
            RpcError::InvalidRequest { .. } => "Invalid Request",
            RpcError::MethodNotFound => "Method not found",
            RpcError::Internal(_) => "Internal error",
            RpcError::Trapped(_) => "Procedure trapped",
            RpcError::TimedOut(_) => "Procedure timed out",
            RpcError::MemoryLimit(_) => "Procedure exceeded its memory limit",
            RpcError::Overloaded(_) => "Server overloaded",
            RpcError::LimitReached { message, .. } => message,
            RpcError::Procedure { message, .. } => message,
        }
    }

    pub fn data(&self) -> Option<Value> {
        match self {
            RpcError::ParseError | RpcError::MethodNotFound => None,
            RpcError::InvalidRequest { detail } => detail.clone().map(Value::String),
            RpcError::Internal(d)
            | RpcError::Trapped(d)
            | RpcError::TimedOut(d)
            | RpcError::MemoryLimit(d)
            | RpcError::Overloaded(d)
            | RpcError::LimitReached { data: d, .. } => Some(d.clone()),
            RpcError::Procedure { data, .. } => data.clone(),
        }
    }

    /// The error object a procedure gets for a nested call of `method` that
    /// ended in `self`: what an outside client would get, except that "method
    /// not found" names the method (a procedure's caller cannot see which
    /// of its calls failed).
    fn into_object(self, method: &str) -> ErrorObject {
        let data = match &self {
            RpcError::MethodNotFound => Some(json!({ "method": method })),
            other => other.data(),
        };
        ErrorObject { code: self.code(), message: self.message().to_owned(), data: data.map(|d| d.to_string()) }
    }

    /// The error for a call of `method` that ended in `err`.
    fn from_call(err: CallError, method: &str) -> Self {
        let detail = |extra: Value| {
            let mut data = json!({ "method": method, "reason": err.to_string() });
            if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
                data.extend(extra);
            }
            data
        };
        match &err {
            CallError::Trapped { stderr, .. } if !stderr.is_empty() => {
                RpcError::Trapped(detail(json!({ "stderr": stderr })))
            }
            CallError::Trapped { .. } => RpcError::Trapped(detail(json!({}))),
            CallError::TimedOut(limit) => RpcError::TimedOut(detail(json!({ "limit_ms": limit.as_millis() as u64 }))),
            CallError::MemoryLimit { limit_mib } => RpcError::MemoryLimit(detail(json!({ "limit_mib": limit_mib }))),
            CallError::Overloaded(limit) => RpcError::Overloaded(detail(json!({ "max_concurrent_calls": limit }))),
            CallError::InvalidOutput(_) => RpcError::Internal(detail(json!({}))),
            CallError::CallDepth(limit) => RpcError::LimitReached {
                message: "Call depth limit reached (--max-call-depth)",
                data: detail(json!({ "max_call_depth": limit })),
            },
            CallError::NestedCalls(limit) => RpcError::LimitReached {
                message: "Nested call limit reached (--max-nested-calls)",
                data: detail(json!({ "max_nested_calls": limit })),
            },
            CallError::MethodNotFound => RpcError::MethodNotFound,
            CallError::Guest { code, message, data } => RpcError::Procedure {
                code: *code,
                message: message.clone(),
                // Data is JSON text; text that does not parse is passed as a string.
                data: data
                    .as_deref()
                    .map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))),
            },
        }
    }
}

/// Answers a request body: `None` when nothing is to be returned (notifications).
pub async fn handle(registry: &Arc<Registry>, max_batch: usize, body: &[u8]) -> Option<Vec<u8>> {
    let Ok(raw) = serde_json::from_slice::<&RawValue>(body) else {
        return Some(error_response(&RpcError::ParseError, None));
    };
    if !raw.get().starts_with('[') {
        return handle_one(registry, raw).await;
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
    // Calls of a batch run concurrently, each on its own task.
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| {
            let registry = registry.clone();
            tokio::spawn(async move { handle_one(&registry, &item).await })
        })
        .collect();
    let mut out = Vec::with_capacity(64 * tasks.len());
    out.push(b'[');
    for task in tasks {
        // A panicking task is a bug of ours; the client still gets an answer.
        let answer =
            task.await.unwrap_or_else(|e| Some(error_response(&RpcError::Internal(json!(e.to_string())), None)));
        if let Some(answer) = answer {
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

/// Ids may be strings, numbers or null.
fn valid_id(id: &RawValue) -> bool {
    matches!(id.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9' | b'n'))
}

async fn handle_one(registry: &Arc<Registry>, raw: &RawValue) -> Option<Vec<u8>> {
    let invalid = RpcError::InvalidRequest { detail: None };
    let Ok(envelope) = serde_json::from_str::<Envelope>(raw.get()) else {
        return Some(error_response(&invalid, None));
    };
    let id = envelope.id.filter(|id| valid_id(id));
    if envelope.id.is_some() && id.is_none() {
        return Some(error_response(&invalid, None));
    }
    let method = envelope.method.and_then(|m| serde_json::from_str::<String>(m.get()).ok());
    let params_ok = envelope.params.is_none_or(|p| p.get().starts_with(['[', '{']));
    let (Some(method), true, Some("\"2.0\"")) = (method, params_ok, envelope.jsonrpc.map(RawValue::get)) else {
        return Some(error_response(&invalid, id));
    };
    let params = envelope.params.map_or("null", RawValue::get);
    let result = dispatch(registry, &method, params).await;
    let id = id?; // a notification: run, but answer nothing
    Some(match result {
        Ok(json) => result_response(&json, id),
        Err(err) => error_response(&err, Some(id)),
    })
}

/// Calls `method` (`module.method`, or `name` for `name.name`) with `params`.
async fn dispatch(registry: &Arc<Registry>, method: &str, params: &str) -> Result<String, RpcError> {
    if let Some(own) = method.strip_prefix("rpc.") {
        return match own {
            "discover" => Ok(discover(registry).to_string()),
            _ => Err(RpcError::MethodNotFound),
        };
    }
    call_procedure(registry, method, params, CallContext::new(crate::metrics::next_request_id())).await
}

/// Calls procedure method `method` (`module.method`, or `name` for
/// `name.name`), from a request or from another procedure, with one log line.
async fn call_procedure(
    registry: &Arc<Registry>,
    method: &str,
    params: &str,
    ctx: CallContext,
) -> Result<String, RpcError> {
    let (module, function) = method.split_once('.').unwrap_or((method, method));
    let request_id = ctx.request_id;
    let depth = ctx.depth();
    let caller = ctx.caller().cloned();
    let started = Instant::now();
    let outcome = registry.call(module, function, params, ctx).await;
    if matches!(outcome, Err(CallError::MethodNotFound)) {
        return Err(RpcError::MethodNotFound);
    }
    let outcome = outcome.map_err(|e| RpcError::from_call(e, method));
    let call = CallLog { request_id, depth, caller: caller.as_deref(), method };
    log_call(&call, started.elapsed(), outcome.as_ref().err());
    outcome
}

/// A procedure's call of another (`client.call`): dispatched like a
/// request's call, except that `rpc.` methods are the server's to answer to
/// clients, not to procedures, and that `params` come from a guest, so they
/// are checked as the envelope's are.
impl Client for Registry {
    fn call<'a>(
        self: Arc<Self>,
        method: &'a str,
        params: &'a str,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<String, ErrorObject>> {
        Box::pin(async move {
            if method.starts_with("rpc.") {
                return Err(RpcError::MethodNotFound.into_object(method));
            }
            let params_ok = serde_json::from_str::<&RawValue>(params)
                .is_ok_and(|p| p.get().starts_with(['[', '{']) || p.get() == "null");
            if !params_ok {
                let detail = "params must be JSON text: an array, an object or null".to_owned();
                return Err(RpcError::InvalidRequest { detail: Some(detail) }.into_object(method));
            }
            call_procedure(&self, method, params, ctx).await.map_err(|e| e.into_object(method))
        })
    }
}

/// Who made a call, for its log line.
struct CallLog<'a> {
    request_id: u64,
    /// 0 for a request's call, else how deep in its call tree.
    depth: u32,
    /// The calling procedure of a nested call.
    caller: Option<&'a str>,
    method: &'a str,
}

fn log_call(call: &CallLog<'_>, elapsed: Duration, error: Option<&RpcError>) {
    let CallLog { request_id, depth, caller, method } = *call;
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let outcome = if error.is_some() { "error" } else { "ok" };
    let code = error.map(RpcError::code);
    let message = loggable(error.map_or("ok", RpcError::message));
    match error {
        // The server or the sandbox stopped the call: worth a warning. A
        // procedure's own error is an answer like any other.
        Some(e) if !matches!(e, RpcError::Procedure { .. }) => {
            let data = e.data().unwrap_or(Value::Null).to_string();
            let data = loggable(&data);
            tracing::warn!(target: "wasmrpc::call", request_id, depth, caller, method, duration_us, outcome, code, %data, "{message}")
        }
        _ => {
            tracing::debug!(target: "wasmrpc::call", request_id, depth, caller, method, duration_us, outcome, code, "{message}")
        }
    }
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

/// The OpenRPC document of every deployed method.
fn discover(registry: &Registry) -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "wasmrpc",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Procedures deployed on this wasmrpc server; each call runs in a fresh WebAssembly instance.",
        },
        "methods": registry.method_objects(),
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
        let cases = [
            (RpcError::ParseError, -32700),
            (RpcError::InvalidRequest { detail: None }, -32600),
            (RpcError::MethodNotFound, -32601),
            (RpcError::Internal(Value::Null), -32603),
            (RpcError::Trapped(Value::Null), -32000),
            (RpcError::TimedOut(Value::Null), -32001),
            (RpcError::MemoryLimit(Value::Null), -32002),
            (RpcError::Overloaded(Value::Null), -32003),
            (RpcError::LimitReached { message: "m", data: Value::Null }, -32004),
            (RpcError::Procedure { code: 7, message: "m".into(), data: None }, 7),
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
        let out = error_response(&RpcError::MethodNotFound, Some(&id));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"1"}"#
        );
    }

    #[test]
    fn guest_data_is_embedded_as_json_or_string() {
        let err = |data: &str| {
            RpcError::from_call(CallError::Guest { code: 5, message: "m".into(), data: Some(data.into()) }, "a.b")
        };
        assert_eq!(err("{\"x\":1}").data(), Some(json!({"x": 1})));
        assert_eq!(err("not json").data(), Some(json!("not json")));
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
