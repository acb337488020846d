//! The Python stub: one module, standard library only (urllib, json,
//! dataclasses; a `ws://` URL needs the `websockets` package, imported only
//! then), Python 3.9+, clean under `mypy --strict`. Records are
//! dataclasses, enums `Literal`s; each procedure is a namespace class on
//! `Client` (and one on `Batch`, whose methods queue calls and give back
//! `Pending` results).

use std::fmt::Write as _;

use super::model::{Api, Decl, DeclKind, Field, Method, Param, Scope, Type};
use super::{doc_lines, Header};

/// Python's keywords, and the names a generated method or namespace must not
/// take from the stub's own (`self`, `batch`, `_params`).
const KEYWORDS: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "self",
    "batch",
    "send",
    "close",
    "_params",
    "_call",
    "_batch",
    "_transport",
    "__init__",
];

const RUNTIME: &str = include_str!("python_runtime.py");

pub fn emit(api: &Api, header: &Header) -> String {
    let mut out = header.lines("#");
    let names: Vec<&str> = api.procedures.iter().map(|p| p.name.as_str()).collect();
    out.push_str(&RUNTIME.replace("{procedures}", &docstring_line(&names.join(", "), false)));
    for arity in tuple_arities(api) {
        out.push_str("\n\n");
        out.push_str(&tuple_decoder(arity));
    }
    for decl in &api.types {
        out.push_str("\n\n");
        emit_decl(&mut out, api, decl);
    }
    for procedure in &api.procedures {
        let doc = format!("Procedure `{}`: ``client.{}.<method>(...)``.", procedure.name, attr(&procedure.name));
        let _ = write!(
            out,
            "\n\nclass {}:\n{}    def __init__(self, call: _Caller) -> None:\n        self._call = call\n",
            procedure.class,
            docstring(&doc, 4)
        );
        for method in &procedure.methods {
            emit_method(&mut out, api, method, false);
        }
        let doc = format!(
            "Procedure `{}` in a batch: each method queues a call and returns its `Pending` result.",
            procedure.name
        );
        let _ = write!(
            out,
            "\n\nclass {}:\n{}    def __init__(self, batch: Batch) -> None:\n        self._batch = batch\n",
            procedure.batch_class,
            docstring(&doc, 4)
        );
        for method in &procedure.methods {
            emit_method(&mut out, api, method, true);
        }
    }
    let namespaces = |batch: bool| -> String {
        let arg = if batch { "self" } else { "self._transport.call" };
        api.procedures
            .iter()
            .map(|p| {
                format!("        self.{} = {}({arg})\n", attr(&p.name), if batch { &p.batch_class } else { &p.class })
            })
            .collect()
    };
    let _ = write!(
        out,
        "\n\n{}",
        BATCH_AND_CLIENT
            .replace("{batch_namespaces}", &namespaces(true))
            .replace("{client_namespaces}", &namespaces(false))
    );
    out
}

/// The tail of the module: `Batch` and `Client`, which know the namespaces.
const BATCH_AND_CLIENT: &str = r#"class Batch:
    """Calls sent together in one request.

        with client.batch() as batch:
            total = batch.math.add(2, 3)
        total.result()  # 5

    Leaving the ``with`` block sends the batch (or call ``send()``); then
    each ``Pending.result()`` gives its typed result or raises its error.
    """

    def __init__(self, transport: _Transport) -> None:
        self._transport = transport
        self._calls: List[Tuple[str, Dict[str, Any], Pending[Any]]] = []
{batch_namespaces}
    def _add(self, method: str, params: Dict[str, Any], decode: Callable[[Any], _T]) -> Pending[_T]:
        pending = Pending(decode)
        self._calls.append((method, params, pending))
        return pending

    def send(self) -> None:
        """Sends the queued calls in one request (none: nothing is sent)."""
        calls, self._calls = self._calls, []
        if not calls:
            return
        requests = [
            {"jsonrpc": "2.0", "method": method, "params": params, "id": index + 1}
            for index, (method, params, _) in enumerate(calls)
        ]
        response = self._transport.post(requests)
        if isinstance(response, dict):
            _outcome(response)  # the whole batch was refused: raises its error
        if not isinstance(response, list):
            raise ProtocolError(f"the server answered a batch with {response!r}, not a list")
        by_id = {answer.get("id"): answer for answer in response if isinstance(answer, dict)}
        for index, (method, _, pending) in enumerate(calls):
            answer = by_id.get(index + 1)
            if answer is None:
                raise ProtocolError(f"the server did not answer call {index + 1} ({method}) of the batch")
            pending._answer = answer

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Any) -> None:
        if error is None:
            self.send()


