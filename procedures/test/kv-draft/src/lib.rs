//! Test-only: `wasi:keyvalue@0.2.0-draft` (what wasmtime's and wasmCloud's
//! guests import) from a guest without the SDK, with plain wit-bindgen
//! against the published WIT (`wit/keyvalue/draft`), one method per WIT
//! function so the tests can drive each. As `test_kv_draft2`, except: the
//! `list` cursor is a number (an offset), `increment` takes and returns
//! `u64`, `get_many` answers `null` or `[key, value]` per key, and there is
//! no `cas`.

#![allow(unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package wasmrpc:test-kv-draft;
        world guest {
            include wasmrpc:procedure/procedure@0.1.2;
            include wasi:keyvalue/imports@0.2.0-draft;
        }
    ",
    world: "guest",
    path: ["../../../wit", "../../../wit/keyvalue/draft"],
    generate_all,
});

mod common;

use common::{kv_error, ok, Answer, Params};
use exports::wasmrpc::procedure::stub::{Guest, RpcError};
use serde_json::{json, Value};
use wasi::keyvalue::{atomics, batch, store};

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
];

struct KvDraft;

impl Guest for KvDraft {
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
                let (key, delta): (String, u64) = (p.get(1, "key")?, p.get(2, "delta")?);
                ok(json!(atomics::increment(&bucket(&p)?, &key, delta).map_err(|e| kv_error("increment", e))?))
            }
            "list" => {
                let cursor: Option<u64> = p.get(1, "cursor")?;
                let page = bucket(&p)?.list_keys(cursor).map_err(|e| kv_error("list-keys", e))?;
                ok(json!({ "keys": page.keys, "cursor": page.cursor }))
            }
            "get_many" => {
                let keys: Vec<String> = p.get(1, "keys")?;
                let found = batch::get_many(&bucket(&p)?, &keys).map_err(|e| kv_error("get-many", e))?;
                let found: Vec<Value> = found
                    .into_iter()
                    .map(|pair| match pair {
                        Some((key, value)) => json!([key, String::from_utf8_lossy(&value)]),
                        None => Value::Null,
                    })
                    .collect();
                ok(json!(found))
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
            _ => Err(common::method_not_found(&method)),
        }
    }
}

export!(KvDraft);
