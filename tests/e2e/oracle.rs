//! An oracle for JSON-RPC answers that shares no code with the server: from
//! a request body alone, what the answer must be. The envelope follows the
//! specification (which ids, how many, nothing when all are notifications,
//! -32700 exactly when the body is not JSON, the spec's messages) and the
//! server's documented contract (ids echoed byte for byte, null where the
//! request's could not be read); a call of `math` (`procedures/math`) gets
//! the very answer that procedure computes. The property test in
//! `faults.rs` and the `rpc_envelope` fuzz target (which includes this
//! file) both judge the server's answers with it.
//!
//! Bodies are read with a reader of its own ([`Json`]): numbers and ids keep
//! their text (`1e400` is a valid id, echoed as written) and nesting has no
//! depth limit, so every body that is JSON is judged, not only those a
//! `serde_json::Value` can hold.

use std::fmt;

use serde_json::{json, Value};

/// What one request in a body must be answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// The JSON text of the id the response must carry, byte for byte as
    /// the request wrote it (`null` when the request's is missing or invalid).
    pub id: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// This result. Integers must be these; other numbers may differ in
    /// the last bits, as two JSON readers may round a long decimal apart.
    Returns(Value),
    /// A result, any (`rpc.discover`; `math` on floats it may read apart).
    Result,
    /// An error with this code; with this message when one is given.
    Error { code: i64, message: Option<String>, data: Data },
    /// A result or any error: a call of a module the oracle does not know.
    Any,
}

/// An error's `data`.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Any,
    Absent,
    Is(Value),
}

/// What the server under test is serving.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The modules deployed (and no other). A module named `math` is
    /// `procedures/math`, whose answers the oracle knows.
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
    /// any order, in an array; no answer at all (HTTP 204) when every
    /// request is a notification.
    Batch(Vec<Expected>),
    /// One request that is a notification: no answer at all.
    Nothing,
}

/// A JSON text as written: numbers and strings keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's text.
    Number(String),
    /// The string's text, quotes and escapes included.
    Str(String),
    Array(Vec<Json>),
    /// Members in order, duplicates kept; a name is `None` when it is not
    /// Unicode (a lone surrogate escape).
    Object(Vec<(Option<String>, Json)>),
}

impl Json {
    /// Reads `bytes` if they are JSON (RFC 8259: UTF-8, one value).
    pub fn read(bytes: &[u8]) -> Option<Json> {
        // serde_json skips over a string without checking its UTF-8, so check first.
        let text = std::str::from_utf8(bytes).ok()?;
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        Some(tree(text))
    }

    /// A string's value; `None` if this is not a string or not Unicode.
    fn string(&self) -> Option<String> {
        match self {
            Json::Str(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }

    /// The JSON text of a null, a number or a string.
    fn scalar_text(&self) -> Option<&str> {
        match self {
            Json::Null => Some("null"),
            Json::Number(text) | Json::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The value of member `name`; `Err` if it is there twice.
    fn member<'a>(members: &'a [(Option<String>, Json)], name: &str) -> Result<Option<&'a Json>, ()> {
        let mut found = members.iter().filter(|(key, _)| key.as_deref() == Some(name)).map(|(_, v)| v);
        match (found.next(), found.next()) {
            (first, None) => Ok(first),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(text) | Json::Str(text) => f.write_str(text),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i > 0 { "," } else { "" })?;
                }
                f.write_str("]")
            }
            Json::Object(members) => {
                f.write_str("{")?;
                for (i, (key, value)) in members.iter().enumerate() {
                    let key = key.as_deref().map_or("\"\\ud800\"".to_owned(), |k| Value::from(k).to_string());
                    write!(f, "{}{key}:{value}", if i > 0 { "," } else { "" })?;
                }
                f.write_str("}")
            }
        }
    }
}

/// The tree of `text`, which is JSON. No recursion, so no depth limit.
fn tree(text: &str) -> Json {
    enum Open {
        Array(Vec<Json>),
        /// Members so far, and the name of the one being read.
        Object(Vec<(Option<String>, Json)>, Option<Option<String>>),
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    loop {
        while matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b':') {
            i += 1;
        }
        let start = i;
        let value = match bytes[i] {
            b'[' | b'{' => {
                stack.push(if bytes[i] == b'[' { Open::Array(Vec::new()) } else { Open::Object(Vec::new(), None) });
                i += 1;
                continue;
            }
            b']' | b'}' => {
                i += 1;
                match stack.pop() {
                    Some(Open::Array(items)) => Json::Array(items),
                    Some(Open::Object(members, _)) => Json::Object(members),
                    None => unreachable!("checked JSON"),
                }
            }
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                let string = &text[start..i];
                if let Some(Open::Object(_, name @ None)) = stack.last_mut() {
                    *name = Some(serde_json::from_str(string).ok());
                    continue;
                }
                Json::Str(string.to_owned())
            }
            b'n' => {
                i += 4;
                Json::Null
            }
            b't' => {
                i += 4;
                Json::Bool(true)
            }
            b'f' => {
                i += 5;
                Json::Bool(false)
            }
            _ => {
                while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    i += 1;
                }
                Json::Number(text[start..i].to_owned())
            }
        };
        match stack.last_mut() {
            None => return value,
            Some(Open::Array(items)) => items.push(value),
            Some(Open::Object(members, name)) => members.push((name.take().flatten(), value)),
        }
    }
}