class Client:
    """A client of the wasmrpc server at ``url``.

    ``key`` (a caller key, ``wasmrpc keys create``) or ``admin_token`` is sent
    as ``Authorization: Bearer <key>``; ``timeout``
    (seconds) bounds each call or batch. A ``ws://`` (or ``wss://``) URL sends
    every call over one WebSocket connection, made again after it drops (needs
    the ``websockets`` package); ``close()`` or a ``with`` block closes it.
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", *, key: Optional[str] = None, admin_token: Optional[str] = None, timeout: float = 30.0) -> None:
        self._transport = _open_transport(url, key or admin_token, timeout)
{client_namespaces}
    def batch(self) -> Batch:
        """A new batch of calls (see `Batch`)."""
        return Batch(self._transport)

    def close(self) -> None:
        """Closes the WebSocket connection, if any (a later call opens a new one)."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Any) -> None:
        self.close()
"#;

fn emit_decl(out: &mut String, api: &Api, decl: &Decl) {
    match &decl.kind {
        DeclKind::Enum(variants) => {
            let values: Vec<String> = variants.iter().map(|v| string(v)).collect();
            let _ = writeln!(out, "{} = Literal[{}]", decl.name, values.join(", "));
            if let Some(doc) = &decl.doc {
                out.push_str(&docstring(doc, 0));
            }
            let _ = write!(
                out,
                "\n\ndef _decode_{name}(value: Any) -> {name}:\n    if value in ({values},):\n        return cast({name}, value)\n    raise _unexpected({shown}, value)\n",
                name = decl.name,
                values = values.join(", "),
                shown = string(&format!("one of {}", variants.join(", "))),
            );
        }
        DeclKind::Record(fields) => {
            let _ = writeln!(out, "@dataclasses.dataclass\nclass {}:", decl.name);
            if let Some(doc) = &decl.doc {
                out.push_str(&docstring(doc, 4));
            }
            // A field with a default is a name in the class body, where the
            // annotations and the decorator below look names up first: no
            // field may take one of those (a field `str` would make `str` in
            // `str: Optional[str] = None` the field), nor a method's name.
            let mut taken = vec!["_to_json", "_from_json", "classmethod", "Dict", "Any", "str", decl.name.as_str()];
            let annotations: Vec<String> = fields.iter().map(|f| field_type(api, f)).collect();
            taken.extend(annotations.iter().flat_map(|a| identifiers(a)));
            let mut scope = Scope::with_taken(&taken);
            let named: Vec<(String, &Field)> = fields.iter().map(|f| (scope.ident(&f.name, KEYWORDS), f)).collect();
            // Dataclass fields without a default come first.
            let (plain, defaulted): (Vec<_>, Vec<_>) = named.iter().partition(|(_, f)| f.required);
            for (name, field) in plain.iter().chain(&defaulted) {
                note_untyped(out, &field.ty, 4);
                let ty = field_type(api, field);
                let default = if field.required { "" } else { " = None" };
                let _ = writeln!(out, "    {name}: {ty}{default}");
                if let Some(doc) = &field.doc {
                    out.push_str(&docstring(doc, 4));
                }
            }
            if fields.is_empty() {
                out.push_str("    pass\n");
            }
            let _ = write!(out, "\n    def _to_json(self) -> Dict[str, Any]:\n        out: Dict[str, Any] = {{}}\n");
            for (name, field) in &named {
                if field.required {
                    let _ = writeln!(out, "        out[{}] = _encode(self.{name})", string(&field.name));
                } else {
                    let _ = writeln!(
                        out,
                        "        if self.{name} is not None:\n            out[{}] = _encode(self.{name})",
                        string(&field.name)
                    );
                }
            }
            let _ = write!(
                out,
                "        return out\n\n    @classmethod\n    def _from_json(cls, value: Any) -> {name}:\n        fields = _object(value, {shown})\n        return cls(\n",
                name = decl.name,
                shown = string(&decl.name)
            );
            for (name, field) in &named {
                let value = if field.required && !field.ty.is_nullable() {
                    format!("_field(fields, {}, {})", string(&field.name), string(&decl.name))
                } else {
                    format!("fields.get({})", string(&field.name))
                };
                let decode = if field.required { decoder(api, &field.ty) } else { decoder(api, &optional(&field.ty)) };
                let _ = writeln!(out, "            {name}={decode}({value}),");
            }
            out.push_str("        )\n");
        }
    }
}

/// A field's annotation: optional fields may be left out, so `None` is one
/// of their values.
fn field_type(api: &Api, field: &Field) -> String {
    if field.required {
        annotation(api, &field.ty)
    } else {
        annotation(api, &optional(&field.ty))
    }
}

fn optional(ty: &Type) -> Type {
    if ty.is_nullable() {
        ty.clone()
    } else {
        Type::Nullable(Box::new(ty.clone()))
    }
}

