//! Example: calls an upstream JSON API with the URL from this procedure's
//! configuration and the API key from its secrets, and answers a summary.
//!
//! The upstream answers `GET {base-url}/items?limit=N` (sent with
//! `Authorization: Bearer {api-key}`) with `{"items": [{"title": "...",
//! "price": 12.5}, ...]}`. To run it against one:
//!
//! ```text
//! wasmrpc deploy fetch fetch.wasm --allow-outbound https://api.example.com
//! wasmrpc config fetch set base-url https://api.example.com
//! wasmrpc config fetch set api-key --secret - < api-key.txt
//! wasmrpc call fetch.summary '{"limit": 5}'
//! ```
//!
//! Errors say what to do: a missing setting is -32011 naming the
//! `wasmrpc config` command that sets it; a request the server refused or
//! that got no answer is 20, naming the host (and the `--allow-outbound`
//! grant it needs); an answer other than 2xx is 21, with its status. The
//! key goes to the upstream only: it is never answered or logged.

use serde::{Deserialize, Serialize};
use wasmrpc_guest::schemars::JsonSchema;
use wasmrpc_guest::serde_json::json;
use wasmrpc_guest::{config, procedure, Error};
use wstd::http::error::ErrorCode;
use wstd::http::{Body, Client, Request, Uri};

/// Code of a request that was refused or got no answer.
const REQUEST_FAILED: i32 = 20;
/// Code of an upstream answer other than 2xx, or not the JSON expected.
const UPSTREAM_ERROR: i32 = 21;
/// How many titles a summary lists.
const TITLES: usize = 3;

/// What the upstream answers.
#[derive(Deserialize)]
struct Items {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    title: String,
    #[serde(default)]
    price: f64,
}

/// A summary of the upstream's items.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Summary {
    /// How many items the upstream answered.
    count: usize,
    /// The first few titles.
    titles: Vec<String>,
    /// The sum of their prices.
    total: f64,
}

/// Fetches up to `limit` items (1 to 100, default 10) from the configured
/// upstream and summarizes them: how many, the first titles, the total price.
#[procedure]
fn summary(limit: Option<u32>) -> Result<Summary, Error> {
    let limit = limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid_params(format!("limit must be 1 to 100, not {limit}")));
    }
    let base_url = setting("base-url", "base-url https://api.example.com")?;
    let api_key = setting("api-key", "api-key --secret - < api-key.txt")?;
    let url = format!("{}/items?limit={limit}", base_url.trim_end_matches('/'));
    let uri: Uri =
        url.parse().map_err(|e| config_error("base-url", format!("base-url {base_url:?} is not a URL: {e}")))?;
    let origin = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
        _ => return Err(config_error("base-url", format!("base-url {base_url:?} is not an http(s) URL"))),
    };
    let items = wstd::runtime::block_on(get_items(uri, &api_key, &origin))?;
    Ok(Summary {
        count: items.len(),
        titles: items.iter().take(TITLES).map(|i| i.title.clone()).collect(),
        total: items.iter().map(|i| i.price).sum(),
    })
}

/// The configured value of `key`, or an error naming the command that sets it.
fn setting(key: &str, how: &str) -> Result<String, Error> {
    config::get(key)?.ok_or_else(|| {
        config_error(key, format!("{key} is not configured: set it with `wasmrpc config <procedure> set {how}`"))
    })
}

fn config_error(key: &str, message: String) -> Error {
    Error::new(Error::CONFIG, message).with_data(json!({ "kind": "missing", "key": key }))
}

async fn get_items(uri: Uri, api_key: &str, origin: &str) -> Result<Vec<Item>, Error> {
    let request = Request::get(uri)
        .header("authorization", format!("Bearer {api_key}"))
        .header("accept", "application/json")
        .body(Body::empty())
        .map_err(|e| Error::new(REQUEST_FAILED, format!("cannot build the request: {e}")))?;
    let mut response = Client::new().send(request).await.map_err(|e| failed(origin, &e))?;
    let status = response.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => ": check the secret api-key",
            _ => "",
        };
        return Err(Error::new(UPSTREAM_ERROR, format!("{origin} answered {status}{hint}"))
            .with_data(json!({ "host": origin, "status": status.as_u16() })));
    }
    let items: Items = response.body_mut().json().await.map_err(|e| {
        Error::new(UPSTREAM_ERROR, format!("{origin} answered no {{\"items\": [...]}}: {e:#}"))
            .with_data(json!({ "host": origin, "status": status.as_u16() }))
    })?;
    Ok(items.items)
}

/// A request that failed, as the error saying why and what would allow it.
fn failed(origin: &str, e: &wstd::http::Error) -> Error {
    let message = match e.downcast_ref::<ErrorCode>() {
        Some(ErrorCode::HttpRequestDenied) => {
            format!("the server refused the request to {origin}: deploy with `--allow-outbound {origin}`")
        }
        Some(ErrorCode::DestinationIpProhibited) => format!(
            "the server refused {origin}: it resolves to a private address, reachable only by a grant naming the address"
        ),
        Some(code) => format!("the request to {origin} failed: {code:?}"),
        None => format!("the request to {origin} failed: {e:#}"),
    };
    Error::new(REQUEST_FAILED, message).with_data(json!({ "host": origin }))
}

wasmrpc_guest::export!(summary);