/// The answer `body` must get from a server set up as `setup`.
pub fn expected(body: &[u8], setup: Setup) -> Answer {
    let Some(value) = Json::read(body) else { return Answer::ParseError };
    match value {
        Json::Array(items) if items.is_empty() || items.len() > setup.max_batch => {
            // The batch limit may be explained in `data`.
            Answer::One(Expected { id: "null".into(), outcome: invalid_request() })
        }
        Json::Array(items) => Answer::Batch(items.iter().filter_map(|item| request(item, setup.modules)).collect()),
        other => request(&other, setup.modules).map_or(Answer::Nothing, Answer::One),
    }
}

/// The spec's error `code` with its exact message; `data` only on -32600.
fn spec_error(code: i64) -> Outcome {
    let message = match code {
        -32700 => "Parse error",
        -32600 => "Invalid Request",
        _ => "Method not found",
    };
    Outcome::Error { code, message: Some(message.into()), data: if code == -32600 { Data::Any } else { Data::Absent } }
}

fn invalid_request() -> Outcome {
    spec_error(-32600)
}

/// -32602: the message and data say what was wrong, in the procedure's words.
fn invalid_params() -> Outcome {
    Outcome::Error { code: -32602, message: None, data: Data::Any }
}

/// What one request must be answered with; `None` for a notification.
fn request(item: &Json, deployed: &[&str]) -> Option<Expected> {
    let invalid = |id: Option<&Json>| {
        let id = id.and_then(Json::scalar_text).unwrap_or("null").to_owned();
        Some(Expected { id, outcome: invalid_request() })
    };
    // A request is an object (not an array, though `["2.0", "m", [], 1]`
    // could be read as one by position).
    let Json::Object(members) = item else { return invalid(None) };
    // A name that is not Unicode, or a member of the envelope named twice:
    // the object cannot be read for sure (RFC 8259 4), so not even its id.
    if members.iter().any(|(key, _)| key.is_none()) {
        return invalid(None);
    }
    let field = |name: &str| Json::member(members, name);
    let (Ok(version), Ok(method), Ok(params), Ok(id)) =
        (field("jsonrpc"), field("method"), field("params"), field("id"))
    else {
        return invalid(None);
    };
    if !matches!(id, None | Some(Json::Null | Json::Number(_) | Json::Str(_))) {
        return invalid(None);
    }
    let method = method.and_then(Json::string);
    // `"params": null` counts as omitted, a leniency the server keeps on
    // purpose (examples.rs pins it: math.add answers -32602, not -32600).
    let params_ok = matches!(params, None | Some(Json::Null | Json::Array(_) | Json::Object(_)));
    let version_ok = version.and_then(Json::string).as_deref() == Some("2.0");
    let (Some(method), true, true) = (method, params_ok, version_ok) else { return invalid(id) };
    let id = id?.scalar_text()?.to_owned();
    Some(Expected { id, outcome: call(&method, params, deployed) })
}

/// What a call of `method` answers on a server serving `deployed`.
fn call(method: &str, params: Option<&Json>, deployed: &[&str]) -> Outcome {
    if method == "rpc.discover" {
        return Outcome::Result;
    }
    // `math.add` is `add` of module `math`; `subtract` is `subtract` of `subtract`.
    let (module, function) = method.split_once('.').unwrap_or((method, method));
    match module {
        "rpc" => spec_error(-32601),
        _ if !deployed.contains(&module) => spec_error(-32601),
        "math" => math(function, params),
        _ => Outcome::Any,
    }
}

