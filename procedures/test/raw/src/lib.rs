//! Test-only: a procedure written against `wit/procedure.wit` with plain
//! wit-bindgen, no SDK, answering what the SDK never would (invalid JSON,
//! custom errors with and without JSON data).

#![allow(unsafe_code)]

wit_bindgen::generate!({ world: "procedure", path: "../../../wit" });

use exports::wasmrpc::procedure::stub::{Guest, RpcError};

struct Raw;

impl Guest for Raw {
    fn describe() -> String {
        let method =
            |name: &str| format!(r#"{{"name":"{name}","params":[],"result":{{"name":"result","schema":{{}}}}}}"#);
        let names = ["ok", "bad_json", "custom_error", "bad_data"];
        format!(r#"{{"methods":[{}]}}"#, names.map(method).join(","))
    }

    fn call(method: String, _params: String) -> Result<String, RpcError> {
        match method.as_str() {
            "ok" => Ok("true".to_owned()),
            "bad_json" => Ok("this is {not json".to_owned()),
            "custom_error" => {
                Err(RpcError { code: 42, message: "custom".to_owned(), data: Some(r#"{"detail": 1}"#.to_owned()) })
            }
            "bad_data" => {
                Err(RpcError { code: 7, message: "bad data".to_owned(), data: Some("not json at all".to_owned()) })
            }
            _ => Err(RpcError { code: -32601, message: "Method not found".to_owned(), data: None }),
        }
    }
}

export!(Raw);
