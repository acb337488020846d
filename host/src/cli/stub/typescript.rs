//! The TypeScript stub: one `.ts` module on `fetch` (Node 18+, browsers)
//! and, for a `ws://` URL, `WebSocket` (browsers, Node 22+), clean under
//! `tsc --strict`. Records are interfaces, enums string unions;
//! each procedure is a namespace class whose async methods a `Client` runs
//! at once and a `Batch` queues.

use std::fmt::Write as _;

use super::model::{Api, Decl, DeclKind, Method, Param, Scope, Type};
use super::{doc_lines, Header};

/// Reserved words (not allowed as parameter names), and `this`.
const KEYWORDS: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "batch",
    "send",
    "call",
    "transport",
    "close",
    "constructor",
];

const RUNTIME: &str = include_str!("typescript_runtime.ts");

pub fn emit(api: &Api, header: &Header) -> String {
    let mut out = header.lines("//");
    let names: Vec<&str> = api.procedures.iter().map(|p| p.name.as_str()).collect();
    out.push_str(&RUNTIME.replace("{procedures}", &names.join(", ").replace("*/", "*\\/")));
    for decl in &api.types {
        out.push('\n');
        emit_decl(&mut out, api, decl);
    }
    for procedure in &api.procedures {
        let _ = write!(
            out,
            "\n{}export class {} {{\n  constructor(private readonly call: Call) {{}}\n",
            comment(&format!("Procedure `{}`: `client.{}.<method>(...)`.", procedure.name, ident(&procedure.name)), 0),
            procedure.class
        );
        for method in &procedure.methods {
            emit_method(&mut out, api, method);
        }
        out.push_str("}\n");
    }
    let members = |value: &str| -> String {
        api.procedures.iter().map(|p| format!("    this.{} = new {}({value});\n", ident(&p.name), p.class)).collect()
    };
    let fields: String =
        api.procedures.iter().map(|p| format!("  readonly {}: {};\n", ident(&p.name), p.class)).collect();
    out.push('\n');
    out.push_str(
        &CLIENT_AND_BATCH
            .replace("{fields}", &fields)
            .replace(
                "{client_members}",
                &members("<T>(method: string, params: Params) => this.transport.call<T>(method, params)"),
            )
            .replace(
                "{batch_members}",
                &members("<T>(method: string, params: Params) => this.queue<T>(method, params)"),
            ),
    );
    out
}

const CLIENT_AND_BATCH: &str = r#"/**
 * A client of the wasmrpc server at `url` (default `http://127.0.0.1:8080`).
 * A `ws://` (or `wss://`) URL sends every call over one WebSocket connection,
 * concurrently, and makes it again after it drops; `close()` closes it.
 */
export class Client {
{fields}  private readonly transport: Transport;

  constructor(url: string = "http://127.0.0.1:8080", options: ClientOptions = {}) {
    this.transport = openTransport(url, options);
{client_members}  }

  /** A new batch of calls (see `Batch`). */
  batch(): Batch {
    return new Batch(this.transport);
  }

  /** Closes the WebSocket connection, if any (a later call makes a new one). */
  close(): void {
    this.transport.close();
  }
}

/**
 * Calls sent together in one request. Each method returns a promise that
 * settles when `send()` has the answers:
 *
 *     const batch = client.batch();
 *     const total = batch.math.add(2, 3);
 *     await batch.send();
 *     await total; // 5
 */
export class Batch {
{fields}  private calls: Queued[] = [];

  constructor(private readonly transport: Transport) {
{batch_members}  }

  private queue<T>(method: string, params: Params): Promise<T> {
    const promise = new Promise<T>((resolve, reject) => {
      this.calls.push({ method, params, resolve: (value) => resolve(value as T), reject });
    });
    // Settled by send(); a caller that awaits it later still sees the error.
    promise.catch(() => undefined);
    return promise;
  }

  /** Sends the queued calls in one request (none: nothing is sent). */
  async send(): Promise<void> {
    const calls = this.calls;
    this.calls = [];
    if (calls.length === 0) return;
    const first = this.transport.ids(calls.length);
    const requests = calls.map((c, index) => ({ jsonrpc: "2.0", method: c.method, params: c.params, id: first + index }));
    try {
      const answer = await this.transport.post(requests, first);
      if (!Array.isArray(answer)) {
        outcome(answer); // the whole batch was refused: throws its error
        throw new ProtocolError(`the server answered a batch with ${JSON.stringify(answer)}, not an array`);
      }
      const byId = new Map<unknown, unknown>();
      for (const a of answer) if (isObject(a)) byId.set(a.id, a);
      calls.forEach((c, index) => {
        const a = byId.get(first + index);
        if (a === undefined) c.reject(new ProtocolError(`the server did not answer call ${index + 1} (${c.method}) of the batch`));
        else {
          try {
            c.resolve(outcome(a));
          } catch (error) {
            c.reject(error);
          }
        }
      });
    } catch (error) {
      for (const c of calls) c.reject(error);
      throw error;
    }
  }
}
"#;