/// What `procedures/math` answers: checked 64-bit integer arithmetic
/// (error 1 with both operands on overflow), float division (error 1 with
/// `a` when dividing by zero), rounding and stats; -32601 for a method it
/// does not have; -32602 (from the guest SDK) for params that do not fit.
fn math(function: &str, params: Option<&Json>) -> Outcome {
    let names: &[&str] = match function {
        "add" | "subtract" | "multiply" | "divide" => &["a", "b"],
        "round" => &["x", "digits"],
        "stats" => &["values"],
        _ => return spec_error(-32601),
    };
    let Some(args) = arguments(params, names) else { return invalid_params() };
    let fail = |message: String, data: Value| Outcome::Error { code: 1, message: Some(message), data: Data::Is(data) };
    match function {
        "add" | "subtract" | "multiply" => {
            let (Some(a), Some(b)) = (integer(args[0]), integer(args[1])) else { return invalid_params() };
            let value = match function {
                "add" => a.checked_add(b),
                "subtract" => a.checked_sub(b),
                _ => a.checked_mul(b),
            };
            value.map_or_else(
                || fail(format!("integer overflow in {function}"), json!({"a": a, "b": b})),
                |v| Outcome::Returns(json!(v)),
            )
        }
        "divide" => {
            let (Some(a), Some(b)) = (float(args[0]), float(args[1])) else { return invalid_params() };
            if b.value == 0.0 {
                return fail("division by zero".into(), json!({"a": a.value}));
            }
            // JSON has no infinity: serde_json writes it as null.
            Outcome::Returns(Value::from(a.value / b.value))
        }
        "round" => {
            let Some(x) = float(args[0]) else { return invalid_params() };
            let digits = match args[1] {
                None | Some(Json::Null) => 0,
                Some(Json::Number(text)) => match serde_json::from_str::<u8>(text) {
                    Ok(digits) => digits,
                    Err(_) => return invalid_params(),
                },
                Some(_) => return invalid_params(),
            };
            let factor = 10f64.powi(i32::from(digits.min(15)));
            // Rounding amplifies a last-bit difference in reading x.
            if !x.exact {
                return Outcome::Result;
            }
            Outcome::Returns(Value::from((x.value * factor).round() / factor))
        }
        _ => {
            let Some(Json::Array(items)) = args[0] else { return invalid_params() };
            let Some(values) = items.iter().map(|v| float(Some(v))).collect::<Option<Vec<Float>>>() else {
                return invalid_params();
            };
            if values.iter().any(|v| !v.exact) {
                return Outcome::Result; // a sum amplifies a last-bit difference
            }
            let sum: f64 = values.iter().map(|v| v.value).sum();
            let mean = (!values.is_empty()).then(|| sum / values.len() as f64);
            Outcome::Returns(json!({"count": values.len(), "sum": Value::from(sum), "mean": mean.map(Value::from)}))
        }
    }
}

/// The params of a call, by position or by name, one slot per name
/// (`None`: not given); `None` if they cannot fit `names` (too many, an
/// unknown name) or are not JSON the procedure can read (it reads them
/// whole with serde_json: numbers within f64, Unicode strings, at most 127
/// levels deep; of a name given twice, the last counts).
fn arguments<'a>(params: Option<&'a Json>, names: &[&str]) -> Option<Vec<Option<&'a Json>>> {
    if !params.is_none_or(|p| readable(p, 1)) {
        return None;
    }
    match params {
        None | Some(Json::Null) => Some(vec![None; names.len()]),
        Some(Json::Array(items)) if items.len() <= names.len() => {
            Some((0..names.len()).map(|i| items.get(i)).collect())
        }
        Some(Json::Object(members)) => {
            if members.iter().any(|(key, _)| !names.contains(&key.as_deref().unwrap_or_default())) {
                return None;
            }
            let last = |name: &str| members.iter().rev().find(|(key, _)| key.as_deref() == Some(name)).map(|(_, v)| v);
            Some(names.iter().map(|name| last(name)).collect())
        }
        _ => None,
    }
}

/// Whether serde_json reads `value`, `depth` levels down, into a `Value`.
fn readable(value: &Json, depth: usize) -> bool {
    match value {
        Json::Number(text) => text.parse::<f64>().is_ok_and(f64::is_finite),
        Json::Str(_) => value.string().is_some(),
        Json::Array(items) => depth < 128 && items.iter().all(|v| readable(v, depth + 1)),
        Json::Object(members) => depth < 128 && members.iter().all(|(key, v)| key.is_some() && readable(v, depth + 1)),
        Json::Null | Json::Bool(_) => true,
    }
}

