//! The Rust stubs. For clients ([`Target::Client`]): serde types and typed
//! functions over `wasmrpc-client`'s [`Call`](wasmrpc_client::Call), so one
//! file serves the async client, the blocking one and batches. For
//! procedures calling procedures ([`Target::Guest`]): the same types, and a
//! module per procedure whose functions go through `wasmrpc_guest::call`.
//! For procedures calling another server's procedures
//! ([`Target::Remote`]): the same types, and a struct per procedure whose
//! methods go through a `wasmrpc_guest::remote::Client`.

use std::fmt::Write as _;

use super::model::{Api, Decl, DeclKind, Method, Param, Procedure, Scope, Type};
use super::{doc_lines, Header};

/// What the stub is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A program calling a server, through `wasmrpc-client`.
    Client,
    /// A procedure calling other procedures, through `wasmrpc_guest::call`.
    Guest,
    /// A procedure calling the procedures of another server, through
    /// `wasmrpc_guest::remote::Client`.
    Remote,
}

impl Target {
    /// The crate the generated code builds on (and takes serde from).
    fn krate(self) -> &'static str {
        match self {
            Target::Client => "wasmrpc_client",
            Target::Guest | Target::Remote => "wasmrpc_guest",
        }
    }
}

/// Rust's keywords, and the names a generated procedure accessor must not
/// take because the clients have methods of that name.
const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "call",
    "batch",
    "send",
    "endpoint",
    "with_timeout",
    "with_admin_token",
    "new",
    "call_json",
];

pub fn emit(api: &Api, header: &Header, target: Target) -> String {
    let krate = target.krate();
    let mut out = header.lines("//");
    // Names from a saved document may hold anything: in comments they are
    // escaped as in a string literal (no line break, no bidi control).
    let names: Vec<String> = api.procedures.iter().map(|p| p.name.escape_debug().to_string()).collect();
    let _ = write!(
        out,
        "//!\n//! {}\n\n#![allow(dead_code, non_camel_case_types, non_snake_case, {}clippy::all)]\n\n",
        match target {
            Target::Client => format!(
                "Client stub of the wasmrpc procedures {}: `use` this module's `Procedures`, then\n//! `client.<procedure>().<method>(...)` on a `wasmrpc_client::Client` (`.await` it), a\n//! `wasmrpc_client::blocking::Client` or a `Batch`.",
                names.join(", ")
            ),
            Target::Guest => format!(
                "Typed calls from a procedure to the wasmrpc procedures {}:\n//! `<procedure>::<method>(...)` calls it through `wasmrpc_guest::call`.",
                names.join(", ")
            ),
            Target::Remote => format!(
                "Typed calls from a procedure to the wasmrpc procedures {} of another server:\n//! `use` this module's `Procedures`, then `server.<procedure>().<method>(...)` on a\n//! `wasmrpc_guest::remote::Client::new(URL)` (the SDK's `remote` feature).",
                names.join(", ")
            ),
        },
        // A module of a procedure crate, which is no library: its `pub`
        // items reach no other crate.
        if target == Target::Remote { "unreachable_pub, " } else { "" }
    );
    if target == Target::Client {
        out.push_str("use wasmrpc_client::Call;\n");
    }
    for (index, decl) in api.types.iter().enumerate() {
        out.push('\n');
        emit_decl(&mut out, api, index, decl, krate);
    }
    match target {
        Target::Client => emit_client(&mut out, api),
        Target::Guest => emit_guest(&mut out, api),
        Target::Remote => emit_remote(&mut out, api),
    }
    out
}

fn emit_client(out: &mut String, api: &Api) {
    for procedure in &api.procedures {
        let _ = write!(
            out,
            "\n/// Procedure `{}`, called through `C`: a client or a batch.\npub struct {class}<'a, C>(&'a C);\n\nimpl<C: Call> {class}<'_, C> {{\n",
            procedure.name.escape_debug(),
            class = procedure.class
        );
        for (i, method) in procedure.methods.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let (signature, body) = function(api, method, "wasmrpc_client");
            let result = rust_type(api, &method.result, "wasmrpc_client");
            out.push_str(&method_doc(method, "    "));
            let _ = writeln!(
                out,
                "    pub fn {}(&self{signature}) -> C::Output<{result}> {{\n{body}        self.0.call({}, Params {{ {} }})\n    }}",
                fn_name(&method.name),
                string(&method.wire),
                params_fields(method).join(", ")
            );
        }
        out.push_str("}\n");
    }
    out.push_str(
        "\n/// The procedures of this stub on anything that calls: `client.math().add(2, 3)`.\npub trait Procedures: Call + Sized {\n",
    );
    for (i, procedure) in api.procedures.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "    /// Procedure `{}`.\n    fn {}(&self) -> {class}<'_, Self> {{\n        {class}(self)\n    }}",
            procedure.name.escape_debug(),
            accessor(procedure),
            class = procedure.class
        );
    }
    out.push_str("}\n\nimpl<C: Call> Procedures for C {}\n");
}

