//! The macros end to end, natively: typed functions in, JSON-RPC behaviour
//! and OpenRPC descriptions out.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasmrpc_guest::{procedure, schemars::JsonSchema, Error};

/// Adds two integers.
///
/// Overflow wraps.
#[procedure]
fn add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// Greets someone, politely if asked.
#[procedure]
fn greet(name: String, polite: Option<bool>) -> String {
    if polite.unwrap_or(false) {
        format!("Good day, {name}.")
    } else {
        format!("hi {name}")
    }
}

#[derive(Deserialize, Serialize, JsonSchema)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Debug)]
struct Negative;

impl From<Negative> for Error {
    fn from(_: Negative) -> Error {
        Error::new(7, "negative").with_data(json!({"hint": "use positive numbers"}))
    }
}

#[procedure(name = "scale.point")]
fn scale(point: Point, by: f64) -> Result<Point, Negative> {
    if by < 0.0 {
        return Err(Negative);
    }
    Ok(Point { x: point.x * by, y: point.y * by })
}

#[procedure]
fn nothing() {}

mod nested {
    use wasmrpc_guest::procedure;

    #[procedure]
    pub(crate) fn answer() -> u32 {
        42
    }
}

wasmrpc_guest::export!(add, greet, scale, nothing, nested::answer);

fn call(method: &str, params: &str) -> Result<Value, Error> {
    let text = wasmrpc_guest::__private::dispatch(&__wasmrpc_methods(), method, params)?;
    Ok(serde_json::from_str(&text).expect("result is JSON"))
}

#[test]
fn by_position_and_by_name() {
    assert_eq!(call("add", "[2, 3]").unwrap(), json!(5));
    assert_eq!(call("add", r#"{"b": 3, "a": 2}"#).unwrap(), json!(5));
    assert_eq!(call("greet", r#"["ann"]"#).unwrap(), json!("hi ann"));
    assert_eq!(call("greet", r#"{"name": "ann", "polite": true}"#).unwrap(), json!("Good day, ann."));
    assert_eq!(call("nothing", "null").unwrap(), Value::Null);
    assert_eq!(call("answer", "[]").unwrap(), json!(42));
    assert_eq!(call("scale.point", r#"[{"x": 1, "y": 2}, 2]"#).unwrap(), json!({"x": 2.0, "y": 4.0}));
}

#[test]
fn errors() {
    let err = call("add", r#"[1, "2"]"#).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (-32602, "invalid parameter `b`: invalid type: string \"2\", expected i64")
    );
    let err = call("add", "[1]").unwrap_err();
    assert_eq!(err.message, "missing parameter `b` (expected i64)");
    let err = call("greet", r#"{"nom": "x"}"#).unwrap_err();
    assert_eq!(err.message, "unknown parameter `nom`: expected `name`, `polite`");
    let err = call("nope", "[]").unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (-32601, "Method not found"));
    let err = call("scale.point", r#"[{"x": 1, "y": 2}, -1]"#).unwrap_err();
    assert_eq!(err, Error::new(7, "negative").with_data(json!({"hint": "use positive numbers"})));
}

#[test]
fn describe_lists_openrpc_methods() {
    let described: Value = serde_json::from_str(&wasmrpc_guest::__private::describe(&__wasmrpc_methods())).unwrap();
    let methods = described["methods"].as_array().unwrap();
    let names: Vec<&str> = methods.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["add", "greet", "scale.point", "nothing", "answer"]);
    let add = &methods[0];
    assert_eq!(add["summary"], "Adds two integers.");
    assert_eq!(add["description"], "Adds two integers.\n\nOverflow wraps.");
    assert_eq!(
        add["params"],
        json!([
            {"name": "a", "required": true, "schema": {"type": "integer", "title": "int64"}},
            {"name": "b", "required": true, "schema": {"type": "integer", "title": "int64"}},
        ])
    );
    assert_eq!(methods[1]["params"][1]["required"], false);
    assert_eq!(methods[2]["result"]["schema"]["properties"]["x"]["type"], "number");
    assert!(methods[3].get("summary").is_none());
}
