//! What both key-value test guests share (`kv-draft2` includes this file):
//! reading params by position or by name, `describe`, and errors.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::exports::wasmrpc::procedure::stub::RpcError;
use crate::wasi::keyvalue::store;

/// The `call` export's answer.
pub(crate) type Answer = Result<String, RpcError>;

/// Code of a `wasi:keyvalue` error: the message is the WIT error
/// (`no-such-store`, `access-denied`, `other: MESSAGE`).
pub(crate) const KV_ERROR: i32 = 1;

/// The params of a call: an array (by position) or an object (by name).
pub(crate) struct Params(Value);

impl Params {
    pub(crate) fn new(text: &str) -> Result<Params, RpcError> {
        serde_json::from_str(text).map(Params).map_err(|e| error(-32602, format!("params are not JSON: {e}"), None))
    }

    /// Parameter `name`, the `index`-th by position; absent is null.
    pub(crate) fn get<T: DeserializeOwned>(&self, index: usize, name: &str) -> Result<T, RpcError> {
        let value = match &self.0 {
            Value::Array(values) => values.get(index),
            Value::Object(values) => values.get(name),
            _ => None,
        };
        serde_json::from_value(value.cloned().unwrap_or(Value::Null))
            .map_err(|e| error(-32602, format!("invalid parameter `{name}`: {e}"), Some(json!({ "parameter": name }))))
    }
}

pub(crate) fn error(code: i32, message: String, data: Option<Value>) -> RpcError {
    RpcError { code, message, data: data.map(|d| d.to_string()) }
}

/// A `wasi:keyvalue` error as the answer's error, naming the operation.
pub(crate) fn kv_error(operation: &str, e: store::Error) -> RpcError {
    let message = match e {
        store::Error::NoSuchStore => "no-such-store".to_owned(),
        store::Error::AccessDenied => "access-denied".to_owned(),
        store::Error::Other(message) => format!("other: {message}"),
    };
    error(KV_ERROR, message, Some(json!({ "operation": operation })))
}

/// The JSON text of a result.
pub(crate) fn ok(value: Value) -> Answer {
    Ok(value.to_string())
}

/// `describe`'s answer: each method with its parameters' names (of any
/// type; required unless the name ends in `?`).
pub(crate) fn describe(methods: &[(&str, &[&str])]) -> String {
    let methods: Vec<Value> = methods
        .iter()
        .map(|(name, params)| {
            let params: Vec<Value> = params
                .iter()
                .map(|p| json!({ "name": p.trim_end_matches('?'), "required": !p.ends_with('?'), "schema": {} }))
                .collect();
            json!({ "name": name, "params": params, "result": { "name": "result", "schema": {} } })
        })
        .collect();
    json!({ "methods": methods }).to_string()
}

pub(crate) fn method_not_found(method: &str) -> RpcError {
    error(-32601, "Method not found".to_owned(), Some(json!({ "method": method })))
}