fn emit_guest(out: &mut String, api: &Api) {
    for procedure in &api.procedures {
        let _ = write!(
            out,
            "\n/// Procedure `{}`.\npub mod {} {{\n    use super::*;\n",
            procedure.name.escape_debug(),
            accessor(procedure)
        );
        for method in &procedure.methods {
            let (signature, body) = function(api, method, "wasmrpc_guest");
            let result = rust_type(api, &method.result, "wasmrpc_guest");
            out.push('\n');
            out.push_str(&method_doc(method, "    "));
            let _ = writeln!(
                out,
                "    pub fn {}({}) -> Result<{result}, wasmrpc_guest::Error> {{\n{body}        wasmrpc_guest::call::<{result}>({}, Params {{ {} }})\n    }}",
                fn_name(&method.name),
                signature.trim_start_matches(", "),
                string(&method.wire),
                params_fields(method).join(", ")
            );
        }
        out.push_str("}\n");
    }
}

fn emit_remote(out: &mut String, api: &Api) {
    for procedure in &api.procedures {
        let _ = write!(
            out,
            "\n/// Procedure `{}` of the server a `remote::Client` calls.\npub struct {class}<'a>(&'a wasmrpc_guest::remote::Client);\n\nimpl {class}<'_> {{\n",
            procedure.name.escape_debug(),
            class = procedure.class
        );
        for (i, method) in procedure.methods.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let (signature, body) = function(api, method, "wasmrpc_guest");
            let result = rust_type(api, &method.result, "wasmrpc_guest");
            out.push_str(&method_doc(method, "    "));
            let _ = writeln!(
                out,
                "    pub fn {}(&self{signature}) -> Result<{result}, wasmrpc_guest::Error> {{\n{body}        self.0.call::<{result}>({}, Params {{ {} }})\n    }}",
                fn_name(&method.name),
                string(&method.wire),
                params_fields(method).join(", ")
            );
        }
        out.push_str("}\n");
    }
    out.push_str(
        "\n/// The procedures of this stub on a remote server: `server.math().add(2, 3)`.\npub trait Procedures {\n",
    );
    for (i, procedure) in api.procedures.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "    /// Procedure `{}`.\n    fn {}(&self) -> {}<'_>;",
            procedure.name.escape_debug(),
            accessor(procedure),
            procedure.class
        );
    }
    out.push_str("}\n\nimpl Procedures for wasmrpc_guest::remote::Client {\n");
    for (i, procedure) in api.procedures.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "    fn {}(&self) -> {class}<'_> {{\n        {class}(self)\n    }}",
            accessor(procedure),
            class = procedure.class
        );
    }
    out.push_str("}\n");
}

/// The parameters after `&self` (each with a leading `, `), and the local
/// struct that sends them by name.
fn function(api: &Api, method: &Method, krate: &str) -> (String, String) {
    let mut signature = String::new();
    let mut fields = String::new();
    for (name, param) in named_params(method) {
        let ty = param_type(api, param, krate);
        // A required string takes anything that becomes one (`"x"` too).
        let arg = if ty == "String" { "impl Into<String>".to_owned() } else { ty.clone() };
        let _ = write!(signature, ", {name}: {arg}");
        let mut attrs = Vec::new();
        if name != param.name {
            attrs.push(format!("rename = {}", string(&param.name)));
        }
        if ty.starts_with("Option<") {
            attrs.push("skip_serializing_if = \"Option::is_none\"".to_owned());
        }
        if !attrs.is_empty() {
            let _ = writeln!(fields, "            #[serde({})]", attrs.join(", "));
        }
        let _ = writeln!(fields, "            {name}: {ty},");
    }
    let body = format!(
        "        #[derive({krate}::serde::Serialize)]\n        #[serde(crate = \"{krate}::serde\")]\n        struct Params {{\n{fields}        }}\n"
    );
    (signature, body)
}

