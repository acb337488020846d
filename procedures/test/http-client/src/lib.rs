//! Test-only: outgoing HTTP through `wasi:http`, with `wstd`'s client, as
//! any Rust procedure would send it. A refused or failed request answers
//! the JSON-RPC error 20 whose data names the `wasi:http` error code
//! (`{"error": "HTTP-request-denied", "detail": ...}`).

use std::collections::BTreeMap;

use serde::Serialize;
use wasmrpc_guest::http::code_name;
use wasmrpc_guest::schemars::JsonSchema;
use wasmrpc_guest::{procedure, Error};
use wstd::http::error::ErrorCode;
use wstd::http::{Body, Client, Method, Request};

/// What a request got back.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Fetched {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `method` (default GET) to `url` with `body`, and answers the
/// response: status, headers and body (as text).
#[procedure]
fn fetch(url: String, method: Option<String>, body: Option<String>) -> Result<Fetched, Error> {
    wstd::runtime::block_on(send(&url, method.as_deref().unwrap_or("GET"), body))
}

/// Sends `count` GETs to `url` one after another; each one's status, or its
/// error code.
#[procedure]
fn fetch_many(url: String, count: u32) -> Vec<String> {
    wstd::runtime::block_on(async {
        let mut outcomes = Vec::new();
        for _ in 0..count {
            outcomes.push(match send(&url, "GET", None).await {
                Ok(fetched) => fetched.status.to_string(),
                Err(e) => e.message,
            });
        }
        outcomes
    })
}

async fn send(url: &str, method: &str, body: Option<String>) -> Result<Fetched, Error> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| Error::invalid_params(e.to_string()))?;
    let body = body.unwrap_or_default();
    let request = Request::builder()
        .uri(url)
        .method(method)
        .header("content-length", body.len())
        .body(Body::from(body))
        .map_err(|e| Error::invalid_params(e.to_string()))?;
    let mut response = Client::new().send(request).await.map_err(failed)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.body_mut().str_contents().await.map_err(failed)?.to_owned();
    Ok(Fetched { status, headers, body })
}

/// A `wasi:http` failure as the JSON-RPC error 20.
fn failed(e: wstd::http::Error) -> Error {
    let (code, detail) = match e.downcast_ref::<ErrorCode>() {
        Some(code) => (code_name(code).to_owned(), format!("{code:?}")),
        None => ("other".to_owned(), format!("{e:#}")),
    };
    Error::new(20, format!("request failed: {code}"))
        .with_data(wasmrpc_guest::serde_json::json!({ "error": code, "detail": detail }))
}

wasmrpc_guest::export!(fetch, fetch_many);
