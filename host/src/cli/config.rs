//! `wasmrpc config NAME set|unset|list`: a procedure's configuration
//! through the admin API (`/procedures/{name}/config`, see
//! `admin/config.rs`). `set` and `unset` send one key in a PUT, which the
//! server merges into the rest, so they never need a secret's value back.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::Context as _;
use hyper::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::args::{ConfigCommand, ServerArgs};
use super::{admin_request, client_command};

/// What a name keeps unencoded in a path: what a valid name is made of.
const NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Runs `wasmrpc config NAME ...`.
pub(crate) fn run(name: &str, command: ConfigCommand) -> anyhow::Result<ExitCode> {
    // Encoded, so a bad name reaches the server's name check whole.
    let encoded = utf8_percent_encode(name, NAME);
    let path = format!("/procedures/{encoded}/config");
    client_command(async move {
        match command {
            ConfigCommand::Set { key, value, secret, server } => {
                let value = if value == "-" { stdin_value()? } else { value };
                let part = if secret { "secrets" } else { "variables" };
                put(&server, &path, json!({ part: { &key: value } })).await?;
                let kind = if secret { "secret" } else { "variable" };
                println!("set {kind} {key} of {name}");
            }
            ConfigCommand::Unset { key, server } => {
                put(&server, &path, json!({ "variables": { &key: null } })).await?;
                println!("unset {key} of {name}");
            }
            ConfigCommand::List { server } => {
                let shown = admin_request(&server, Method::GET, &path, Vec::new()).await?.json()?;
                list(name, &shown);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn put(server: &ServerArgs, path: &str, body: Value) -> anyhow::Result<()> {
    admin_request(server, Method::PUT, path, body.to_string().into_bytes()).await?;
    Ok(())
}

/// A value from stdin, without one trailing newline (what `echo` adds).
fn stdin_value() -> anyhow::Result<String> {
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value).context("reading the value from stdin (as UTF-8)")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

/// The keys as a table: KEY, KIND, VALUE (`(hidden)` for a secret).
fn list(name: &str, shown: &Value) {
    let mut rows: Vec<(String, &str, String)> = Vec::new();
    for (key, value) in shown["variables"].as_object().into_iter().flatten() {
        let value = value.as_str().unwrap_or_default();
        rows.push((key.clone(), "variable", value.escape_debug().to_string()));
    }
    for key in shown["secrets"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        rows.push((key.to_owned(), "secret", "(hidden)".to_owned()));
    }
    if rows.is_empty() {
        println!("{name} has no configuration");
        return;
    }
    rows.sort();
    let width = rows.iter().map(|r| r.0.len()).chain([3]).max().unwrap_or(3);
    println!("{:<width$}  {:<8}  VALUE", "KEY", "KIND");
    for (key, kind, value) in rows {
        println!("{key:<width$}  {kind:<8}  {value}");
    }
}
