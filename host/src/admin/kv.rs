//! The admin API of procedures' key-value state, all behind admin auth:
//!
//! - `GET /procedures/{name}/kv`: the buckets with key counts and bytes;
//!   with `?bucket=B` a page of its keys (`prefix=P`, `cursor=C` from the
//!   previous page, `limit=N`, capped at `--kv-page-keys`, `values=1` to
//!   include each value in base64: what `wasmrpc kv export` reads);
//! - `DELETE /procedures/{name}/kv`: all of the procedure's data;
//! - `POST /procedures/{name}/kv`: JSON lines `{"bucket", "key", "value"}`
//!   (value in base64), as `export` writes them: `wasmrpc kv import`;
//! - `GET|PUT|DELETE /procedures/{name}/kv/{bucket}/{key}`: one value, as
//!   raw bytes (bucket and key percent-encoded in the path).
//!
//! Data belongs to a name whether or not it is deployed now.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{authorize_request, to_json};
use crate::config::Config;
use crate::http_error::{json_response, HttpError, HttpResponse};
use crate::kv::{KvError, Start, Write, MAX_BATCH_KEYS};
use crate::registry::{check_name, Registry};

/// Largest `POST /procedures/{name}/kv` body.
const MAX_IMPORT_BYTES: u64 = 256 << 20;

/// One key as `export` writes it and `import` reads it: a JSON line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub bucket: String,
    pub key: String,
    /// The value in standard base64.
    pub value: String,
}

impl From<KvError> for HttpError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Storage(e) => HttpError::internal(&e),
            e @ (KvError::ValueTooLarge(..) | KvError::Quota { .. }) => HttpError::TooLarge(e.to_string()),
            other => HttpError::BadRequest(other.to_string()),
        }
    }
}

/// A route under `/procedures/{name}/kv`.
pub fn handles(rest: &str) -> Option<(&str, Option<&str>)> {
    let (name, tail) = rest.split_once('/')?;
    match tail.strip_prefix("kv") {
        Some("") => Some((name, None)),
        Some(path) => path.strip_prefix('/').map(|p| (name, Some(p))),
        None => None,
    }
}

/// Serves a request to `/procedures/{name}/kv` (`path`: `None`) or
/// `/procedures/{name}/kv/{path}`; `query` is the URL's query.
pub async fn serve(
    registry: &Arc<Registry>,
    config: &Config,
    peer: SocketAddr,
    name: &str,
    path: Option<&str>,
    req: Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    authorize_request(config, peer, &req)?;
    check_name(name)?;
    let kv = registry.kv();
    let method = req.method().clone();
    let Some(path) = path else {
        return match method.as_str() {
            "GET" => list(registry, name, req.uri().query().unwrap_or_default()).await,
            "DELETE" => {
                let erased = kv.erase(name).await?;
                Ok(json_response(StatusCode::OK, to_json(&json!({ "erased_keys": erased }))))
            }
            "POST" => import(registry, config, name, req).await,
            _ => Err(not_allowed("GET, POST, DELETE")),
        };
    };
    let (bucket, key) =
        path.split_once('/').ok_or_else(|| HttpError::NotFound("use /procedures/{name}/kv/{bucket}/{key}".into()))?;
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    match method.as_str() {
        "GET" => match kv.get(name, &bucket, &key).await? {
            Some(value) => {
                let mut response = json_response(StatusCode::OK, Bytes::from(value));
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                Ok(response)
            }
            None => Err(HttpError::NotFound(format!("procedure `{name}` has no key {key:?} in bucket {bucket:?}"))),
        },
        "PUT" => {
            let max = kv.limits().max_value_bytes;
            let what = format!("values are at most {max} bytes (--kv-max-value-kib)");
            let value = super::read_body(req, config, max as u64, &what).await?;
            kv.write_one(name, &bucket, Write::Set { key: key.into_owned(), value: value.to_vec() }).await?;
            Ok(json_response(StatusCode::NO_CONTENT, Bytes::new()))
        }
        "DELETE" => {
            kv.write_one(name, &bucket, Write::Delete { key: key.into_owned() }).await?;
            Ok(json_response(StatusCode::NO_CONTENT, Bytes::new()))
        }
        _ => Err(not_allowed("GET, PUT, DELETE")),
    }
}

fn not_allowed(allow: &'static str) -> HttpError {
    HttpError::MethodNotAllowed { message: format!("this path takes {allow}"), allow }
}

