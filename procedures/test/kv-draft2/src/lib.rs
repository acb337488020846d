//! Test-only: `wasi:keyvalue@0.2.0-draft2` from a guest without the SDK,
//! with plain wit-bindgen against the published WIT (`wit/keyvalue/draft2`),
//! one method per WIT function so the tests can drive each. Params by
//! position or by name; values are UTF-8 text (`get_bytes`/`set_bytes`:
//! arrays of bytes); a `wasi:keyvalue` error answers code 1 with the WIT
//! error as message (`other: MESSAGE`) and `data.operation`.

#![allow(unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package wasmrpc:test-kv-draft2;
        world guest {
            include wasmrpc:procedure/procedure@0.1.2;
            include wasi:keyvalue/imports@0.2.0-draft2;
        }
    ",
    world: "guest",
    path: ["../../../wit", "../../../wit/keyvalue/draft2"],
    generate_all,
});

#[path = "../../kv-draft/src/common.rs"]
mod common;

use common::{kv_error, ok, Answer, Params};
use exports::wasmrpc::procedure::stub::{Guest, RpcError};
use serde_json::{json, Value};
use wasi::keyvalue::atomics::{self, Cas, CasError};
use wasi::keyvalue::{batch, store};

const METHODS: &[(&str, &[&str])] = &[
    ("open", &["bucket"]),
    ("get", &["bucket", "key"]),
    ("get_bytes", &["bucket", "key"]),
    ("set", &["bucket", "key", "value"]),
    ("set_bytes", &["bucket", "key", "value"]),
    ("delete", &["bucket", "key"]),
    ("exists", &["bucket", "key"]),
    ("increment", &["bucket", "key", "delta"]),
    ("list", &["bucket", "cursor?"]),
    ("get_many", &["bucket", "keys"]),
    ("set_many", &["bucket", "entries"]),
    ("delete_many", &["bucket", "keys"]),
    ("cas", &["bucket", "key", "expected?", "value"]),
];

struct KvDraft2;

impl Guest for KvDraft2 {
    fn describe() -> String {
        common::describe(METHODS)
    }

    fn call(method: String, params: String) -> Answer {
        let p = Params::new(&params)?;
        let bucket = |p: &Params| -> Result<store::Bucket, RpcError> {
            store::open(&p.get::<String>(0, "bucket")?).map_err(|e| kv_error("open", e))
        };
        match method.as_str() {
            "open" => bucket(&p).and_then(|_| ok(json!(true))),
            "get" => {
                let value = bucket(&p)?.get(&p.get::<String>(1, "key")?).map_err(|e| kv_error("get", e))?;
                ok(json!(value.map(|v| String::from_utf8_lossy(&v).into_owned())))
            }
            "get_bytes" => ok(json!(bucket(&p)?.get(&p.get::<String>(1, "key")?).map_err(|e| kv_error("get", e))?)),
            "set" => {
                let value: String = p.get(2, "value")?;
                bucket(&p)?.set(&p.get::<String>(1, "key")?, value.as_bytes()).map_err(|e| kv_error("set", e))?;
                ok(Value::Null)
            }
            "set_bytes" => {
                let value: Vec<u8> = p.get(2, "value")?;
                bucket(&p)?.set(&p.get::<String>(1, "key")?, &value).map_err(|e| kv_error("set", e))?;
                ok(Value::Null)
            }
            "delete" => {
                bucket(&p)?.delete(&p.get::<String>(1, "key")?).map_err(|e| kv_error("delete", e))?;
                ok(Value::Null)
            }
            "exists" => {
                ok(json!(bucket(&p)?.exists(&p.get::<String>(1, "key")?).map_err(|e| kv_error("exists", e))?))
            }
            "increment" => {
                let (key, delta): (String, i64) = (p.get(1, "key")?, p.get(2, "delta")?);
                ok(json!(atomics::increment(&bucket(&p)?, &key, delta).map_err(|e| kv_error("increment", e))?))
            }
            "list" => {
                let cursor: Option<String> = p.get(1, "cursor")?;
                let page = bucket(&p)?.list_keys(cursor.as_deref()).map_err(|e| kv_error("list-keys", e))?;
                ok(json!({ "keys": page.keys, "cursor": page.cursor }))
            }
            "get_many" => {
                let keys: Vec<String> = p.get(1, "keys")?;
                let pairs = batch::get_many(&bucket(&p)?, &keys).map_err(|e| kv_error("get-many", e))?;
                let pairs: Vec<Value> = pairs
                    .into_iter()
                    .map(|(key, value)| json!([key, value.map(|v| String::from_utf8_lossy(&v).into_owned())]))
                    .collect();
                ok(json!(pairs))
            }
            "set_many" => {
                let entries: Vec<(String, String)> = p.get(1, "entries")?;
                let entries: Vec<(String, Vec<u8>)> = entries.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                batch::set_many(&bucket(&p)?, &entries).map_err(|e| kv_error("set-many", e))?;
                ok(Value::Null)
            }
            "delete_many" => {
                let keys: Vec<String> = p.get(1, "keys")?;
                batch::delete_many(&bucket(&p)?, &keys).map_err(|e| kv_error("delete-many", e))?;
                ok(Value::Null)
            }
            "cas" => cas(&bucket(&p)?, &p),
            _ => Err(common::method_not_found(&method)),
        }
    }
}

/// Sets `key` to `value` if its value is `expected` (null: absent), with
/// `cas::new`, `current` and `swap`; whether it did.
fn cas(bucket: &store::Bucket, p: &Params) -> Answer {
    let (key, expected, value): (String, Option<String>, String) =
        (p.get(1, "key")?, p.get(2, "expected")?, p.get(3, "value")?);
    let handle = Cas::new(bucket, &key).map_err(|e| kv_error("cas.new", e))?;
    let current = handle.current().map_err(|e| kv_error("cas.current", e))?;
    if current.as_deref() != expected.as_ref().map(String::as_bytes) {
        return ok(json!(false));
    }
    match atomics::swap(handle, value.as_bytes()) {
        Ok(()) => ok(json!(true)),
        Err(CasError::CasFailed(_)) => ok(json!(false)),
        Err(CasError::StoreError(e)) => Err(kv_error("swap", e)),
    }
}

export!(KvDraft2);
