//! The language-neutral model of an OpenRPC document that every emitter
//! reads: procedures (the part of a method name before the first dot), their
//! methods and parameters, and the types of parameters and results made from
//! their JSON Schemas, with the names every language uses for them.
//!
//! A schema construct that has no type here (`oneOf` of records, `allOf`,
//! mixed `type` lists, ...) becomes [`Type::Any`] with the reason, which the
//! emitters write beside it as a comment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{bail, Context as _};
use serde_json::{Map, Value};

/// What a stub is generated from.
#[derive(Debug)]
pub struct Api {
    pub procedures: Vec<Procedure>,
    /// Every named type, in the order the methods first use them.
    pub types: Vec<Decl>,
    /// Where a schema could not be typed: one line each, for the user.
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct Procedure {
    /// The name on the wire (`math`).
    pub name: String,
    /// The type name of its namespace (`MathProcedure`).
    pub class: String,
    /// A second type name, for emitters that need one more (the Python
    /// stub's batch namespace, `MathBatch`).
    pub batch_class: String,
    pub methods: Vec<Method>,
}

#[derive(Debug)]
pub struct Method {
    /// The JSON-RPC method name (`math.add`).
    pub wire: String,
    /// The name within the procedure (`add`; `b.c` for `a.b.c`).
    pub name: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    /// In the document's order; emitters put required ones first.
    pub params: Vec<Param>,
    pub result: Type,
}

impl Method {
    /// Required parameters first, then the optional ones, each group in the
    /// document's order.
    pub fn params_in_call_order(&self) -> Vec<&Param> {
        let (required, optional): (Vec<&Param>, Vec<&Param>) = self.params.iter().partition(|p| p.required);
        required.into_iter().chain(optional).collect()
    }

    /// The doc comment: the description, else the summary.
    pub fn doc(&self) -> Option<&str> {
        self.description.as_deref().or(self.summary.as_deref())
    }
}

#[derive(Debug)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    pub required: bool,
    pub description: Option<String>,
}

/// A named type: a record (JSON object with known properties) or an enum of
/// strings.
#[derive(Debug)]
pub struct Decl {
    pub name: String,
    pub doc: Option<String>,
    pub kind: DeclKind,
}

#[derive(Debug)]
pub enum DeclKind {
    /// Fields sorted by name (a document's key order is not reliable).
    Record(Vec<Field>),
    Enum(Vec<String>),
}

#[derive(Debug)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub required: bool,
    pub doc: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// Any JSON; with the reason when the schema said more than a stub can type.
    Any(Option<String>),
    /// JSON `null` (a method that returns nothing).
    Null,
    Bool,
    Integer(IntRange),
    Number,
    String,
    List(Box<Type>),
    Tuple(Vec<Type>),
    /// An object with string keys and values of one type.
    Map(Box<Type>),
    Nullable(Box<Type>),
    /// An index into [`Api::types`].
    Named(usize),
}

/// The bounds of an integer schema, for emitters with sized integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Type {
    /// Whether JSON `null` is a value of this type.
    pub fn is_nullable(&self) -> bool {
        matches!(self, Type::Nullable(_) | Type::Null | Type::Any(_))
    }

    /// Every reason a part of this type could not be typed.
    pub fn untyped_reasons(&self) -> Vec<&str> {
        match self {
            Type::Any(Some(reason)) => vec![reason.as_str()],
            Type::List(t) | Type::Map(t) | Type::Nullable(t) => t.untyped_reasons(),
            Type::Tuple(items) => items.iter().flat_map(Type::untyped_reasons).collect(),
            _ => Vec::new(),
        }
    }
}

