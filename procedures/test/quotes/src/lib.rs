//! Test-only: a procedure whose OpenRPC document is hard to write down in a
//! client stub, for `wasmrpc stub`'s test (tests/e2e/stubs.rs): docs that
//! would end a Python docstring or a `/** */` comment early (a trailing `"`,
//! `"""`, `*/`), backticks and backslashes, enum values with quotes,
//! backslashes and `*/`, and parameter, field and method names that are
//! keywords in Python, TypeScript or Rust. Every stub of it must type-check
//! and keep the docs as written here.
//!
//! One name cannot be a parameter of a Rust guest: `self` (there is no raw
//! identifier `r#self`, and `#[procedure]` refuses a receiver). A field
//! takes it with `#[serde(rename = "self")]`; Rust's other keywords are raw
//! identifiers (`r#type`), which the SDK and serde name without the `r#`.

use serde::{Deserialize, Serialize};
use wasmrpc_guest::procedure;
use wasmrpc_guest::schemars::JsonSchema;

/// Says "hi"
#[procedure]
fn quote(text: String) -> String {
    format!("\"{text}\"")
}

/// Takes a parameter named after a keyword of each stub's language, and
/// gives them back as the fields of the same names. Ends in an empty string: ""
#[allow(clippy::too_many_arguments)]
#[procedure]
fn keywords(
    class: String,
    from: i64,
    lambda: bool,
    r#type: Tone,
    function: Option<String>,
    delete: Option<bool>,
    new: Option<i64>,
    r#match: Option<Tone>,
    r#fn: Option<String>,
) -> Keywords {
    Keywords { class, from, lambda, function, delete, new, r#type, r#match, r#fn, self_: Some("self".into()) }
}

/// Python ends a docstring at """ (and at """" too); a C-style comment ends
/// at */ and /* opens one; Markdown quotes `code`, ``more code`` and
/// ```fences```; a path is C:\dir\ and a regex \d+\" or '\''.
///
/// It ends in a quote: "
#[procedure(name = "it's \"odd\" */")]
fn odd(tone: Tone) -> Tone {
    tone
}

/// */
#[procedure(name = "self")]
fn this(r#in: Option<Tone>) -> Option<Tone> {
    r#in
}

/// How to say it: "*/" or "\" or """
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
enum Tone {
    #[serde(rename = "say \"hi\"")]
    Quoted,
    #[serde(rename = "it's")]
    Apostrophe,
    #[serde(rename = "back\\slash\\")]
    Backslash,
    #[serde(rename = "*/")]
    CloseComment,
    #[serde(rename = "/*")]
    OpenComment,
    #[serde(rename = "\"\"\"")]
    TripleQuote,
    #[serde(rename = "`tick`")]
    Tick,
    #[serde(rename = "self")]
    Itself,
}

/// Fields named after keywords; this doc is """quoted"""
#[derive(Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Keywords {
    /// Python's "class"
    class: String,
    /// from: `from x import y`
    from: i64,
    /// lambda: \x -> x
    lambda: bool,
    /// function */ ends a comment
    function: Option<String>,
    /// delete /* opens one
    delete: Option<bool>,
    /// new "thing"
    new: Option<i64>,
    /// Rust's `type`; a path ends in \
    r#type: Tone,
    /// match """
    r#match: Option<Tone>,
    /// fn ``
    r#fn: Option<String>,
    /// self: 'single' and "double"
    #[serde(rename = "self")]
    self_: Option<String>,
}

wasmrpc_guest::export!(quote, keywords, odd, this);
