//! An oracle for JSON-RPC answers that shares no code with the server: from
//! a request body alone, what the specification says the answer must be
//! (which ids, how many, nothing when all are notifications, -32700 exactly
//! when the body is not JSON). The property test in `faults.rs` and the
//! `rpc_envelope` fuzz target (which includes this file) both judge the
//! server's answers with it.

use serde_json::{json, Value};

/// What one request in a body must be answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The id the response must carry (null when the request's is missing or invalid).
    pub id: Value,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An error with this code.
    Error(i64),
    /// A result (not an error).
    Result,
    /// A result or any error.
    Any,
}

/// What the server under test is serving.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The modules deployed (and no other).
    pub modules: &'a [&'a str],
    /// Its `--max-batch`.
    pub max_batch: usize,
}

/// What the whole answer to a body must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Not JSON: one -32700 error, id null.
    ParseError,
    /// One response object.
    One(Expected),
    /// A batch: one response per request that is not a notification, in
    /// any order; no answer at all (HTTP 204) when the list is empty.
    Batch(Vec<Expected>),
    /// One request that is a notification: no answer at all.
    Nothing,
    /// JSON that a `serde_json::Value` cannot hold (a number beyond f64):
    /// valid JSON, so not -32700, but not judged further here.
    Unjudged,
}

/// The answer `body` must get from a server set up as `setup`.
pub fn expected(body: &[u8], setup: Setup) -> Answer {
    // JSON text is UTF-8 (RFC 8259 8.1); serde_json skips over a string
    // without checking it, so check first.
    let Ok(text) = std::str::from_utf8(body) else { return Answer::ParseError };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Answer::ParseError;
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return Answer::Unjudged };
    match value {
        Value::Array(items) if items.is_empty() => {
            Answer::One(Expected { id: Value::Null, outcome: Outcome::Error(-32600) })
        }
        Value::Array(items) if items.len() > setup.max_batch => {
            Answer::One(Expected { id: Value::Null, outcome: Outcome::Error(-32600) })
        }
        Value::Array(items) => Answer::Batch(items.iter().filter_map(|item| request(item, setup.modules)).collect()),
        other => match request(&other, setup.modules) {
            Some(expected) => Answer::One(expected),
            None => Answer::Nothing,
        },
    }
}

/// What one request must be answered with; `None` for a notification.
fn request(item: &Value, deployed: &[&str]) -> Option<Expected> {
    let invalid = |id: Value| Some(Expected { id, outcome: Outcome::Error(-32600) });
    let Some(object) = item.as_object() else { return invalid(Value::Null) };
    let id = object.get("id");
    if let Some(id) = id {
        if !matches!(id, Value::Null | Value::Number(_) | Value::String(_)) {
            return invalid(Value::Null);
        }
    }
    let method = object.get("method").and_then(Value::as_str);
    // `"params": null` counts as omitted, a leniency the server keeps on
    // purpose (examples.rs pins it: math.add answers -32602, not -32600).
    let params_ok = matches!(object.get("params"), None | Some(Value::Null | Value::Array(_) | Value::Object(_)));
    let (Some(method), true, Some("2.0")) = (method, params_ok, object.get("jsonrpc").and_then(Value::as_str)) else {
        return invalid(id.cloned().unwrap_or(Value::Null));
    };
    let id = id?.clone();
    let outcome = match method.split_once('.') {
        _ if method == "rpc.discover" => Outcome::Result,
        Some(("rpc", _)) => Outcome::Error(-32601),
        Some((module, _)) if deployed.contains(&module) => Outcome::Any,
        _ => Outcome::Error(-32601),
    };
    Some(Expected { id, outcome })
}

/// Checks `answer` (`None`: the server answered nothing, HTTP 204) against
/// what `body` must get.
pub fn check(body: &[u8], setup: Setup, answer: Option<&[u8]>) -> Result<(), String> {
    let due = expected(body, setup);
    let Some(answer) = answer else {
        return match due {
            Answer::Nothing | Answer::Unjudged => Ok(()),
            Answer::Batch(list) if list.is_empty() => Ok(()),
            other => Err(format!("no answer, but {other:?} is due")),
        };
    };
    if due == Answer::Unjudged {
        return Ok(());
    }
    let value: Value = serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON ({e})"))?;
    match due {
        Answer::ParseError => {
            let parse_error =
                json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null});
            (value == parse_error).then_some(()).ok_or(format!("not JSON, so {parse_error} is due, got {value}"))
        }
        Answer::Nothing => Err(format!("a notification was answered: {value}")),
        Answer::One(expected) => response(&value, &expected),
        Answer::Batch(list) => batch(&value, list),
        Answer::Unjudged => Ok(()),
    }
}

/// Checks a batch's answer: one response per due entry, in any order.
fn batch(value: &Value, mut due: Vec<Expected>) -> Result<(), String> {
    if due.is_empty() {
        return Err(format!("only notifications, yet an answer: {value}"));
    }
    let responses = value.as_array().ok_or(format!("a batch answered with {value}"))?;
    if responses.len() != due.len() {
        return Err(format!("{} responses, {} due: {value}", responses.len(), due.len()));
    }
    for r in responses {
        // Prefer a due entry that pins this very outcome, so that the ones
        // open to any outcome stay for responses nothing else fits.
        let fits = |e: &Expected| response(r, e).is_ok();
        let index = due
            .iter()
            .position(|e| e.outcome != Outcome::Any && fits(e))
            .or_else(|| due.iter().position(fits))
            .ok_or_else(|| {
                let reasons: Vec<String> = due.iter().filter_map(|e| response(r, e).err()).collect();
                format!("{r} answers nothing due ({reasons:?}) in {value}")
            })?;
        due.swap_remove(index);
    }
    Ok(())
}

