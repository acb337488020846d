//! `wasmrpc keys create|list|remove`: caller keys through the admin API
//! (`/keys`, see `admin/keys.rs`). `create` prints the key alone on stdout
//! (so `KEY=$(wasmrpc keys create ...)` keeps it) and what it covers on
//! stderr: the server never shows it again.

use std::process::ExitCode;

use hyper::Method;
use serde_json::{json, Value};

use super::args::KeysCommand;
use super::{admin_request, client_command};

/// Runs `wasmrpc keys ...`.
pub(crate) fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    client_command(async move {
        match command {
            KeysCommand::Create { name, procedures, rate, server } => {
                let rate = rate.map(|r| json!({"per_second": r.per_second, "burst": r.burst}));
                let body = json!({"name": name, "procedures": procedures, "rate": rate});
                let created =
                    admin_request(&server, Method::POST, "/keys", body.to_string().into_bytes()).await?.json()?;
                println!("{}", created["key"].as_str().unwrap_or_default());
                eprintln!(
                    "created caller key {name} for {} ({}); it is shown only now: keep it",
                    globs(&created),
                    rate_text(&created["rate"])
                );
            }
            KeysCommand::List { server } => {
                let all = admin_request(&server, Method::GET, "/keys", Vec::new()).await?.json()?;
                list(all.as_array().map(Vec::as_slice).unwrap_or_default());
            }
            KeysCommand::Remove { name, server } => {
                // A bad name reaches the server's check whole.
                let encoded = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
                admin_request(&server, Method::DELETE, &format!("/keys/{encoded}"), Vec::new()).await?;
                println!("removed caller key {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn globs(key: &Value) -> String {
    let globs: Vec<&str> = key["procedures"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    globs.join(", ")
}

fn rate_text(rate: &Value) -> String {
    match (rate["per_second"].as_u64(), rate["burst"].as_u64()) {
        (Some(per_second), Some(burst)) => format!("{per_second}/s, burst {burst}"),
        _ => "server's --rate-limit".into(),
    }
}

/// The keys as a table: NAME, PREFIX, PROCEDURES, RATE, CREATED.
fn list(all: &[Value]) {
    if all.is_empty() {
        println!("no caller keys");
        return;
    }
    let rows: Vec<[String; 5]> = all
        .iter()
        .map(|k| {
            [
                k["name"].as_str().unwrap_or_default().to_owned(),
                format!("{}...", k["prefix"].as_str().unwrap_or_default()),
                globs(k),
                rate_text(&k["rate"]),
                k["created_at"].as_str().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "PREFIX", "PROCEDURES", "RATE", "CREATED"];
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0)).collect();
    let line = |cells: [&str; 5]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}
