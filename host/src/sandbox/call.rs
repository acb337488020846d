//! One call as the rest of the server sees it: who is calling and where the
//! call sits in its call tree ([`CallContext`]), how it can fail
//! ([`CallError`], with the one table of JSON-RPC codes, messages and data
//! for every failure) and where a guest's own calls go ([`Dispatcher`]).
//! The deadline every top-level call runs under is [`crate::timeout::until`]'s.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// JSON-RPC's "Internal error".
pub(crate) const INTERNAL_ERROR: i32 = -32603;

/// Why a call did not produce a result; each case is one row of the error
/// table ([`CallError::code`], [`CallError::message`], [`CallError::data`]),
/// the same whether the caller is an HTTP client or another procedure.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the procedure trapped: {reason}")]
    Trapped { reason: String, stderr: String },
    #[error("the procedure ran past its time limit of {0:?}")]
    TimedOut(Duration),
    #[error("the procedure tried to grow its memory past the limit of {limit_mib} MiB")]
    MemoryLimit { limit_mib: u64 },
    #[error("the server is over its limit of {0} concurrent calls; retry later")]
    Overloaded(usize),
    #[error("the procedure returned invalid JSON: {0}")]
    InvalidOutput(String),
    /// A nested call past `--max-call-depth`.
    #[error("calls nest at most {0} deep (--max-call-depth)")]
    CallDepth(u32),
    /// A nested call past `--max-nested-calls` in one call tree.
    #[error("a top-level call may make at most {0} nested calls (--max-nested-calls)")]
    NestedCalls(u32),
    /// A guest's nested call that is not a valid call (its params are not
    /// JSON text of an array, an object or null); says what is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// The procedure's own error, passed through unchanged.
    #[error("{message}")]
    Guest { code: i32, message: String, data: Option<String> },
    /// No procedure of that name is deployed, or it has no such method.
    #[error("method not found")]
    MethodNotFound,
    /// The version's code could not be loaded for the call (the compiled
    /// cache and the stored module both failed: the server log says why).
    #[error("the procedure's code could not be loaded; the server log has the details")]
    Unloadable,
}

impl CallError {
    /// The JSON-RPC error code (the contract's table).
    pub fn code(&self) -> i32 {
        match self {
            CallError::Trapped { .. } => -32000,
            CallError::TimedOut(_) => -32001,
            CallError::MemoryLimit { .. } => -32002,
            CallError::Overloaded(_) => -32003,
            CallError::InvalidOutput(_) | CallError::Unloadable => INTERNAL_ERROR,
            CallError::CallDepth(_) | CallError::NestedCalls(_) => -32004,
            CallError::InvalidRequest(_) => -32600,
            CallError::MethodNotFound => -32601,
            CallError::Guest { code, .. } => *code,
        }
    }

    /// The JSON-RPC error message: the spec's exact words for its codes.
    pub fn message(&self) -> &str {
        match self {
            CallError::Trapped { .. } => "Procedure trapped",
            CallError::TimedOut(_) => "Procedure timed out",
            CallError::MemoryLimit { .. } => "Procedure exceeded its memory limit",
            CallError::Overloaded(_) => "Server overloaded",
            CallError::InvalidOutput(_) | CallError::Unloadable => "Internal error",
            CallError::CallDepth(_) => "Call depth limit reached (--max-call-depth)",
            CallError::NestedCalls(_) => "Nested call limit reached (--max-nested-calls)",
            CallError::InvalidRequest(_) => "Invalid Request",
            CallError::MethodNotFound => "Method not found",
            CallError::Guest { message, .. } => message,
        }
    }

    /// The JSON-RPC error's `data` for a call of `method`: what the server
    /// knows of a failure it caused (the method, the reason, the limit), the
    /// procedure's own data as JSON (text that does not parse is passed as a
    /// string), and none for the spec's "Method not found".
    pub fn data(&self, method: &str) -> Option<Value> {
        let detail = |extra: Value| {
            let mut data = json!({ "method": method, "reason": self.to_string() });
            if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
                data.extend(extra);
            }
            Some(data)
        };
        match self {
            CallError::Trapped { stderr, .. } if !stderr.is_empty() => detail(json!({ "stderr": stderr })),
            CallError::Trapped { .. } | CallError::InvalidOutput(_) | CallError::Unloadable => detail(json!({})),
            CallError::TimedOut(limit) => {
                detail(json!({ "limit_ms": u64::try_from(limit.as_millis()).unwrap_or(u64::MAX) }))
            }
            CallError::MemoryLimit { limit_mib } => detail(json!({ "limit_mib": limit_mib })),
            CallError::Overloaded(limit) => detail(json!({ "max_concurrent_calls": limit })),
            CallError::CallDepth(limit) => detail(json!({ "max_call_depth": limit })),
            CallError::NestedCalls(limit) => detail(json!({ "max_nested_calls": limit })),
            CallError::InvalidRequest(why) => Some(Value::String(why.clone())),
            CallError::MethodNotFound => None,
            CallError::Guest { data, .. } => data
                .as_deref()
                .map(|text| serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))),
        }
    }

    /// Whether the server or the sandbox stopped the call (worth a warning
    /// in the log), rather than the procedure answering with its own error.
    pub fn is_host_error(&self) -> bool {
        !matches!(self, CallError::Guest { .. })
    }

    /// The error object a procedure gets for a nested call of `method` that
    /// ended in `self`: what an outside client would get, except that "method
    /// not found" names the method (a procedure's caller cannot see which of
    /// its calls failed).
    pub fn to_object(&self, method: &str) -> ErrorObject {
        let data = match self {
            CallError::MethodNotFound => Some(json!({ "method": method })),
            other => other.data(method),
        };
        ErrorObject { code: self.code(), message: self.message().to_owned(), data: data.map(|d| d.to_string()) }
    }
}

