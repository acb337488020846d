//! Test-only: Spin's `wasi:config/store@0.2.0-draft-2024-09-27` from a guest
//! without the SDK, with plain wit-bindgen against the WIT Spin's SDK
//! publishes (`wit/config/draft-2024-09-27`), as a guest built with Spin's
//! SDK imports it. `get` (`[key]`: the value or null) and `all` (every key
//! and value as an object); a `wasi:config` error answers -32011 with the
//! WIT error as message (`upstream: MESSAGE`, `io: MESSAGE`).

#![allow(unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package wasmrpc:test-config-draft;
        world guest {
            include wasmrpc:procedure/procedure@0.1.2;
            include wasi:config/imports@0.2.0-draft-2024-09-27;
        }
    ",
    world: "guest",
    path: ["../../../wit", "../../../wit/config/draft-2024-09-27"],
    generate_all,
});

use exports::wasmrpc::procedure::stub::{Guest, RpcError};
use serde_json::{json, Map, Value};
use wasi::config::store;

struct ConfigDraft;

impl Guest for ConfigDraft {
    fn describe() -> String {
        let key = json!({"name": "key", "required": true, "schema": {"type": "string"}});
        let result = json!({"name": "result", "schema": {}});
        json!({"methods": [
            {"name": "get", "params": [key], "result": result},
            {"name": "all", "params": [], "result": result},
        ]})
        .to_string()
    }

    fn call(method: String, params: String) -> Result<String, RpcError> {
        let params: Value = serde_json::from_str(&params).unwrap_or(Value::Null);
        match method.as_str() {
            "get" => {
                let key = params.get(0).or_else(|| params.get("key")).and_then(Value::as_str).ok_or_else(|| {
                    RpcError { code: -32602, message: "missing parameter `key` (a string)".into(), data: None }
                })?;
                Ok(json!(store::get(key).map_err(config_error)?).to_string())
            }
            "all" => {
                let all: Map<String, Value> =
                    store::get_all().map_err(config_error)?.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                Ok(Value::Object(all).to_string())
            }
            _ => Err(RpcError { code: -32601, message: "Method not found".into(), data: None }),
        }
    }
}

fn config_error(e: store::Error) -> RpcError {
    let message = match e {
        store::Error::Upstream(message) => format!("upstream: {message}"),
        store::Error::Io(message) => format!("io: {message}"),
    };
    RpcError { code: -32011, message, data: None }
}

export!(ConfigDraft);
