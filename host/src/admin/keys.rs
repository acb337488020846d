//! The admin API of caller keys (`crate::keys`), all behind admin auth:
//!
//! - `POST /keys` with `{"name", "procedures": [GLOB], "rate":
//!   {"per_second", "burst"}}` (rate optional): 201 with `{"name", "key",
//!   "prefix", "procedures", "rate", "created_at"}`, the only time the key
//!   is shown; 409 if the name is taken, 400 for a bad name, glob or rate;
//! - `GET /keys`: every key as above, without the key itself;
//! - `DELETE /keys/{name}`: 204, or 404.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use super::{authorize_request, to_json};
use crate::config::Config;
use crate::http_error::{json_response, HttpError, HttpResponse};
use crate::keys::{self, KeysError};
use crate::registry::Registry;

/// Largest `POST /keys` body.
const MAX_BODY_BYTES: u64 = 64 << 10;

impl From<KeysError> for HttpError {
    fn from(e: KeysError) -> Self {
        match e {
            KeysError::Invalid(m) => HttpError::BadRequest(m),
            KeysError::Exists(m) => HttpError::Conflict(m),
            KeysError::NotFound(m) => HttpError::NotFound(m),
            KeysError::Unavailable(m) => HttpError::Unavailable(m),
            KeysError::Storage(e) => HttpError::internal(&e),
        }
    }
}

/// Serves a request to `/keys` (`name` `None`) or `/keys/{name}`.
pub async fn serve(
    registry: &Arc<Registry>,
    config: &Config,
    peer: SocketAddr,
    name: Option<&str>,
    req: Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    let method = req.method().clone();
    let allow = if name.is_some() { "DELETE" } else { "GET, POST" };
    let allowed = matches!((name, &method), (None, &Method::GET | &Method::POST) | (Some(_), &Method::DELETE));
    if !allowed {
        let path = req.uri().path().to_owned();
        return Err(HttpError::MethodNotAllowed {
            message: format!("{method} is not allowed on {path}; use {allow}"),
            allow,
        });
    }
    authorize_request(config, peer, &req)?;
    let keys = registry.keys();
    match name {
        Some(name) => {
            keys::check_name(name)?;
            keys.remove(name).await?;
            Ok(json_response(StatusCode::NO_CONTENT, Bytes::new()))
        }
        None if method == Method::GET => {
            let all: Vec<Value> = keys.list().iter().map(keys::Stored::shown).collect();
            Ok(json_response(StatusCode::OK, to_json(&all)))
        }
        None => {
            let what = format!("a key's description is at most {} KiB", MAX_BODY_BYTES >> 10);
            let body = super::read_body(req, config, MAX_BODY_BYTES, &what).await?;
            let (stored, key) = keys.create(keys::parse_new(&body)?).await?;
            let mut shown = stored.shown();
            shown["key"] = Value::String(key);
            Ok(json_response(StatusCode::CREATED, to_json(&shown)))
        }
    }
}