/// Who is calling, for the guest's log lines, and where the call sits in
/// its call tree.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The top-level request's id, shared by every call of its tree.
    pub request_id: u64,
    /// `None` for a top-level call (from a request, or a deploy's `describe`).
    pub(super) nested: Option<Nested>,
    /// This call's span, when the call is traced (a `traceparent` came
    /// with the request, or `--otlp-endpoint` is set); `None` costs nothing.
    pub trace: Option<crate::trace::Span>,
}

/// What a nested call inherits from its caller.
#[derive(Debug, Clone)]
pub(super) struct Nested {
    /// 1 for a call made by the top-level call, 2 for one made by that callee, ...
    pub(super) depth: u32,
    /// The top-level call's deadline: the whole tree stops there.
    pub(super) deadline: Instant,
    /// Nested calls started so far by the whole tree.
    pub(super) budget: Arc<AtomicU64>,
    /// The calling procedure's name.
    pub(super) caller: Arc<str>,
}

impl CallContext {
    /// A top-level call, tagged `request_id` in the logs.
    pub fn new(request_id: u64) -> Self {
        CallContext { request_id, nested: None, trace: None }
    }

    /// This call, traced as `trace` ([`crate::trace::Tracing::top_level`]).
    pub fn with_trace(mut self, trace: Option<crate::trace::Span>) -> Self {
        self.trace = trace;
        self
    }

    /// 0 for a top-level call, else how deep in the call tree this one is.
    pub fn depth(&self) -> u32 {
        self.nested.as_ref().map_or(0, |n| n.depth)
    }

    /// The procedure that made this (nested) call.
    pub fn caller(&self) -> Option<&Arc<str>> {
        self.nested.as_ref().map(|n| &n.caller)
    }
}

/// A nested call's failure as the calling guest gets it (`call-error` in
/// wit/procedure.wit): the JSON-RPC error object an outside client would
/// get for the same call; `data` is JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    pub code: i32,
    pub message: String,
    pub data: Option<String>,
}

/// A boxed future, as a [`Dispatcher`] returns it (the call recurses through
/// the sandbox, so its type must be erased somewhere).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a running guest reaches outside its instance, implemented by the
/// registry so that the sandbox does not depend on it: where its
/// `client.call` goes (the registry finds the callee and runs it back here
/// as a nested call), the procedures' key-value state and configuration,
/// and the call slots a call lends while it waits on either.
pub trait Dispatcher: Send + Sync {
    /// The key-value state (`capabilities/keyvalue.rs`).
    fn kv(&self) -> &crate::kv::Kv;

    /// The procedures' configuration (`capabilities/config.rs`).
    fn vars(&self) -> &crate::vars::Vars;

    /// The call slots of the sandbox running the guest.
    fn slots(&self) -> &super::Slots;

    /// Calls `method` (`module.method`) with `params` (JSON text) as the
    /// nested call `ctx`.
    fn dispatch<'a>(
        self: Arc<Self>,
        method: &'a str,
        params: &'a str,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<String, ErrorObject>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code_and_message() {
        let cases = [
            (CallError::Trapped { reason: "r".into(), stderr: String::new() }, -32000, "Procedure trapped"),
            (CallError::TimedOut(Duration::from_secs(1)), -32001, "Procedure timed out"),
            (CallError::MemoryLimit { limit_mib: 1 }, -32002, "Procedure exceeded its memory limit"),
            (CallError::Overloaded(1), -32003, "Server overloaded"),
            (CallError::InvalidOutput("x".into()), -32603, "Internal error"),
            (CallError::CallDepth(1), -32004, "Call depth limit reached (--max-call-depth)"),
            (CallError::NestedCalls(1), -32004, "Nested call limit reached (--max-nested-calls)"),
            (CallError::InvalidRequest("x".into()), -32600, "Invalid Request"),
            (CallError::MethodNotFound, -32601, "Method not found"),
            (CallError::Guest { code: 7, message: "m".into(), data: None }, 7, "m"),
        ];
        for (err, code, message) in cases {
            assert_eq!((err.code(), err.message()), (code, message), "{err:?}");
        }
    }

    #[test]
    fn data_names_the_method_the_reason_and_the_limit() {
        let data = CallError::TimedOut(Duration::from_millis(200)).data("a.b").unwrap();
        assert_eq!(data["method"], "a.b");
        assert_eq!(data["limit_ms"], 200);
        assert!(data["reason"].as_str().unwrap().contains("time limit"));
        assert_eq!(CallError::MethodNotFound.data("a.b"), None);
        assert_eq!(CallError::MethodNotFound.to_object("a.b").data.as_deref(), Some(r#"{"method":"a.b"}"#));
    }

    #[test]
    fn guest_data_is_embedded_as_json_or_string() {
        let err = |data: &str| CallError::Guest { code: 5, message: "m".into(), data: Some(data.into()) };
        assert_eq!(err("{\"x\":1}").data("a.b"), Some(json!({"x": 1})));
        assert_eq!(err("not json").data("a.b"), Some(json!("not json")));
    }
}
