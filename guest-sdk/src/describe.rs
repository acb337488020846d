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
/// recursive. Every named Rust type keeps its name as the inlined schema's
/// `title` (`Invoice`, `Customer`), so client stubs generated from
/// `rpc.discover` name their types as the procedure's author did.
fn schema<T: JsonSchema>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft07();
    // schemars puts named types under `definitions` (inlining them itself
    // would drop their names); `inline_named` inlines them with a title.
    // Without `RemoveRefSiblings`, a field's doc comment stays beside its
    // `$ref` and lands on the inlined schema.
    settings.transforms = vec![
        Box::new(schemars::transform::ReplaceUnevaluatedProperties::default()),
        Box::new(schemars::transform::ReplacePrefixItems::default()),
    ];
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        // One document holds many schemas: the dialect is OpenRPC's.
        object.remove("$schema");
        let definitions = match object.remove("definitions") {
            Some(Value::Object(definitions)) => definitions,
            _ => Map::new(),
        };
        let mut recursive = Vec::new();
        inline_named(&mut schema, &definitions, &mut Vec::new(), &mut recursive);
        // What is left as a `$ref` is recursive: its definition stays, inlined
        // in turn (which may find more).
        let mut kept = Map::new();
        while let Some(name) = recursive.iter().find(|n| !kept.contains_key(*n)).cloned() {
            let mut definition = titled(&definitions, &name);
            inline_named(&mut definition, &definitions, &mut vec![name.clone()], &mut recursive);
            kept.insert(name, definition);
        }
        if let (false, Some(object)) = (kept.is_empty(), schema.as_object_mut()) {
            object.insert("definitions".into(), Value::Object(kept));
        }
    }
    drop_unknown_formats(&mut schema);
    schema
}

const DEFINITIONS: &str = "#/definitions/";

/// Definition `name` with `title: name` (unless it has a title of its own).
fn titled(definitions: &Map<String, Value>, name: &str) -> Value {
    let mut definition = definitions.get(name).cloned().unwrap_or(Value::Bool(true));
    if let Some(object) = definition.as_object_mut() {
        object.entry("title").or_insert_with(|| name.into());
    }
    definition
}

/// Replaces every `$ref` to `#/definitions/NAME` in `value` by the titled
/// definition (the `$ref`'s siblings, such as a field's `description`, win),
/// except a reference to a definition being inlined (`stack`): that one is
/// recursive, stays a `$ref` and its name goes to `recursive`.
fn inline_named(
    value: &mut Value,
    definitions: &Map<String, Value>,
    stack: &mut Vec<String>,
    recursive: &mut Vec<String>,
) {
    match value {
        Value::Object(object) => {
            let name = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(DEFINITIONS))
                .filter(|name| definitions.contains_key(*name))
                .map(str::to_owned);
            match name {
                Some(name) if stack.contains(&name) => {
                    if !recursive.contains(&name) {
                        recursive.push(name);
                    }
                    if object.len() > 1 {
                        // Draft-07 ignores a `$ref`'s siblings: keep them beside it.
                        let reference = object.remove("$ref").unwrap_or(Value::Null);
                        object.insert("allOf".into(), json!([{ "$ref": reference }]));
                    }
                }
                Some(name) => {
                    object.remove("$ref");
                    let mut inlined = titled(definitions, &name);
                    stack.push(name);
                    inline_named(&mut inlined, definitions, stack, recursive);
                    stack.pop();
                    object.values_mut().for_each(|v| inline_named(v, definitions, stack, recursive));
                    if let Value::Object(mut merged) = inlined {
                        merged.extend(std::mem::take(object));
                        *object = merged;
                    } else if object.is_empty() {
                        *value = inlined;
                    }
                }
                None => object.values_mut().for_each(|v| inline_named(v, definitions, stack, recursive)),
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| inline_named(v, definitions, stack, recursive)),
        _ => {}
    }
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

    /// A record in a record, an enum, and a recursive type.
    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Order {
        /// Who ordered.
        customer: Customer,
        coupon: Option<Coupon>,
        tree: Node,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Customer {
        name: String,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    enum Coupon {
        TenOff,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Node {
        children: Vec<Node>,
    }

    #[test]
    fn named_types_keep_their_names_as_titles() {
        let schema = param_object::<Order>("order")["schema"].clone();
        assert_eq!(schema["title"], "Order");
        let customer = &schema["properties"]["customer"];
        assert_eq!(customer["title"], "Customer", "{schema}");
        assert_eq!(customer["description"], "Who ordered.");
        assert_eq!(customer["properties"]["name"]["type"], "string");
        let coupon = &schema["properties"]["coupon"]["anyOf"];
        assert_eq!(coupon[0]["title"], "Coupon", "{schema}");
        assert_eq!(coupon[1]["type"], "null");
        // The recursive type is inlined once, then refers to itself.
        let tree = &schema["properties"]["tree"];
        assert_eq!(tree["title"], "Node", "{schema}");
        assert_eq!(tree["properties"]["children"]["items"]["$ref"], "#/definitions/Node");
        assert_eq!(schema["definitions"]["Node"]["title"], "Node");
        assert_eq!(schema["definitions"]["Node"]["properties"]["children"]["items"]["$ref"], "#/definitions/Node");
        assert!(schema["definitions"].get("Customer").is_none(), "{schema}");
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
