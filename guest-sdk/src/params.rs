//! Params of a call: JSON text in, one typed argument at a time out, with a
//! `-32602 Invalid params` error naming the parameter when they do not fit.

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::Error;

/// The params of one call, checked against the method's parameter names.
#[derive(Debug)]
pub struct Params {
    names: &'static [&'static str],
    by_position: Vec<Option<Value>>,
    by_name: Map<String, Value>,
}

impl Params {
    /// Parses `text` (an array, an object or `null`) for a method whose
    /// parameters are `names`: too many positional params or an unknown
    /// name is an error here.
    pub fn parse(text: &str, names: &'static [&'static str]) -> Result<Params, Error> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::invalid_params(format!("params are not valid JSON: {e}")))?;
        let mut params = Params { names, by_position: Vec::new(), by_name: Map::new() };
        match value {
            Value::Null => {}
            Value::Array(values) => {
                if values.len() > names.len() {
                    return Err(Error::invalid_params(format!(
                        "too many parameters: expected at most {} ({}), got {}",
                        names.len(),
                        list(names),
                        values.len()
                    ))
                    .with_data(json!({ "expected": names, "got": values.len() })));
                }
                params.by_position = values.into_iter().map(Some).collect();
            }
            Value::Object(map) => {
                if let Some(unknown) = map.keys().find(|key| !names.contains(&key.as_str())) {
                    return Err(Error::invalid_params(format!(
                        "unknown parameter `{unknown}`: expected {}",
                        if names.is_empty() { "no parameters".to_owned() } else { list(names) }
                    ))
                    .with_data(json!({ "parameter": unknown, "expected": names })));
                }
                params.by_name = map;
            }
            other => {
                return Err(Error::invalid_params(format!(
                    "params must be an array or an object, not {}",
                    kind(&other)
                )))
            }
        }
        Ok(params)
    }

    /// Takes parameter `index` (by position or by its name) as a `T`. A
    /// missing parameter is `null`, so `Option<T>` parameters may be left out.
    pub fn take<T: DeserializeOwned>(&mut self, index: usize) -> Result<T, Error> {
        let name = self.names.get(index).copied().unwrap_or("?");
        let given = match self.by_position.get_mut(index) {
            Some(slot) => slot.take(),
            None => self.by_name.remove(name),
        };
        let expected = type_name::<T>();
        match given {
            Some(value) => serde_json::from_value(value).map_err(|e| {
                Error::invalid_params(format!("invalid parameter `{name}`: {e}"))
                    .with_data(json!({ "parameter": name, "expected": expected }))
            }),
            None => serde_json::from_value(Value::Null).map_err(|_| {
                Error::invalid_params(format!("missing parameter `{name}` (expected {expected})"))
                    .with_data(json!({ "parameter": name, "expected": expected }))
            }),
        }
    }
}

fn list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `T`'s name without module paths: `Option<String>`, `Vec<i64>`.
fn type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        out.push_str(segment.rsplit("::").next().unwrap_or(segment));
        segment.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            flush(&mut segment, &mut out);
            out.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["a", "b"];

    #[test]
    fn by_position_and_by_name() {
        let mut p = Params::parse("[1, 2]", NAMES).unwrap();
        assert_eq!((p.take::<i64>(0).unwrap(), p.take::<i64>(1).unwrap()), (1, 2));
        let mut p = Params::parse(r#"{"b": 2, "a": 1}"#, NAMES).unwrap();
        assert_eq!((p.take::<i64>(0).unwrap(), p.take::<i64>(1).unwrap()), (1, 2));
    }

    #[test]
    fn options_may_be_left_out() {
        let mut p = Params::parse("[1]", NAMES).unwrap();
        assert_eq!(p.take::<i64>(0).unwrap(), 1);
        assert_eq!(p.take::<Option<i64>>(1).unwrap(), None);
        let mut p = Params::parse("null", NAMES).unwrap();
        assert_eq!(p.take::<Option<String>>(0).unwrap(), None);
    }

    #[test]
    fn errors_name_the_parameter() {
        let err = Params::parse("[1]", NAMES).unwrap().take::<i64>(1).unwrap_err();
        assert_eq!(err.code, -32602);
        assert_eq!(err.message, "missing parameter `b` (expected i64)");

        let err = Params::parse(r#"["x"]"#, NAMES).unwrap().take::<i64>(0).unwrap_err();
        assert_eq!(err.message, "invalid parameter `a`: invalid type: string \"x\", expected i64");
        assert_eq!(err.data, Some(json!({"parameter": "a", "expected": "i64"})));

        let err = Params::parse("[1, 2, 3]", NAMES).unwrap_err();
        assert_eq!(err.message, "too many parameters: expected at most 2 (`a`, `b`), got 3");

        let err = Params::parse(r#"{"a": 1, "c": 2}"#, NAMES).unwrap_err();
        assert_eq!(err.message, "unknown parameter `c`: expected `a`, `b`");

        let err = Params::parse("5", NAMES).unwrap_err();
        assert_eq!(err.message, "params must be an array or an object, not a number");
    }

    #[test]
    fn type_names_are_short() {
        assert_eq!(type_name::<Option<Vec<String>>>(), "Option<Vec<String>>");
        assert_eq!(type_name::<std::collections::HashMap<String, i64>>(), "HashMap<String, i64>");
    }
}