fn emit_method(out: &mut String, api: &Api, method: &Method, batch: bool) {
    // A parameter must not hide a name the body uses (`_encode`, the
    // result's decoder, `Dict` in the annotation of `_params`).
    let decode = decoder(api, &method.result);
    let mut taken = vec!["self", "_params", "_encode", "Dict", "Any"];
    taken.extend(identifiers(&decode));
    let mut scope = Scope::with_taken(&taken);
    let params: Vec<(String, &Param)> =
        method.params_in_call_order().into_iter().map(|p| (scope.ident(&p.name, KEYWORDS), p)).collect();
    let mut signature = vec!["self".to_owned()];
    for (name, param) in &params {
        if param.required {
            signature.push(format!("{name}: {}", annotation(api, &param.ty)));
        } else {
            signature.push(format!("{name}: {} = None", annotation(api, &optional(&param.ty))));
        }
    }
    let result = annotation(api, &method.result);
    let returns = if batch { format!("Pending[{result}]") } else { result };
    let _ = writeln!(out, "\n    def {}({}) -> {returns}:", attr(&method.name), signature.join(", "));
    let mut doc = String::new();
    if batch {
        let _ = write!(doc, "Queues a call of `{}`: see `{}`.", method.wire, method.wire);
    } else {
        doc.push_str(method.doc().unwrap_or(""));
        for (name, param) in &params {
            for reason in param.ty.untyped_reasons() {
                let _ = write!(doc, "\n\n`{name}`: {reason}.");
            }
        }
        for reason in method.result.untyped_reasons() {
            let _ = write!(doc, "\n\nThe result: {reason}.");
        }
    }
    if !doc.trim().is_empty() {
        out.push_str(&docstring(&doc, 8));
    }
    let required: Vec<String> = params
        .iter()
        .filter(|(_, p)| p.required)
        .map(|(name, p)| format!("{}: _encode({name})", string(&p.name)))
        .collect();
    let _ = writeln!(out, "        _params: Dict[str, Any] = {{{}}}", required.join(", "));
    for (name, param) in params.iter().filter(|(_, p)| !p.required) {
        let _ = writeln!(
            out,
            "        if {name} is not None:\n            _params[{}] = _encode({name})",
            string(&param.name)
        );
    }
    let call = if batch { "self._batch._add" } else { "self._call" };
    // mypy refuses to return what a function "that returns nothing" gave.
    let ret = if !batch && method.result == Type::Null { "" } else { "return " };
    let _ = writeln!(out, "        {ret}{call}({}, _params, {decode})", string(&method.wire));
}