/// Names no generated type may take in any language: the stubs' own names
/// and the names the languages' stubs import or build on. A title that is
/// one of them gets a number (`Client2`), as a second, different type with
/// the same title does.
const RESERVED_TYPE_NAMES: &[&str] = &[
    "Answers",
    "Any",
    "Array",
    "Batch",
    "Boolean",
    "Box",
    "BTreeMap",
    "Call",
    "Callable",
    "Client",
    "ClientOptions",
    "Date",
    "Dict",
    "Error",
    "False",
    "JSON",
    "List",
    "Literal",
    "Map",
    "Math",
    "None",
    "Number",
    "Object",
    "Option",
    "Optional",
    "Pending",
    "Promise",
    "Record",
    "Result",
    "RpcError",
    "Self",
    "Set",
    "String",
    "Transport",
    "TransportError",
    "True",
    "Tuple",
    "TypeVar",
    "Union",
    "Value",
    "Vec",
];

/// Reads the OpenRPC document `doc`; `only` (procedure names) limits it.
pub fn build(doc: &Value, only: &[String]) -> anyhow::Result<Api> {
    let methods = methods_of(doc)?;
    let mut by_procedure: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for method in &methods {
        let wire = method_name(method)?;
        let (procedure, _) = split(wire);
        if only.is_empty() || only.iter().any(|o| o == procedure) {
            by_procedure.entry(procedure).or_default().push(method);
        }
    }
    for wanted in only {
        if !by_procedure.contains_key(wanted.as_str()) {
            let known: BTreeSet<&str> = methods.iter().filter_map(|m| m["name"].as_str()).map(|n| split(n).0).collect();
            let known: Vec<&str> = known.into_iter().collect();
            bail!(
                "--only {wanted}: the document has no procedure `{wanted}` (it has: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            );
        }
    }
    let mut types =
        Types { doc, decls: Vec::new(), by_schema: HashMap::new(), by_ref: HashMap::new(), names: Names::new() };
    let mut procedures = Vec::new();
    for (name, methods) in by_procedure {
        let mut converted = Vec::new();
        for method in methods {
            converted.push(types.method(name, method)?);
        }
        procedures.push((name.to_owned(), converted));
    }
    let Types { decls, mut names, .. } = types;
    let procedures: Vec<Procedure> = procedures
        .into_iter()
        .map(|(name, methods)| {
            let base = pascal(&name);
            let class = names.unique(&format!("{base}Procedure"));
            let batch_class = names.unique(&format!("{base}Batch"));
            Procedure { name, class, batch_class, methods }
        })
        .collect();
    let decls: Vec<Decl> = decls.into_iter().map(|d| d.unwrap_or_else(placeholder)).collect();
    let mut notes = Vec::new();
    for procedure in &procedures {
        for method in &procedure.methods {
            for param in &method.params {
                for reason in param.ty.untyped_reasons() {
                    notes.push(format!("{} parameter `{}`: {reason}", method.wire, param.name));
                }
            }
            for reason in method.result.untyped_reasons() {
                notes.push(format!("{} result: {reason}", method.wire));
            }
        }
    }
    for decl in &decls {
        if let DeclKind::Record(fields) = &decl.kind {
            for field in fields {
                for reason in field.ty.untyped_reasons() {
                    notes.push(format!("type {} field `{}`: {reason}", decl.name, field.name));
                }
            }
        }
    }
    Ok(Api { procedures, types: decls, notes })
}

fn placeholder() -> Decl {
    Decl { name: "Unreachable".into(), doc: None, kind: DeclKind::Record(Vec::new()) }
}

/// The Method Objects of `doc`, which must be an OpenRPC document.
fn methods_of(doc: &Value) -> anyhow::Result<Vec<Value>> {
    let Some(object) = doc.as_object() else {
        bail!("not an OpenRPC document: expected a JSON object with \"openrpc\" and \"methods\", got {}", kind(doc));
    };
    if !object.get("openrpc").is_some_and(Value::is_string) {
        bail!(
            "not an OpenRPC document: it has no \"openrpc\" version field (save the answer of `rpc.discover`, \
             e.g. `wasmrpc call rpc.discover > openrpc.json`)"
        );
    }
    match object.get("methods") {
        Some(Value::Array(methods)) => Ok(methods.clone()),
        _ => bail!("not an OpenRPC document: \"methods\" is missing or not an array"),
    }
}

fn method_name(method: &Value) -> anyhow::Result<&str> {
    method["name"].as_str().with_context(|| format!("a method object has no \"name\": {}", short(method)))
}

/// `math.add` -> (`math`, `add`); `subtract` -> (`subtract`, `subtract`), as
/// the server routes them.
fn split(wire: &str) -> (&str, &str) {
    wire.split_once('.').unwrap_or((wire, wire))
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

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The named types found so far, and how to find them again.
struct Types<'d> {
    doc: &'d Value,
    /// `None` while a recursive type is being converted.
    decls: Vec<Option<Decl>>,
    /// A record or enum seen before (by its schema) is the same type.
    by_schema: HashMap<String, usize>,
    /// `$ref` targets (JSON pointers) converted into named types.
    by_ref: HashMap<String, Option<usize>>,
    names: Names,
}

/// Where a schema sits: its root (for `#/definitions/...` references) and
/// the name an untitled record there gets.
#[derive(Clone, Copy)]
struct At<'a> {
    root: &'a Value,
    hint: &'a str,
}

