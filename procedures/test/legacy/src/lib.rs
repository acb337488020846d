//! Test-only: a procedure built against version 0.1.0 of the guest
//! interface (`wit/procedure.wit` here is a frozen copy of it, before the
//! `client` interface), to show that components built before 0.1.1 keep
//! deploying and running, and can be called by procedures that nest calls.

#![allow(unsafe_code)]

wit_bindgen::generate!({ world: "procedure", path: "wit" });

use exports::wasmrpc::procedure::stub::{Guest, RpcError};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> String {
        r#"{"methods":[{"name":"hello","params":[],"result":{"name":"result","schema":{"type":"string"}}}]}"#.to_owned()
    }

    fn call(method: String, _params: String) -> Result<String, RpcError> {
        match method.as_str() {
            "hello" => {
                wasmrpc::procedure::host::log(wasmrpc::procedure::host::Level::Info, "hello from 0.1.0");
                Ok(r#""hello from wasmrpc:procedure@0.1.0""#.to_owned())
            }
            _ => Err(RpcError { code: -32601, message: "Method not found".to_owned(), data: None }),
        }
    }
}

export!(Legacy);
