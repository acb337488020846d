//! `describe`: the module's methods as OpenRPC Method Objects, with JSON
//! Schemas (draft-07, subschemas inlined) made by `schemars` from the types.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::__private::Method;

/// The JSON text `describe` returns: `{"methods": [Method Objects]}`.
pub fn describe(methods: &[Method]) -> String {
    let methods: Vec<Value> = methods.iter().map(|m| (m.describe)()).collect();
    json!({ "methods": methods }).to_string()
}

/// An OpenRPC Method Object. `docs` is the function's doc comment: its first
/// paragraph is the `summary`, the whole of it the `description`.
pub fn method_object(name: &str, docs: &str, params: Vec<Value>, result: Value) -> Value {
    let docs = docs.trim();
    let mut method = Map::new();
    method.insert("name".into(), name.into());
    if !docs.is_empty() {
        let summary = docs.split("\n\n").next().unwrap_or(docs);
        method.insert("summary".into(), summary.split_whitespace().collect::<Vec<_>>().join(" ").into());
        method.insert("description".into(), docs.into());
    }
    method.insert("params".into(), params.into());
    method.insert("result".into(), result);
    method.insert("paramStructure".into(), "either".into());
    Value::Object(method)
}

/// The Content Descriptor of parameter `name` of type `T`; it is required
/// unless `T` accepts `null` (an `Option`).
pub fn param_object<T: JsonSchema + DeserializeOwned>(name: &str) -> Value {
    let required = serde_json::from_value::<T>(Value::Null).is_err();
    json!({ "name": name, "required": required, "schema": schema::<T>() })
}

/// The Content Descriptor of a result of type `T`.
pub fn result_object<T: JsonSchema>() -> Value {
    json!({ "name": "result", "schema": schema::<T>() })
}

/// `T`'s JSON Schema, draft-07, with subschemas inlined where they are not
/// recursive.
fn schema<T: JsonSchema>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft07();
    settings.inline_subschemas = true;
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        // One document holds many schemas: the dialect is OpenRPC's.
        object.remove("$schema");
    }
    drop_unknown_formats(&mut schema);
    schema
}

/// The `format`s JSON Schema draft-07 defines. schemars also writes its own
/// (`int64`, `uint8`, `double`, ...), which strict validators such as the
/// OpenRPC tools' ajv refuse as unknown; ranges stay in `minimum`/`maximum`.
const DRAFT07_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

fn drop_unknown_formats(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("format").and_then(Value::as_str).is_some_and(|f| !DRAFT07_FORMATS.contains(&f)) {
                object.remove("format");
            }
            object.values_mut().for_each(drop_unknown_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unknown_formats),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Point {
        x: f64,
        label: Option<String>,
    }

    #[test]
    fn params_know_whether_they_are_required() {
        assert_eq!(param_object::<i64>("a")["required"], true);
        assert_eq!(param_object::<Option<i64>>("a")["required"], false);
        assert_eq!(param_object::<i64>("a")["schema"]["type"], "integer");
    }

    #[test]
    fn only_standard_formats_remain() {
        let byte = param_object::<u8>("b");
        assert!(byte["schema"].get("format").is_none(), "{byte}");
        assert_eq!(byte["schema"]["maximum"], 255);
        let nested = param_object::<Vec<Option<f64>>>("v");
        assert!(!nested.to_string().contains("\"format\""), "{nested}");
    }

    #[test]
    fn structs_are_inlined() {
        let p = param_object::<Point>("p");
        assert_eq!(p["schema"]["type"], "object");
        assert_eq!(p["schema"]["properties"]["x"]["type"], "number");
        assert_eq!(p["schema"]["required"], json!(["x"]));
        assert!(p["schema"].get("$schema").is_none());
    }

    #[test]
    fn docs_become_summary_and_description() {
        let m = method_object("f", " Does f.\n continued\n\n More.", vec![], result_object::<()>());
        assert_eq!(m["summary"], "Does f. continued");
        assert_eq!(m["description"], "Does f.\n continued\n\n More.");
        let m = method_object("g", "", vec![], result_object::<()>());
        assert!(m.get("summary").is_none());
    }
}