impl<'d> Types<'d> {
    fn method(&mut self, procedure: &str, method: &Value) -> anyhow::Result<Method> {
        let wire = method_name(method)?.to_owned();
        let name = split(&wire).1.to_owned();
        let base = format!("{}{}", pascal(procedure), pascal(&name));
        let mut params = Vec::new();
        for param in method["params"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let param = self.deref_descriptor(param);
            let param_name = param["name"]
                .as_str()
                .with_context(|| format!("{wire}: a parameter has no \"name\": {}", short(param)))?
                .to_owned();
            let schema = &param["schema"];
            let hint = format!("{base}{}", pascal(&param_name));
            let ty = self.convert(schema, At { root: schema, hint: &hint });
            params.push(Param {
                name: param_name,
                ty,
                required: param["required"].as_bool().unwrap_or(false),
                description: text(param, "description").or_else(|| text(param, "summary")),
            });
        }
        let result = self.deref_descriptor(&method["result"]);
        let schema = &result["schema"];
        let hint = format!("{base}Result");
        let result = if schema.is_null() { Type::Null } else { self.convert(schema, At { root: schema, hint: &hint }) };
        Ok(Method {
            summary: text(method, "summary"),
            description: text(method, "description"),
            wire,
            name,
            params,
            result,
        })
    }