/// Checks one response object against what was due.
fn response(value: &Value, expected: &Expected) -> Result<(), String> {
    let object = value.as_object().ok_or(format!("not a response object: {value}"))?;
    let keys_ok = object.len() == 3 && object.get("jsonrpc") == Some(&json!("2.0")) && object.contains_key("id");
    if !keys_ok {
        return Err(format!("not a JSON-RPC 2.0 response: {value}"));
    }
    if object["id"] != expected.id {
        return Err(format!("id {} due: {value}", expected.id));
    }
    match (object.get("result"), object.get("error")) {
        (Some(_), None) if matches!(expected.outcome, Outcome::Result | Outcome::Any) => Ok(()),
        (Some(_), None) => Err(format!("{:?} due, got a result: {value}", expected.outcome)),
        (None, Some(error)) => {
            let error = error.as_object().ok_or(format!("error is not an object: {value}"))?;
            let code = error.get("code").and_then(Value::as_i64).filter(|c| i32::try_from(*c).is_ok());
            let code = code.ok_or(format!("error code is not a 32-bit integer: {value}"))?;
            if !error.get("message").is_some_and(Value::is_string)
                || error.keys().any(|k| !matches!(k.as_str(), "code" | "message" | "data"))
            {
                return Err(format!("error is not {{code, message, data?}}: {value}"));
            }
            if matches!(code, -32700 | -32601) && error.contains_key("data") {
                return Err(format!("data on a {code}: {value}"));
            }
            match expected.outcome {
                Outcome::Error(due) if due != code => Err(format!("error {due} due: {value}")),
                Outcome::Result => Err(format!("a result due: {value}")),
                _ => Ok(()),
            }
        }
        _ => Err(format!("needs exactly one of result and error: {value}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle itself rejects wrong answers (a checker that accepts
    /// everything would make the property test pass vacuously).
    const MATH: Setup = Setup { modules: &["math"], max_batch: 2 };
    const NONE: Setup = Setup { modules: &[], max_batch: 2 };

    fn some(bytes: &[u8]) -> Option<&[u8]> {
        Some(bytes)
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// The oracle itself rejects wrong answers (a checker that accepts
    /// everything would make the property test pass vacuously).
    #[test]
    fn the_oracle_rejects_wrong_answers() {
        let call = br#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":7}"#;
        let ok = br#"{"jsonrpc":"2.0","result":3,"id":7}"#;
        assert_eq!(check(call, MATH, some(ok)), Ok(()));
        assert!(check(call, MATH, None).is_err(), "204 to a call");
        assert!(check(call, MATH, some(br#"{"jsonrpc":"2.0","result":3,"id":8}"#)).is_err(), "wrong id");
        assert!(check(call, NONE, some(ok)).is_err(), "a result from an undeployed module");
        assert!(check(call, MATH, some(br#"{"jsonrpc":"2.0","result":3,"id":7,"x":1}"#)).is_err(), "extra key");

        let note = br#"{"jsonrpc":"2.0","method":"math.add","params":[1,2]}"#;
        assert_eq!(check(note, MATH, None), Ok(()));
        assert!(check(note, MATH, some(ok)).is_err(), "a notification answered");
        let null_params = br#"{"jsonrpc":"2.0","method":"math.add","params":null}"#;
        assert_eq!(check(null_params, MATH, None), Ok(()), "null params count as omitted");

        let batch = format!("[{},{}]", text(call), text(note));
        assert_eq!(check(batch.as_bytes(), MATH, Some(format!("[{}]", text(ok)).as_bytes())), Ok(()));
        assert!(check(batch.as_bytes(), MATH, Some(format!("[{0},{0}]", text(ok)).as_bytes())).is_err());
        assert!(check(batch.as_bytes(), MATH, None).is_err(), "204 to a batch with a call");
        let notes = format!("[{0},{0}]", text(note));
        assert_eq!(check(notes.as_bytes(), MATH, None), Ok(()));
        let three = format!("[{0},{0},{0}]", text(call));
        assert!(
            check(three.as_bytes(), MATH, Some(format!("[{0},{0},{0}]", text(ok)).as_bytes())).is_err(),
            "over the batch limit"
        );
        assert!(check(b"[]", MATH, None).is_err(), "204 to an empty batch");

        let invalid = br#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#;
        let parse_error = br#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#;
        assert!(check(b"{", MATH, some(invalid)).is_err());
        assert_eq!(check(b"{", MATH, some(parse_error)), Ok(()));
        assert_eq!(check(b"[\"\xff\"]", MATH, some(parse_error)), Ok(()), "not UTF-8, so not JSON");
        assert!(check(b"{}", MATH, some(parse_error)).is_err(), "-32700 for JSON");
        assert_eq!(check(b"{}", MATH, some(invalid)), Ok(()));
        assert_eq!(check(br#"{"jsonrpc":"2.0","method":"math.add","id":true}"#, MATH, some(invalid)), Ok(()));
        assert!(check(br#"{"jsonrpc":"2.0","method":"nope.x","id":1}"#, MATH, some(ok)).is_err());
        let with_data = br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":1},"id":1}"#;
        assert!(check(br#"{"jsonrpc":"2.0","method":"nope.x","id":1}"#, MATH, some(with_data)).is_err());
    }
}