/// `name` or `name: name.into()` for each field of the local `Params`.
fn params_fields(method: &Method) -> Vec<String> {
    named_params(method)
        .into_iter()
        .map(
            |(name, param)| {
                if param.required && param.ty == Type::String {
                    format!("{name}: {name}.into()")
                } else {
                    name
                }
            },
        )
        .collect()
}

fn named_params(method: &Method) -> Vec<(String, &Param)> {
    // A parameter is a pattern: `None` there would be the variant (and
    // `Some(..)`, `Ok`, `Err` may not be shadowed by a binding).
    let mut scope = Scope::with_taken(&["self", "Params", "None", "Some", "Ok", "Err"]);
    method.params_in_call_order().into_iter().map(|p| (scope.ident(&p.name, KEYWORDS), p)).collect()
}

fn param_type(api: &Api, param: &Param, krate: &str) -> String {
    let ty = rust_type(api, &param.ty, krate);
    if param.required || param.ty.is_nullable() {
        ty
    } else {
        format!("Option<{ty}>")
    }
}

fn method_doc(method: &Method, pad: &str) -> String {
    let mut doc = method.doc().unwrap_or("").to_owned();
    for param in &method.params {
        for reason in param.ty.untyped_reasons() {
            let _ = write!(doc, "\n\n`{}`: {reason}.", param.name);
        }
    }
    for reason in method.result.untyped_reasons() {
        let _ = write!(doc, "\n\nThe result: {reason}.");
    }
    comment(&doc, pad)
}

fn emit_decl(out: &mut String, api: &Api, index: usize, decl: &Decl, krate: &str) {
    if let Some(doc) = &decl.doc {
        out.push_str(&comment(doc, ""));
    }
    match &decl.kind {
        DeclKind::Enum(variants) => {
            let _ = writeln!(
                out,
                "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, {krate}::serde::Serialize, {krate}::serde::Deserialize)]\n#[serde(crate = \"{krate}::serde\")]\npub enum {} {{",
                decl.name
            );
            let mut scope = Scope::default();
            for variant in variants {
                let mut name = super::model::pascal(variant);
                if name.is_empty() {
                    name = "Empty".into();
                }
                let _ =
                    writeln!(out, "    #[serde(rename = {})]\n    {},", string(variant), scope.ident(&name, KEYWORDS));
            }
        }
        DeclKind::Record(fields) => {
            let _ = writeln!(
                out,
                "#[derive(Debug, Clone, PartialEq, {krate}::serde::Serialize, {krate}::serde::Deserialize)]\n#[serde(crate = \"{krate}::serde\")]\npub struct {} {{",
                decl.name
            );
            let mut scope = Scope::default();
            for field in fields {
                let mut doc = field.doc.clone().unwrap_or_default();
                for reason in field.ty.untyped_reasons() {
                    let _ = write!(doc, "{}{reason}.", if doc.is_empty() { "" } else { "\n\n" });
                }
                out.push_str(&comment(&doc, "    "));
                let name = scope.ident(&field.name, KEYWORDS);
                let mut attrs = Vec::new();
                if name != field.name {
                    attrs.push(format!("rename = {}", string(&field.name)));
                }
                let mut ty = rust_type(api, &field.ty, krate);
                if boxed(api, &field.ty, index) {
                    ty = box_type(&field.ty, ty);
                }
                if !field.required {
                    if !field.ty.is_nullable() {
                        ty = format!("Option<{ty}>");
                    }
                    attrs.push("default".to_owned());
                    if ty.starts_with("Option<") {
                        attrs.push("skip_serializing_if = \"Option::is_none\"".to_owned());
                    }
                }
                if !attrs.is_empty() {
                    let _ = writeln!(out, "    #[serde({})]", attrs.join(", "));
                }
                let _ = writeln!(out, "    pub {name}: {ty},");
            }
        }
    }
    out.push_str("}\n");
}