    /// A Content Descriptor, following a `$ref` into the document.
    fn deref_descriptor<'v>(&self, descriptor: &'v Value) -> &'v Value
    where
        'd: 'v,
    {
        match descriptor["$ref"].as_str().and_then(|r| pointer(self.doc, r)) {
            Some(target) => target,
            None => descriptor,
        }
    }

    fn convert(&mut self, schema: &Value, at: At<'_>) -> Type {
        let object = match schema {
            Value::Bool(true) => return Type::Any(None),
            Value::Object(object) => object,
            Value::Bool(false) => return untyped("the schema is `false` (no value is valid)"),
            other => return untyped(&format!("a schema must be an object, not {}", kind(other))),
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return self.reference(reference, at);
        }
        if let Some(Value::Array(values)) = object.get("enum") {
            return self.enumeration(object, values, at);
        }
        if let Some(value) = object.get("const") {
            return self.enumeration(object, std::slice::from_ref(value), at);
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = object.get(keyword) {
                return self.alternatives(object, keyword, branches, at);
            }
        }
        if let Some(Value::Array(parts)) = object.get("allOf") {
            return match parts.as_slice() {
                [only] => self.convert(&with_siblings(only, object, "allOf"), at),
                _ => untyped("`allOf` of several schemas"),
            };
        }
        for keyword in ["not", "if", "patternProperties"] {
            if object.contains_key(keyword) {
                return untyped(&format!("`{keyword}`"));
            }
        }
        match object.get("type") {
            Some(Value::String(name)) => self.typed(name, object, at),
            Some(Value::Array(names)) => {
                let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
                match names.as_slice() {
                    [one] => self.typed(one, object, at),
                    [one, "null"] | ["null", one] => Type::Nullable(Box::new(self.typed(one, object, at))),
                    _ => untyped(&format!("a value of several types ({})", names.join(", "))),
                }
            }
            Some(other) => untyped(&format!("`type` is {}", kind(other))),
            None if object.contains_key("properties") => self.typed("object", object, at),
            None => Type::Any(None),
        }
    }

    fn typed(&mut self, name: &str, object: &Map<String, Value>, at: At<'_>) -> Type {
        match name {
            "null" => Type::Null,
            "boolean" => Type::Bool,
            "integer" => Type::Integer(IntRange {
                min: object.get("minimum").and_then(Value::as_f64),
                max: object.get("maximum").and_then(Value::as_f64),
            }),
            "number" => Type::Number,
            "string" => Type::String,
            "array" => self.array(object, at),
            "object" => self.object(object, at),
            other => untyped(&format!("unknown type `{other}`")),
        }
    }

    fn array(&mut self, object: &Map<String, Value>, at: At<'_>) -> Type {
        let tuple = match (object.get("prefixItems"), object.get("items")) {
            (Some(Value::Array(items)), _) | (None, Some(Value::Array(items))) => Some(items),
            _ => None,
        };
        if let Some(items) = tuple {
            let hints: Vec<String> = (1..=items.len()).map(|i| format!("{}{i}", at.hint)).collect();
            return Type::Tuple(
                items.iter().zip(&hints).map(|(item, hint)| self.convert(item, At { hint, ..at })).collect(),
            );
        }
        let hint = format!("{}Item", at.hint);
        match object.get("items") {
            Some(item) => Type::List(Box::new(self.convert(item, At { hint: &hint, ..at }))),
            None => Type::List(Box::new(Type::Any(None))),
        }
    }

    fn object(&mut self, object: &Map<String, Value>, at: At<'_>) -> Type {
        let properties = match object.get("properties") {
            Some(Value::Object(properties)) if !properties.is_empty() => properties,
            _ => {
                let hint = format!("{}Value", at.hint);
                return match object.get("additionalProperties") {
                    Some(Value::Bool(false)) => self.record(object, &Map::new(), at),
                    Some(values @ Value::Object(_)) => {
                        Type::Map(Box::new(self.convert(values, At { hint: &hint, ..at })))
                    }
                    _ => Type::Map(Box::new(Type::Any(None))),
                };
            }
        };
        self.record(object, properties, at)
    }

    fn record(&mut self, object: &Map<String, Value>, properties: &Map<String, Value>, at: At<'_>) -> Type {
        // The same record inlined in two places is one type; `definitions`
        // (kept beside a recursive type) are not part of its shape.
        let mut shape = object.clone();
        shape.remove("definitions");
        shape.remove("$defs");
        let key = format!("record {}", Value::Object(shape));
        if let Some(&index) = self.by_schema.get(&key) {
            return Type::Named(index);
        }
        let name = self.names.unique(&type_name(object, at.hint));
        let index = self.decls.len();
        self.decls.push(None);
        self.by_schema.insert(key, index);
        let required: BTreeSet<&str> =
            object.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort();
        let mut fields = Vec::new();
        for field in names {
            let schema = &properties[field];
            let hint = format!("{name}{}", pascal(field));
            fields.push(Field {
                name: field.clone(),
                ty: self.convert(schema, At { hint: &hint, ..at }),
                required: required.contains(field.as_str()),
                doc: text(schema, "description"),
            });
        }
        self.decls[index] = Some(Decl {
            name,
            doc: text(&Value::Object(object.clone()), "description"),
            kind: DeclKind::Record(fields),
        });
        Type::Named(index)
    }

    fn enumeration(&mut self, object: &Map<String, Value>, values: &[Value], at: At<'_>) -> Type {
        let nullable = values.iter().any(Value::is_null);
        let strings: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        if strings.is_empty() || strings.len() + usize::from(nullable) != values.len() {
            return untyped("an `enum` or `const` of values other than strings");
        }
        let variants: Vec<String> = strings.iter().map(|s| (*s).to_owned()).collect();
        let named = self.named_enum(object, variants, at);
        if nullable {
            Type::Nullable(Box::new(named))
        } else {
            named
        }
    }

    fn named_enum(&mut self, object: &Map<String, Value>, variants: Vec<String>, at: At<'_>) -> Type {
        let key = format!("enum {} {}", object.get("title").unwrap_or(&Value::Null), variants.join("\u{0}"));
        if let Some(&index) = self.by_schema.get(&key) {
            return Type::Named(index);
        }
        let name = self.names.unique(&type_name(object, at.hint));
        let index = self.decls.len();
        self.decls.push(Some(Decl {
            name,
            doc: text(&Value::Object(object.clone()), "description"),
            kind: DeclKind::Enum(variants),
        }));
        self.by_schema.insert(key, index);
        Type::Named(index)
    }

    /// `anyOf`/`oneOf`: a nullable type, an enum spelled as one branch per
    /// string, or (else) untypable.
    fn alternatives(&mut self, object: &Map<String, Value>, keyword: &str, branches: &[Value], at: At<'_>) -> Type {
        let is_null = |b: &Value| b.get("type").and_then(Value::as_str) == Some("null");
        let others: Vec<&Value> = branches.iter().filter(|b| !is_null(b)).collect();
        let nullable = others.len() < branches.len();
        // Strings, one branch each (how schemars writes an enum whose
        // variants have doc comments): one enum, named by the outer schema.
        let strings: Option<Vec<Vec<String>>> = others.iter().map(|b| string_values(b)).collect();
        let ty = match (others.as_slice(), strings) {
            ([], _) => Type::Null,
            ([_, _, ..], Some(variants)) => self.named_enum(object, variants.concat(), at),
            ([one], Some(_)) if object.contains_key("title") => self.convert(&with_outer_names(one, object), at),
            ([one], _) => self.convert(&with_siblings(one, object, keyword), at),
            _ => untyped(&format!("`{keyword}` of several kinds of value (a union)")),
        };
        if nullable && !ty.is_nullable() {
            Type::Nullable(Box::new(ty))
        } else {
            ty
        }
    }

    fn reference(&mut self, reference: &str, at: At<'_>) -> Type {
        // `#/definitions/..` of a schema made by schemars is relative to
        // that schema; OpenRPC's `#/components/..` to the document.
        let (target, key) = match pointer(at.root, reference) {
            Some(target) => (target, format!("{:p}{reference}", at.root)),
            None => match pointer(self.doc, reference) {
                Some(target) => (target, format!("doc{reference}")),
                None => return untyped(&format!("`$ref` {reference} points to nothing in the document")),
            },
        };
        match self.by_ref.get(&key) {
            Some(Some(index)) => return Type::Named(*index),
            Some(None) => return untyped(&format!("`$ref` {reference} is recursive through a type that has no name")),
            None => {}
        }
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let mut target = target.clone();
        if let Some(object) = target.as_object_mut() {
            object.entry("title").or_insert_with(|| name.into());
        }
        // A record is registered before its fields are converted, so a
        // field that refers back to it finds it.
        self.by_ref.insert(key.clone(), None);
        let hint = pascal(name);
        let at = At { hint: &hint, ..at };
        let ty = if target.get("properties").is_some() && target.get("anyOf").is_none() && target.get("oneOf").is_none()
        {
            let object = target.as_object().cloned().unwrap_or_default();
            let index = self.decls.len();
            self.by_ref.insert(key.clone(), Some(index));
            let properties = object.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            self.record(&object, &properties, at)
        } else {
            self.convert(&target, at)
        };
        if let Type::Named(index) = ty {
            self.by_ref.insert(key, Some(index));
        } else {
            self.by_ref.remove(&key);
        }
        ty
    }
}