/// The identifiers in a Python expression (`_list(Item._from_json)`).
fn identifiers(expression: &str) -> impl Iterator<Item = &str> {
    expression.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

/// The Python type of `ty`.
fn annotation(api: &Api, ty: &Type) -> String {
    match ty {
        Type::Any(_) => "Any".into(),
        Type::Null => "None".into(),
        Type::Bool => "bool".into(),
        Type::Integer(_) => "int".into(),
        Type::Number => "float".into(),
        Type::String => "str".into(),
        Type::List(item) => format!("List[{}]", annotation(api, item)),
        Type::Tuple(items) => {
            format!("Tuple[{}]", items.iter().map(|t| annotation(api, t)).collect::<Vec<_>>().join(", "))
        }
        Type::Map(value) => format!("Dict[str, {}]", annotation(api, value)),
        Type::Nullable(inner) => format!("Optional[{}]", annotation(api, inner)),
        Type::Named(index) => api.types[*index].name.clone(),
    }
}

/// An expression for a function from JSON (as `json` parses it) to `ty`,
/// which raises `ProtocolError` for anything else.
fn decoder(api: &Api, ty: &Type) -> String {
    match ty {
        Type::Any(_) => "_any".into(),
        Type::Null => "_none".into(),
        Type::Bool => "_bool".into(),
        Type::Integer(_) => "_int".into(),
        Type::Number => "_float".into(),
        Type::String => "_str".into(),
        Type::List(item) => format!("_list({})", decoder(api, item)),
        Type::Map(value) => format!("_dict({})", decoder(api, value)),
        Type::Nullable(inner) => format!("_optional({})", decoder(api, inner)),
        Type::Tuple(items) => {
            let parts: Vec<String> = items.iter().map(|t| decoder(api, t)).collect();
            format!("_tuple{}({})", items.len(), parts.join(", "))
        }
        Type::Named(index) => {
            let decl = &api.types[*index];
            match decl.kind {
                DeclKind::Record(_) => format!("{}._from_json", decl.name),
                DeclKind::Enum(_) => format!("_decode_{}", decl.name),
            }
        }
    }
}

/// The sizes of the tuples `api` uses, each once.
fn tuple_arities(api: &Api) -> Vec<usize> {
    fn walk(ty: &Type, found: &mut Vec<usize>) {
        match ty {
            Type::Tuple(items) => {
                if !found.contains(&items.len()) {
                    found.push(items.len());
                }
                items.iter().for_each(|t| walk(t, found));
            }
            Type::List(t) | Type::Map(t) | Type::Nullable(t) => walk(t, found),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for method in api.procedures.iter().flat_map(|p| &p.methods) {
        method.params.iter().for_each(|p| walk(&p.ty, &mut found));
        walk(&method.result, &mut found);
    }
    for decl in &api.types {
        if let DeclKind::Record(fields) = &decl.kind {
            fields.iter().for_each(|f| walk(&f.ty, &mut found));
        }
    }
    found.sort_unstable();
    found
}

/// `_tupleN`: the decoder of an N-tuple from the decoders of its items.
fn tuple_decoder(arity: usize) -> String {
    let vars: Vec<String> = (1..=arity).map(|i| format!("_T{arity}_{i}")).collect();
    let mut out = String::new();
    for var in &vars {
        let _ = writeln!(out, "{var} = TypeVar(\"{var}\")");
    }
    let params: Vec<String> = vars.iter().enumerate().map(|(i, v)| format!("d{i}: Callable[[Any], {v}]")).collect();
    let items: Vec<String> = (0..arity).map(|i| format!("d{i}(items[{i}])")).collect();
    let tuple = format!("Tuple[{}]", vars.join(", "));
    let _ = write!(
        out,
        "\n\ndef _tuple{arity}({}) -> Callable[[Any], {tuple}]:\n    def decode(value: Any) -> {tuple}:\n        items = _items(value, {arity})\n        return ({},)\n\n    return decode\n",
        params.join(", "),
        items.join(", ")
    );
    out
}

fn note_untyped(out: &mut String, ty: &Type, indent: usize) {
    for reason in ty.untyped_reasons() {
        // A reason may quote the document (an unknown `type`): one comment
        // line per line of it, control characters (a NUL) as `\xNN`.
        for line in doc_lines(reason) {
            let _ = writeln!(out, "{:indent$}# {}", "", escape_controls(line));
        }
    }
}

/// The attribute a procedure is reached by on `Client` and `Batch`, or a
/// method on its namespace.
fn attr(name: &str) -> String {
    super::model::ident(name, KEYWORDS)
}

/// A Python string literal.
fn string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A docstring at `indent`, its text escaped (see [`docstring_line`]).
fn docstring(text: &str, indent: usize) -> String {
    let lines = doc_lines(text);
    let pad = " ".repeat(indent);
    match lines.as_slice() {
        [] => String::new(),
        [one] => format!("{pad}\"\"\"{}\"\"\"\n", docstring_line(one, true)),
        [first, rest @ ..] => {
            let mut out = format!("{pad}\"\"\"{}\n", docstring_line(first, false));
            for line in rest {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    let _ = writeln!(out, "{pad}{}", docstring_line(line, false));
                }
            }
            let _ = writeln!(out, "{pad}\"\"\"");
            out
        }
    }
}

/// One line of a docstring, escaped so that it reads as `line` once Python
/// has parsed it: `\` and `"""` escaped, control characters (a NUL may not
/// stand in a source file) written as `\xNN`, and, when the closing `"""`
/// follows on the same line (`closes`), a last `"` escaped too: `"x""""`
/// would end the string one quote early and start another, unclosed.
fn docstring_line(line: &str, closes: bool) -> String {
    let (body, last) = match line.strip_suffix('"') {
        Some(body) if closes => (body, "\\\""),
        _ => (line, ""),
    };
    escape_controls(&body.replace('\\', "\\\\")).replace("\"\"\"", "\\\"\\\"\\\"") + last
}

/// `text` with its control characters (but tab) written as `\xNN`: a NUL
/// may not stand in a Python source file.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docstrings_read_as_the_document_wrote_them() {
        let one = |text: &str| docstring(text, 0).trim_end().to_owned();
        assert_eq!(one("Adds."), r#""""Adds.""""#);
        // A quote just before the closing ones is escaped, and so is a run.
        assert_eq!(one(r#"Says "hi""#), r##""""Says "hi\"""""##);
        assert_eq!(one(r#"x"""""#), r##""""x\"\"\"\"""""##);
        assert_eq!(one(r#"x""""#), r##""""x""\"""""##);
        assert_eq!(one(r"C:\dir\"), r#""""C:\\dir\\""""#);
        assert_eq!(one("nul \0 bell \x07"), r#""""nul \x00 bell \x07""""#);
        // Closed on a line of its own: a last quote stays as it is.
        assert_eq!(docstring("One.\n\nTwo \"2\"", 4), "    \"\"\"One.\n\n    Two \"2\"\n    \"\"\"\n");
    }
}