fn decode(segment: &str) -> Result<Cow<'_, str>, HttpError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| HttpError::BadRequest("bucket and key must be percent-encoded UTF-8".into()))
}

/// The buckets, or with `bucket=` a page of keys.
async fn list(registry: &Registry, name: &str, query: &str) -> Result<HttpResponse, HttpError> {
    let page_keys = registry.kv().limits().page_keys;
    let (mut bucket, mut prefix, mut cursor, mut limit, mut values) = (None, String::new(), None, page_keys, false);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "bucket" => bucket = Some(v.into_owned()),
            "prefix" => prefix = v.into_owned(),
            "cursor" => cursor = Some(v.into_owned()),
            "limit" => {
                // Capped at the page size: a client need not know the flag.
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| HttpError::BadRequest("limit must be a number of keys, 1 or more".into()))?
                    .min(page_keys);
            }
            "values" => values = matches!(&*v, "1" | "true"),
            other => {
                return Err(HttpError::BadRequest(format!(
                    "unknown query parameter `{}`: use bucket, prefix, cursor, limit, values",
                    crate::logtext::loggable(other)
                )))
            }
        }
    }
    let kv = registry.kv();
    let Some(bucket) = bucket else {
        let buckets = kv.buckets(name).await?;
        return Ok(json_response(StatusCode::OK, to_json(&json!({ "procedure": name, "buckets": buckets }))));
    };
    let start = cursor.map_or(Start::First, Start::After);
    let page = kv.list(name, &bucket, &prefix, &start, limit, values).await?;
    let cursor = if page.more { page.entries.last().map(|(k, _)| k.clone()) } else { None };
    let body = if values {
        let entries: Vec<_> = page
            .entries
            .into_iter()
            .map(|(key, value)| json!({ "key": key, "value": BASE64.encode(value.unwrap_or_default()) }))
            .collect();
        json!({ "bucket": bucket, "entries": entries, "cursor": cursor })
    } else {
        let keys: Vec<String> = page.entries.into_iter().map(|(k, _)| k).collect();
        json!({ "bucket": bucket, "keys": keys, "cursor": cursor })
    };
    Ok(json_response(StatusCode::OK, to_json(&body)))
}

/// Reads JSON lines of [`Entry`] and sets each. Every line is parsed before
/// any is written, so a malformed file writes nothing; a key a limit
/// refuses (its size, the quota) stops the import, and the error says how
/// many keys were written before it.
async fn import(
    registry: &Registry,
    config: &Config,
    name: &str,
    req: Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    let body = super::read_body(req, config, MAX_IMPORT_BYTES, "an import is at most 256 MiB: split it").await?;
    let text = std::str::from_utf8(&body).map_err(|_| HttpError::BadRequest("the import is not UTF-8 text".into()))?;
    let mut by_bucket: Vec<(String, Vec<Write>)> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |why: String| HttpError::BadRequest(format!("line {}: {why}", n + 1));
        let entry: Entry = serde_json::from_str(line).map_err(|e| {
            // serde's own position is in this one line: its column only.
            let why = e.to_string();
            let why = why.split(" at line ").next().unwrap_or_default();
            bad(format!("not an entry ({why} at column {})", e.column()))
        })?;
        let value = BASE64.decode(&entry.value).map_err(|e| bad(format!("value is not base64 ({e})")))?;
        let write = Write::Set { key: entry.key, value };
        match by_bucket.last_mut() {
            Some((bucket, writes)) if *bucket == entry.bucket && writes.len() < MAX_BATCH_KEYS => writes.push(write),
            _ => by_bucket.push((entry.bucket, vec![write])),
        }
    }
    let kv = registry.kv();
    let mut imported = 0_u64;
    for (bucket, writes) in by_bucket {
        for outcome in kv.write(name, &bucket, writes).await? {
            if let Err(e) = outcome {
                let why = HttpError::from(e);
                return Err(HttpError::BadRequest(format!("imported {imported} keys, then stopped: {why}")));
            }
            imported += 1;
        }
    }
    Ok(json_response(StatusCode::OK, to_json(&json!({ "imported_keys": imported }))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_paths() {
        assert_eq!(handles("notes/kv"), Some(("notes", None)));
        assert_eq!(handles("notes/kv/default/a%2Fb"), Some(("notes", Some("default/a%2Fb"))));
        assert_eq!(handles("notes/kvx"), None);
        assert_eq!(handles("notes/versions"), None);
        assert_eq!(handles("notes"), None);
    }
}