fn untyped(reason: &str) -> Type {
    Type::Any(Some(format!("{reason} has no type in the stub: any JSON")))
}

/// The string values an `anyOf`/`oneOf` branch allows, if it allows only
/// strings by `enum` or `const`.
fn string_values(branch: &Value) -> Option<Vec<String>> {
    let values = match (branch.get("enum"), branch.get("const")) {
        (Some(Value::Array(values)), _) => values.clone(),
        (None, Some(value)) => vec![value.clone()],
        _ => return None,
    };
    values.iter().map(|v| v.as_str().map(str::to_owned)).collect()
}

/// `inner` with the outer schema's `title` and `description` where it has
/// none of its own (`{"description": .., "allOf": [{..}]}`).
fn with_siblings(inner: &Value, outer: &Map<String, Value>, keyword: &str) -> Value {
    let mut merged = inner.clone();
    if let Some(merged) = merged.as_object_mut() {
        for (key, value) in outer {
            if key != keyword && (key == "title" || key == "description") {
                merged.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    merged
}

/// `inner` with the outer schema's `title` and `description`, over its own
/// (the one variant of an enum: the description is the enum's).
fn with_outer_names(inner: &Value, outer: &Map<String, Value>) -> Value {
    let mut merged = inner.clone();
    if let Some(merged) = merged.as_object_mut() {
        merged.remove("description");
        for key in ["title", "description"] {
            if let Some(value) = outer.get(key) {
                merged.insert(key.into(), value.clone());
            }
        }
    }
    merged
}

/// JSON pointer `reference` (`#/a/b`) in `root`.
fn pointer<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let path = reference.strip_prefix('#')?;
    if path.is_empty() {
        return None;
    }
    root.pointer(path)
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The type name of a record or enum: its `title`, else `hint`, PascalCased.
fn type_name(object: &Map<String, Value>, hint: &str) -> String {
    match object.get("title").and_then(Value::as_str).map(pascal) {
        Some(title) if !title.is_empty() => title,
        _ => pascal(hint),
    }
}

/// `get_data` -> `GetData`, `Wrapper<Invoice>` -> `WrapperInvoice`: runs of
/// ASCII letters and digits, each with its first letter in upper case; a
/// leading digit gets a `_` before it.
pub fn pascal(name: &str) -> String {
    let mut out = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Type names handed out so far (and the reserved ones).
struct Names(BTreeSet<String>);

impl Names {
    fn new() -> Names {
        Names(RESERVED_TYPE_NAMES.iter().map(|s| (*s).to_owned()).collect())
    }

    /// `base`, or `base2`, `base3`, ... if taken.
    fn unique(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "Type" } else { base };
        let mut name = base.to_owned();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base}{n}");
            n += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// An identifier made of `name` for a language with `keywords`: every
/// character that cannot be in an identifier becomes `_`, a leading digit
/// gets a `_` before it, and a keyword a `_` after it.
pub fn ident(name: &str, keywords: &[&str]) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if keywords.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// Identifiers of one scope (a function's parameters, a record's fields):
/// a name that would repeat one already given gets `_2`, `_3`, ...
#[derive(Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    pub fn with_taken(taken: &[&str]) -> Scope {
        Scope(taken.iter().map(|s| (*s).to_owned()).collect())
    }

    pub fn ident(&mut self, name: &str, keywords: &[&str]) -> String {
        let base = ident(name, keywords);
        let mut out = base.clone();
        let mut n = 2;
        while self.0.contains(&out) {
            out = format!("{base}_{n}");
            n += 1;
        }
        self.0.insert(out.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(methods: Value) -> Value {
        json!({"openrpc": "1.3.2", "info": {"title": "t", "version": "1"}, "methods": methods})
    }

    fn one(schema: Value) -> (Type, Api) {
        let api = build(&doc(json!([{"name": "p.m", "params": [], "result": {"name": "r", "schema": schema}}])), &[])
            .unwrap();
        (api.procedures[0].methods[0].result.clone(), api)
    }

    #[test]
    fn names_are_mangled_predictably() {
        assert_eq!(pascal("get_data"), "GetData");
        assert_eq!(pascal("Wrapper<Invoice>"), "WrapperInvoice");
        assert_eq!(pascal("3d-point"), "_3dPoint");
        assert_eq!(ident("my-method", &["class"]), "my_method");
        assert_eq!(ident("class", &["class"]), "class_");
        assert_eq!(ident("9lives", &[]), "_9lives");
        let mut scope = Scope::default();
        assert_eq!(scope.ident("a-b", &[]), "a_b");
        assert_eq!(scope.ident("a_b", &[]), "a_b_2");
    }

    #[test]
    fn records_take_their_title_or_the_method_and_place() {
        let (ty, api) = one(json!({"title": "Invoice", "type": "object", "properties": {
            "b": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
            "a": {"type": ["string", "null"]}
        }, "required": ["b"]}));
        assert_eq!(ty, Type::Named(0));
        assert_eq!(api.types[0].name, "Invoice");
        let DeclKind::Record(fields) = &api.types[0].kind else { panic!() };
        assert_eq!(fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(fields[0].ty, Type::Nullable(Box::new(Type::String)));
        assert!(!fields[0].required && fields[1].required);
        assert_eq!(api.types[1].name, "InvoiceB");
        let (_, api) = one(json!({"type": "object", "properties": {"x": {"type": "integer"}}}));
        assert_eq!(api.types[0].name, "PMResult");
    }

    #[test]
    fn the_same_schema_is_one_type_and_a_different_one_another() {
        let customer = json!({"title": "Customer", "type": "object", "properties": {"name": {"type": "string"}}});
        let other = json!({"title": "Customer", "type": "object", "properties": {"id": {"type": "integer"}}});
        let (_, api) = one(
            json!({"type": "array", "items": [customer.clone(), customer, other, {"title": "Client", "enum": ["a"]}]}),
        );
        let names: Vec<&str> = api.types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Customer", "Customer2", "Client2"]);
    }

    #[test]
    fn enums_nullables_and_recursion() {
        let (ty, api) = one(json!({"anyOf": [{"title": "Coupon", "oneOf": [
            {"type": "string", "const": "TENOFF", "description": "10%"}, {"type": "string", "enum": ["HALF"]}
        ]}, {"type": "null"}]}));
        assert_eq!(ty, Type::Nullable(Box::new(Type::Named(0))));
        assert!(matches!(&api.types[0].kind, DeclKind::Enum(v) if v == &["TENOFF", "HALF"]));
        let (ty, api) = one(json!({"title": "Node", "type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}
        }, "definitions": {"Node": {"title": "Node", "type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}
        }}}}));
        assert_eq!(ty, Type::Named(0));
        let DeclKind::Record(fields) = &api.types[0].kind else { panic!() };
        assert_eq!(fields[0].ty, Type::List(Box::new(Type::Named(0))), "{api:?}");
        assert_eq!(api.types.len(), 1);
    }

    #[test]
    fn what_cannot_be_typed_is_any_json_with_the_reason() {
        let (ty, api) = one(json!({"oneOf": [{"type": "string"}, {"type": "object", "properties": {"a": {}}}]}));
        let Type::Any(Some(reason)) = ty else { panic!("{ty:?}") };
        assert!(reason.contains("`oneOf` of several kinds of value"), "{reason}");
        assert_eq!(api.notes.len(), 1);
        assert!(api.notes[0].starts_with("p.m result: "), "{:?}", api.notes);
        let (ty, _) = one(json!({"type": ["string", "integer"]}));
        assert!(matches!(ty, Type::Any(Some(_))));
        let (ty, _) = one(json!({"$ref": "#/nowhere"}));
        assert!(matches!(ty, Type::Any(Some(r)) if r.contains("points to nothing")));
    }

    #[test]
    fn bad_documents_are_named() {
        let err = build(&json!([1]), &[]).unwrap_err().to_string();
        assert!(err.contains("not an OpenRPC document"), "{err}");
        let err = build(&json!({"methods": []}), &[]).unwrap_err().to_string();
        assert!(err.contains("no \"openrpc\""), "{err}");
        let err = build(&doc(json!([{"name": "math.add", "params": []}])), &["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("no procedure `nope` (it has: math)"), "{err}");
    }
}