/// A parameter of type i64: an integer as serde_json reads it (so not
/// `1.0`, and not `-0`, which it reads as a float).
fn integer(value: Option<&Json>) -> Option<i64> {
    match value? {
        Json::Number(text) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

/// A parameter of type f64, and whether any JSON reader gets the very same
/// bits from its text: at most 15 digits and a power of ten within 1e22,
/// so one exact operation, correctly rounded.
struct Float {
    value: f64,
    exact: bool,
}

fn float(value: Option<&Json>) -> Option<Float> {
    let Json::Number(text) = value? else { return None };
    let value = text.parse::<f64>().ok().filter(|f| f.is_finite())?;
    let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let unsigned = mantissa.trim_start_matches('-');
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = format!("{whole}{fraction}");
    let power = exponent.parse::<i64>().map(|e| e - fraction.len() as i64);
    let exact = digits.trim_start_matches('0').len() <= 15 && power.is_ok_and(|p| (-22..=22).contains(&p));
    Some(Float { value, exact })
}

/// Checks `answer` (`None`: the server answered nothing, HTTP 204) against
/// what `body` must get.
pub fn check(body: &[u8], setup: Setup, answer: Option<&[u8]>) -> Result<(), String> {
    let due = expected(body, setup);
    let Some(answer) = answer else {
        return match due {
            Answer::Nothing => Ok(()),
            Answer::Batch(list) if list.is_empty() => Ok(()),
            other => Err(format!("no answer, but {other:?} is due")),
        };
    };
    let value = Json::read(answer).ok_or_else(|| "the answer is not JSON".to_owned())?;
    match due {
        Answer::ParseError => response(&value, &Expected { id: "null".into(), outcome: spec_error(-32700) }),
        Answer::Nothing => Err(format!("a notification was answered: {value}")),
        Answer::One(expected) => response(&value, &expected),
        Answer::Batch(list) => batch(&value, &list),
    }
}

/// Checks a batch's answer: one response per due entry, in any order (a
/// perfect matching of responses to due entries, so that entries with the
/// same id cannot steal each other's responses).
fn batch(value: &Json, due: &[Expected]) -> Result<(), String> {
    if due.is_empty() {
        return Err(format!("only notifications, yet an answer: {value}"));
    }
    let Json::Array(responses) = value else { return Err(format!("a batch answered with {value}")) };
    if responses.len() != due.len() {
        return Err(format!("{} responses, {} due: {value}", responses.len(), due.len()));
    }
    let mut fits = Vec::with_capacity(responses.len());
    for r in responses {
        let row: Vec<Result<(), String>> = due.iter().map(|e| response(r, e)).collect();
        if row.iter().all(Result::is_err) {
            let reasons: Vec<String> = row.into_iter().filter_map(Result::err).collect();
            return Err(format!("{r} answers nothing due ({reasons:?}) in {value}"));
        }
        fits.push(row.iter().map(Result::is_ok).collect::<Vec<bool>>());
    }
    // Kuhn's augmenting paths: owner[e] is the response given to entry e.
    fn augment(r: usize, fits: &[Vec<bool>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
        for e in 0..owner.len() {
            if fits[r][e] && !seen[e] {
                seen[e] = true;
                if owner[e].is_none_or(|o| augment(o, fits, owner, seen)) {
                    owner[e] = Some(r);
                    return true;
                }
            }
        }
        false
    }
    let mut owner = vec![None; due.len()];
    for r in 0..responses.len() {
        if !augment(r, &fits, &mut owner, &mut vec![false; due.len()]) {
            return Err(format!("no way to give each due entry ({due:?}) its own response: {value}"));
        }
    }
    Ok(())
}

/// Checks one response object against what was due.
fn response(value: &Json, expected: &Expected) -> Result<(), String> {
    let Json::Object(members) = value else { return Err(format!("not a response object: {value}")) };
    let field = |name: &str| Json::member(members, name).map_err(|()| format!("{name} twice: {value}"));
    let (version, id, result, error) = (field("jsonrpc")?, field("id")?, field("result")?, field("error")?);
    if members.len() != 3 || version.and_then(Json::string).as_deref() != Some("2.0") || id.is_none() {
        return Err(format!("not a JSON-RPC 2.0 response: {value}"));
    }
    if id.and_then(Json::scalar_text) != Some(&expected.id) {
        return Err(format!("id {} due: {value}", expected.id));
    }
    match (result, error, &expected.outcome) {
        (Some(_), None, Outcome::Result | Outcome::Any) => Ok(()),
        (Some(result), None, Outcome::Returns(due)) if same(result, due) => Ok(()),
        (Some(_), None, outcome) => Err(format!("{outcome:?} due, got a result: {value}")),
        (None, Some(Json::Object(error)), outcome) => {
            let field = |name: &str| Json::member(error, name).map_err(|()| format!("error.{name} twice: {value}"));
            let (code, message, data) = (field("code")?, field("message")?, field("data")?);
            let code = match code {
                Some(Json::Number(text)) => serde_json::from_str::<i32>(text).ok(),
                _ => None,
            };
            let code = code.ok_or(format!("error code is not a 32-bit integer: {value}"))?;
            let message = message.and_then(Json::string);
            if message.is_none() || error.len() != 2 + usize::from(data.is_some()) {
                return Err(format!("error is not {{code, message, data?}}: {value}"));
            }
            let Outcome::Error { code: due, message: due_message, data: due_data } = outcome else {
                return match outcome {
                    Outcome::Any => Ok(()),
                    _ => Err(format!("{outcome:?} due, got an error: {value}")),
                };
            };
            if i64::from(code) != *due {
                return Err(format!("error {due} due: {value}"));
            }
            if due_message.as_ref().is_some_and(|m| message.as_ref() != Some(m)) {
                return Err(format!("message {due_message:?} due: {value}"));
            }
            match (due_data, data) {
                (Data::Any, _) | (Data::Absent, None) => Ok(()),
                (Data::Is(due), Some(data)) if same(data, due) => Ok(()),
                _ => Err(format!("data {due_data:?} due: {value}")),
            }
        }
        _ => Err(format!("needs exactly one of result and error, an error an object: {value}")),
    }
}

/// Whether `json` is `due`: integers exactly, other numbers within a few
/// units in the last place, objects whatever the order of their members.
fn same(json: &Json, due: &Value) -> bool {
    match (json, due) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Bool(b)) => a == b,
        (Json::Number(text), Value::Number(n)) if n.is_f64() => text.parse::<f64>().is_ok_and(|got| {
            let want = n.as_f64().unwrap_or(f64::NAN);
            (got - want).abs() <= (4.0 * f64::EPSILON * want.abs()).max(f64::from_bits(4))
        }),
        (Json::Number(text), Value::Number(n)) => match n.as_i64() {
            Some(n) => text.parse::<i64>() == Ok(n),
            None => text.parse::<u64>().ok() == n.as_u64(),
        },
        (Json::Str(_), Value::String(s)) => json.string().as_ref() == Some(s),
        (Json::Array(items), Value::Array(due)) => {
            items.len() == due.len() && items.iter().zip(due).all(|(a, b)| same(a, b))
        }
        (Json::Object(members), Value::Object(due)) => {
            members.len() == due.len()
                && due.iter().all(|(k, v)| Json::member(members, k).ok().flatten().is_some_and(|m| same(m, v)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MATH: Setup = Setup { modules: &["math"], max_batch: 2 };
    const NONE: Setup = Setup { modules: &[], max_batch: 2 };
    const OTHER: Setup = Setup { modules: &["other"], max_batch: 2 };

    fn some(bytes: &[u8]) -> Option<&[u8]> {
        Some(bytes)
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// A call of `method` with `params` (JSON text) and id `id` (JSON text).
    fn call(method: &str, params: &str, id: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":{id}}}"#)
    }

    fn result(result: &str, id: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","result":{result},"id":{id}}}"#)
    }

    fn error(code: i64, message: &str, data: Option<&str>, id: &str) -> String {
        let data = data.map(|d| format!(r#","data":{d}"#)).unwrap_or_default();
        format!(r#"{{"jsonrpc":"2.0","error":{{"code":{code},"message":"{message}"{data}}},"id":{id}}}"#)
    }

    fn ok(body: &str, answer: &str) {
        assert_eq!(check(body.as_bytes(), MATH, Some(answer.as_bytes())), Ok(()), "{body} -> {answer}");
    }

    fn wrong(body: &str, answer: Option<&str>, why: &str) {
        let verdict = check(body.as_bytes(), MATH, answer.map(str::as_bytes));
        assert!(verdict.is_err(), "accepted {answer:?} to {body}, though {why}");
    }

    /// The oracle itself rejects wrong answers (a checker that accepts
    /// everything would make the property test pass vacuously).
    #[test]
    fn the_oracle_rejects_wrong_answers() {
        let call7 = br#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":7}"#;
        let ok7 = br#"{"jsonrpc":"2.0","result":3,"id":7}"#;
        assert_eq!(check(call7, MATH, some(ok7)), Ok(()));
        assert!(check(call7, MATH, None).is_err(), "204 to a call");
        assert!(check(call7, MATH, some(br#"{"jsonrpc":"2.0","result":3,"id":8}"#)).is_err(), "wrong id");
        assert!(check(call7, NONE, some(ok7)).is_err(), "a result from an undeployed module");
        assert!(check(call7, MATH, some(br#"{"jsonrpc":"2.0","result":3,"id":7,"x":1}"#)).is_err(), "extra key");

        let note = br#"{"jsonrpc":"2.0","method":"math.add","params":[1,2]}"#;
        assert_eq!(check(note, MATH, None), Ok(()));
        assert!(check(note, MATH, some(ok7)).is_err(), "a notification answered");
        let null_params = br#"{"jsonrpc":"2.0","method":"math.add","params":null}"#;
        assert_eq!(check(null_params, MATH, None), Ok(()), "null params count as omitted");

        let batch = format!("[{},{}]", text(call7), text(note));
        assert_eq!(check(batch.as_bytes(), MATH, Some(format!("[{}]", text(ok7)).as_bytes())), Ok(()));
        assert!(check(batch.as_bytes(), MATH, Some(format!("[{0},{0}]", text(ok7)).as_bytes())).is_err());
        assert!(check(batch.as_bytes(), MATH, Some(text(ok7).as_bytes())).is_err(), "a batch answered unwrapped");
        assert!(check(batch.as_bytes(), MATH, None).is_err(), "204 to a batch with a call");
        let notes = format!("[{0},{0}]", text(note));
        assert_eq!(check(notes.as_bytes(), MATH, None), Ok(()));
        assert!(check(notes.as_bytes(), MATH, some(b"[]")).is_err(), "an answer to notifications only");
        let three = format!("[{0},{0},{0}]", text(call7));
        assert!(
            check(three.as_bytes(), MATH, Some(format!("[{0},{0},{0}]", text(ok7)).as_bytes())).is_err(),
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
        assert!(check(br#"{"jsonrpc":"2.0","method":"nope.x","id":1}"#, MATH, some(ok7)).is_err());
        let with_data = br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":1},"id":1}"#;
        assert!(check(br#"{"jsonrpc":"2.0","method":"nope.x","id":1}"#, MATH, some(with_data)).is_err());
        let invalid_msg = br#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Bad"},"id":null}"#;
        assert!(check(b"{}", MATH, some(invalid_msg)).is_err(), "-32600 with another message");
    }

    /// `math`'s answers are known: a server answering -32603 to every call,
    /// a wrong sum, a wrapped overflow or a division by zero answered
    /// otherwise than the procedure does all fail.
    #[test]
    fn the_oracle_knows_maths_answers() {
        let add = call("math.add", "[1,2]", "1");
        ok(&add, &result("3", "1"));
        ok(&call("math.add", r#"{"b":2,"a":1}"#, "1"), &result("3", "1"));
        ok(&call("math.subtract", "[1,2]", "1"), &result("-1", "1"));
        ok(&call("math.multiply", "[-4,5]", "1"), &result("-20", "1"));
        let internal = error(-32603, "Internal error", None, "1");
        for body in [&add, &call("math.divide", "[1,0]", "1"), &call("math.nope", "[]", "1")] {
            wrong(body, Some(&internal), "-32603 is no answer to a call of math");
        }
        let batch = format!("[{add},{}]", call("math.add", "[2,2]", "2"));
        wrong(&batch, Some(&format!("[{internal},{}]", error(-32603, "Internal error", None, "2"))), "-32603 to all");
        ok(&batch, &format!("[{},{}]", result("4", "2"), result("3", "1")));
        wrong(&batch, Some(&format!("[{},{}]", result("3", "2"), result("4", "1"))), "the sums are swapped");
        wrong(&add, Some(&result("4", "1")), "1 + 2 is 3");
        wrong(&add, Some(&result("3.0", "1")), "an i64 is answered as an integer");
        wrong(&add, Some(&result("\"3\"", "1")), "3 is a number");
        wrong(&add, Some(&error(-32602, "m", None, "1")), "the params are valid");

        let max = call("math.add", "[9223372036854775807,1]", "1");
        ok(&max, &error(1, "integer overflow in add", Some(r#"{"b":1,"a":9223372036854775807}"#), "1"));
        wrong(&max, Some(&result("-9223372036854775808", "1")), "the guest checks overflow");
        wrong(&max, Some(&error(1, "integer overflow in add", Some(r#"{"a":1,"b":1}"#), "1")), "data: the operands");
        wrong(&max, Some(&error(1, "integer overflow in add", None, "1")), "the operands go in data");
        let product = call("math.multiply", "[4611686018427387904,2]", "1");
        ok(&product, &error(1, "integer overflow in multiply", Some(r#"{"a":4611686018427387904,"b":2}"#), "1"));

        let by_zero = call("math.divide", "[5,0]", "1");
        ok(&by_zero, &error(1, "division by zero", Some(r#"{"a":5.0}"#), "1"));
        ok(&call("math.divide", "[5,-0.0]", "1"), &error(1, "division by zero", Some(r#"{"a":5.0}"#), "1"));
        wrong(&by_zero, Some(&error(1, "division by zero", None, "1")), "data has a");
        wrong(&by_zero, Some(&error(1, "division by zero", Some(r#"{"a":6.0}"#), "1")), "a is 5");
        wrong(&by_zero, Some(&error(-32602, "division by zero", Some(r#"{"a":5.0}"#), "1")), "the code is 1");
        wrong(&by_zero, Some(&error(1, "divided by zero", Some(r#"{"a":5.0}"#), "1")), "the message is the guest's");
        wrong(&by_zero, Some(&result("null", "1")), "an infinity is an error here");
        ok(&call("math.divide", "[1,3]", "1"), &result("0.3333333333333333", "1"));
        wrong(&call("math.divide", "[1,3]", "1"), Some(&result("0.33", "1")), "1/3 to the last bit");
        ok(&call("math.divide", "[1e308,1e-308]", "1"), &result("null", "1"));
        ok(&call("math.round", "[2.345,2]", "1"), &result("2.35", "1"));
        ok(&call("math.stats", "[[1,2,4]]", "1"), &result(r#"{"sum":7.0,"count":3,"mean":2.3333333333333335}"#, "1"));
        ok(&call("math.stats", "[[]]", "1"), &result(r#"{"count":0,"sum":-0.0,"mean":null}"#, "1"));
        wrong(&call("math.stats", "[[]]", "1"), Some(&result(r#"{"count":0,"sum":0}"#, "1")), "mean is null");

        let nope = call("math.nope", "[1,2]", "1");
        ok(&nope, &error(-32601, "Method not found", None, "1"));
        ok(&call("math", "[1,2]", "1"), &error(-32601, "Method not found", None, "1"));
        ok(&call("math.add.x", "[1,2]", "1"), &error(-32601, "Method not found", None, "1"));
        wrong(&nope, Some(&error(-32601, "Method not found", Some(r#"{"method":"math.nope"}"#), "1")), "no data");
        wrong(&nope, Some(&error(-32601, "method not found", None, "1")), "the spec's message");
        wrong(&nope, Some(&error(-32602, "Invalid params", None, "1")), "not found comes first");

        let invalid_params = error(-32602, "invalid parameter", Some(r#"{"parameter":"a"}"#), "1");
        for params in [
            r#"["1",2]"#,
            "[1.5,2]",
            "[1.0,2]",
            "[-0,2]",
            "[1e2,2]",
            "[9223372036854775808,2]",
            "[null,2]",
            "[1]",
            "[1,2,3]",
            r#"{"a":1}"#,
            r#"{"a":1,"b":2,"c":3}"#,
            r#"{"a":1,"b":2,"a\ud800":3}"#,
            "[1e400,2]",
            "null",
        ] {
            let body = call("math.add", params, "1");
            ok(&body, &invalid_params);
            wrong(&body, Some(&result("3", "1")), "the params do not fit");
            wrong(&body, Some(&internal), "wrong params are -32602");
        }
        ok(&call("math.divide", r#"["1",2]"#, "1"), &invalid_params);
        ok(&call("math.round", "[1.5,256]", "1"), &invalid_params);
        ok(&call("math.stats", "[[1,true]]", "1"), &invalid_params);
        let deep = format!("[1,{}2{}]", "[".repeat(200), "]".repeat(200));
        ok(&call("math.add", &deep, "1"), &invalid_params);
        // A name given twice: the last counts, but the first must be readable too.
        ok(&call("math.add", r#"{"a":5,"a":1,"b":2}"#, "1"), &result("3", "1"));
        ok(&call("math.add", r#"{"a":1e400,"a":1,"b":2}"#, "1"), &invalid_params);
        // A module the oracle does not know may answer anything.
        let other = call("other.x", "[]", "1");
        assert_eq!(check(other.as_bytes(), OTHER, Some(internal.as_bytes())), Ok(()));
        assert_eq!(check(other.as_bytes(), OTHER, Some(result("3", "1").as_bytes())), Ok(()));
    }

    /// Bodies nested past serde_json's 128 levels and ids beyond f64 are
    /// judged too, not waved through.
    #[test]
    fn the_oracle_judges_deep_bodies_and_huge_ids() {
        let deep = |d: usize| format!("{}1{}", "[".repeat(d), "]".repeat(d));
        let invalid_null = error(-32600, "Invalid Request", None, "null");
        for d in [1, 2, 300] {
            let body = deep(d);
            ok(&body, &format!("[{invalid_null}]"));
            wrong(&body, None, "a batch of one invalid request is answered");
            wrong(&body, Some("not json"), "the answer is JSON");
            wrong(&body, Some(&invalid_null), "a batch is answered with an array");
            wrong(&body, Some(&format!("[{}]", error(-32700, "Parse error", None, "null"))), "it is JSON");
            wrong(&body, Some(&format!("[{}]", error(-32600, "Invalid Request", None, "1"))), "no id to echo");
        }
        let deep_id = call("math.add", "[1,2]", &deep(300));
        ok(&deep_id, &invalid_null);
        wrong(&deep_id, None, "an invalid id is no notification");
        wrong(&deep_id, Some(&result("3", "null")), "an array is no id");
        let deep_member = format!(r#"{{"jsonrpc":"2.0","method":"math.add","params":[1,2],"x":{},"id":1}}"#, deep(300));
        ok(&deep_member, &result("3", "1"));
        wrong(&deep_member, Some(&invalid_null), "other members are ignored");
        let deep_note = format!(r#"{{"jsonrpc":"2.0","method":"math.add","params":[1,2],"x":{}}}"#, deep(300));
        assert_eq!(check(deep_note.as_bytes(), MATH, None), Ok(()));
        wrong(&deep_note, Some(&invalid_null), "a notification");
        ok(&call("math.add", &deep(300), "1"), &error(-32602, "too deep", None, "1"));

        for id in ["1e400", "-1e400", "123456789012345678901234567890", "1.0", "1E+2", "2.50", "\"\\u00e9\""] {
            let body = call("math.add", "[1,2]", id);
            ok(&body, &result("3", id));
            wrong(&body, None, "a call with an id");
            wrong(&body, Some(&result("3", "null")), "the id could be read");
            wrong(&body, Some(&result("4", id)), "1 + 2 is 3");
            let other = if id.starts_with('"') { "\"é\"".to_owned() } else { format!("\"{id}\"") };
            wrong(&body, Some(&result("3", &other)), "ids are echoed as written");
        }
        wrong(&call("math.add", "[1,2]", "1e400"), Some(&result("3", "1e999")), "another id");
        wrong(&call("math.add", "[1,2]", "1.0"), Some(&result("3", "1")), "ids are echoed byte for byte");
        let by_zero = call("math.divide", "[5,0]", "1e400");
        ok(&by_zero, &error(1, "division by zero", Some(r#"{"a":5.0}"#), "1e400"));
        let batch =
            format!("[{},{},{}]", call("math.add", "[1,2]", "1e400"), deep(200), call("math.nope", "[]", "-1e400"));
        let setup = Setup { modules: &["math"], max_batch: 8 };
        let answer =
            format!("[{invalid_null},{},{}]", error(-32601, "Method not found", None, "-1e400"), result("3", "1e400"));
        assert_eq!(check(batch.as_bytes(), setup, Some(answer.as_bytes())), Ok(()));
        assert!(check(batch.as_bytes(), setup, None).is_err());
        let short = format!("[{invalid_null},{}]", result("3", "1e400"));
        assert!(check(batch.as_bytes(), setup, Some(short.as_bytes())).is_err());
    }

    /// Envelope cases the spec decides where a reader could go astray.
    #[test]
    fn the_oracle_reads_envelopes_as_the_spec_does() {
        let invalid_null = error(-32600, "Invalid Request", None, "null");
        // A request is an object: an array of its members' values is not one.
        let by_position = r#"[["2.0","math.add",[1,2],1]]"#;
        ok(by_position, &format!("[{invalid_null}]"));
        wrong(by_position, Some(&format!("[{}]", result("3", "1"))), "an array is not a request");
        // Escapes in strings are the characters they stand for.
        ok(r#"{"jsonrpc":"2\u002e0","method":"math\u002eadd","params":[1,2],"id":1}"#, &result("3", "1"));
        ok(r#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"i\u0064":1}"#, &result("3", "1"));
        // An envelope member twice, or a name that is not Unicode: unreadable, id null.
        ok(r#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":1,"id":2}"#, &invalid_null);
        ok(r#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"\ud800":1,"id":3}"#, &invalid_null);
        ok(r#"{"jsonrpc":"2.0","method":"math.add","params":[1,2],"x":1,"x":2,"id":3}"#, &result("3", "3"));
        // The id is echoed where it could be read.
        ok(r#"{"jsonrpc":"1.0","method":"math.add","id":"k"}"#, &error(-32600, "Invalid Request", None, "\"k\""));
        // Responses sharing an id are matched as a whole, not greedily.
        let setup = Setup { modules: &["math"], max_batch: 8 };
        let body = format!("[{},{}]", call("rpc.discover", "null", "1"), call("math.add", "[1,2]", "1"));
        let answer = format!("[{},{}]", result("3", "1"), result("{}", "1"));
        assert_eq!(check(body.as_bytes(), setup, Some(answer.as_bytes())), Ok(()));
        let both_three = format!("[{0},{0}]", result("3", "1"));
        assert!(check(body.as_bytes(), setup, Some(both_three.as_bytes())).is_ok(), "discover may answer 3");
        let both_four = format!("[{0},{0}]", result("4", "1"));
        assert!(check(body.as_bytes(), setup, Some(both_four.as_bytes())).is_err());
    }
}