/// Whether a field of type `ty` in record `owner` must be boxed: it holds a
/// record (directly or in an `Option`) that holds `owner` the same way.
fn boxed(api: &Api, ty: &Type, owner: usize) -> bool {
    fn direct(ty: &Type) -> Option<usize> {
        match ty {
            Type::Named(index) => Some(*index),
            Type::Nullable(inner) => direct(inner),
            _ => None,
        }
    }
    let mut seen = Vec::new();
    let mut todo: Vec<usize> = direct(ty).into_iter().collect();
    while let Some(index) = todo.pop() {
        if index == owner {
            return true;
        }
        if seen.contains(&index) {
            continue;
        }
        seen.push(index);
        if let DeclKind::Record(fields) = &api.types[index].kind {
            todo.extend(fields.iter().filter_map(|f| direct(&f.ty)));
        }
    }
    false
}

/// `Option<Node>` -> `Option<Box<Node>>`, `Node` -> `Box<Node>`.
fn box_type(ty: &Type, rendered: String) -> String {
    match rendered.strip_prefix("Option<").and_then(|r| r.strip_suffix('>')) {
        Some(inner) if matches!(ty, Type::Nullable(_)) => format!("Option<Box<{inner}>>"),
        _ => format!("Box<{rendered}>"),
    }
}

fn rust_type(api: &Api, ty: &Type, krate: &str) -> String {
    match ty {
        Type::Any(_) => format!("{krate}::serde_json::Value"),
        Type::Null => "()".into(),
        Type::Bool => "bool".into(),
        Type::Integer(range) => integer(range.min, range.max).into(),
        Type::Number => "f64".into(),
        Type::String => "String".into(),
        Type::List(item) => format!("Vec<{}>", rust_type(api, item, krate)),
        Type::Tuple(items) => {
            let items: Vec<String> = items.iter().map(|t| rust_type(api, t, krate)).collect();
            if items.len() == 1 {
                format!("({},)", items[0])
            } else {
                format!("({})", items.join(", "))
            }
        }
        Type::Map(value) => format!("std::collections::BTreeMap<String, {}>", rust_type(api, value, krate)),
        Type::Nullable(inner) => format!("Option<{}>", rust_type(api, inner, krate)),
        Type::Named(index) => api.types[*index].name.clone(),
    }
}

/// The smallest Rust integer type that holds the schema's range (schemars
/// writes `minimum: 0, maximum: 255` for a `u8`); i64 when unbounded.
fn integer(min: Option<f64>, max: Option<f64>) -> &'static str {
    let fits = |lo: f64, hi: f64| min.is_some_and(|m| m >= lo) && max.is_some_and(|m| m <= hi);
    if min.is_some_and(|m| m >= 0.0) {
        if fits(0.0, 255.0) {
            "u8"
        } else if fits(0.0, 65_535.0) {
            "u16"
        } else if fits(0.0, 4_294_967_295.0) {
            "u32"
        } else {
            "u64"
        }
    } else if fits(-128.0, 127.0) {
        "i8"
    } else if fits(-32_768.0, 32_767.0) {
        "i16"
    } else if fits(-2_147_483_648.0, 2_147_483_647.0) {
        "i32"
    } else {
        "i64"
    }
}

fn fn_name(name: &str) -> String {
    super::model::ident(name, KEYWORDS)
}

fn accessor(procedure: &Procedure) -> String {
    super::model::ident(&procedure.name, KEYWORDS)
}

/// A Rust string literal (`Debug` escapes what needs it, `\u{..}` style).
fn string(text: &str) -> String {
    format!("{text:?}")
}

/// `///` lines at `pad` (nothing for empty text). A line with a character
/// that changes the direction of text, which rustc refuses in a comment
/// (`text_direction_codepoint_in_comment`), is a `#[doc = ".."]` with the
/// character escaped.
fn comment(text: &str, pad: &str) -> String {
    doc_lines(text)
        .iter()
        .map(|line| {
            if line.is_empty() {
                format!("{pad}///\n")
            } else if line.contains(is_bidi_control) {
                format!("{pad}#[doc = {}]\n", string(&format!(" {line}")))
            } else {
                format!("{pad}/// {line}\n")
            }
        })
        .collect()
}

/// The characters rustc refuses in comments and literals as they are.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_keep_any_text() {
        let text = "a */ /* \"b\" `c` \\\n\nd\re";
        assert_eq!(comment(text, "  "), "  /// a */ /* \"b\" `c` \\\n  ///\n  /// d\n  /// e\n");
        assert_eq!(comment("x \u{202e}y", ""), "#[doc = \" x \\u{202e}y\"]\n");
    }
}