fn emit_decl(out: &mut String, api: &Api, decl: &Decl) {
    if let Some(doc) = &decl.doc {
        out.push_str(&comment(doc, 0));
    }
    match &decl.kind {
        DeclKind::Enum(variants) => {
            let values: Vec<String> = variants.iter().map(|v| string(v)).collect();
            let _ = writeln!(out, "export type {} = {};", decl.name, values.join(" | "));
        }
        DeclKind::Record(fields) => {
            let _ = writeln!(out, "export interface {} {{", decl.name);
            for field in fields {
                let mut doc = field.doc.clone().unwrap_or_default();
                for reason in field.ty.untyped_reasons() {
                    let _ = write!(doc, "{}{reason}.", if doc.is_empty() { "" } else { "\n\n" });
                }
                out.push_str(&comment(&doc, 2));
                let optional = if field.required { "" } else { "?" };
                let _ = writeln!(out, "  {}{optional}: {};", property(&field.name), ts_type(api, &field.ty));
            }
            out.push_str("}\n");
        }
    }
}

fn emit_method(out: &mut String, api: &Api, method: &Method) {
    let mut scope = Scope::with_taken(&["params"]);
    let params: Vec<(String, &Param)> =
        method.params_in_call_order().into_iter().map(|p| (scope.ident(&p.name, KEYWORDS), p)).collect();
    let mut doc = method.doc().unwrap_or("").to_owned();
    for (name, param) in &params {
        for reason in param.ty.untyped_reasons() {
            let _ = write!(doc, "\n\n`{name}`: {reason}.");
        }
    }
    for reason in method.result.untyped_reasons() {
        let _ = write!(doc, "\n\nThe result: {reason}.");
    }
    out.push('\n');
    out.push_str(&comment(&doc, 2));
    let signature: Vec<String> = params
        .iter()
        .map(|(name, p)| format!("{name}{}: {}", if p.required { "" } else { "?" }, ts_type(api, &p.ty)))
        .collect();
    let object: Vec<String> = params.iter().map(|(name, p)| format!("{}: {name}", string(&p.name))).collect();
    let result = ts_type(api, &method.result);
    let _ = writeln!(
        out,
        "  {}({}): Promise<{result}> {{\n    return this.call<{result}>({}, {{ {} }});\n  }}",
        ident(&method.name),
        signature.join(", "),
        string(&method.wire),
        object.join(", "),
    );
}

fn ts_type(api: &Api, ty: &Type) -> String {
    match ty {
        Type::Any(_) => "unknown".into(),
        Type::Null => "null".into(),
        Type::Bool => "boolean".into(),
        Type::Integer(_) | Type::Number => "number".into(),
        Type::String => "string".into(),
        Type::List(item) => format!("Array<{}>", ts_type(api, item)),
        Type::Tuple(items) => format!("[{}]", items.iter().map(|t| ts_type(api, t)).collect::<Vec<_>>().join(", ")),
        Type::Map(value) => format!("Record<string, {}>", ts_type(api, value)),
        Type::Nullable(inner) => format!("{} | null", ts_type(api, inner)),
        Type::Named(index) => api.types[*index].name.clone(),
    }
}

fn ident(name: &str) -> String {
    super::model::ident(name, KEYWORDS)
}

/// A property name: as is when it is an identifier, else quoted.
fn property(name: &str) -> String {
    let is_ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if is_ident {
        name.to_owned()
    } else {
        string(name)
    }
}

fn string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// A `/** */` comment at `indent` (nothing for empty text).
fn comment(text: &str, indent: usize) -> String {
    let escaped = text.replace("*/", "*\\/");
    let lines = doc_lines(&escaped);
    let pad = " ".repeat(indent);
    match lines.as_slice() {
        [] => String::new(),
        [one] => format!("{pad}/** {one} */\n"),
        lines => {
            let mut out = format!("{pad}/**\n");
            for line in lines {
                let _ = writeln!(out, "{pad} *{}{line}", if line.is_empty() { "" } else { " " });
            }
            let _ = writeln!(out, "{pad} */");
            out
        }
    }
}
