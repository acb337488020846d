//! The admin API: deploy, inspect, roll back and remove procedures
//! (`PUT/GET/DELETE /procedures/{name}`, `GET /procedures`,
//! `GET /procedures/{name}/versions`,
//! `POST /procedures/{name}/versions/{n}/activate`), and who may.
//! Every error is JSON `{"error": "..."}` with the status of its [`HttpError`].
//! Procedures' key-value state has its own part of the API (`kv.rs`), and
//! so has their configuration (`config.rs`), and so have caller keys
//! (`keys.rs`).

pub mod config;
pub mod keys;
pub mod kv;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, StatusCode};

use crate::body::{self, BodyError};
use crate::config::Config;
use crate::http_error::{json_response, HttpError, HttpResponse};
use crate::registry::{check_name, Registry, RegistryError};
use crate::sandbox::Reuse;
use crate::store::Settings;

impl From<RegistryError> for HttpError {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::BadName(m) | RegistryError::BadGrant(m) => HttpError::BadRequest(m),
            RegistryError::Invalid(m) => HttpError::BadRequest(m.0),
            RegistryError::NotFound(m) => HttpError::NotFound(m),
            RegistryError::Overloaded(m) => HttpError::Overloaded(m),
            RegistryError::Unavailable(m) => HttpError::Unavailable(m),
            RegistryError::Internal(e) => HttpError::internal(&e),
        }
    }
}

/// Who may change procedures: with a token, whoever presents it; without one,
/// loopback clients only.
pub fn authorize(token: Option<&str>, authorization: Option<&[u8]>, peer: SocketAddr) -> Result<(), HttpError> {
    match token {
        Some(token) => {
            let presented = authorization.and_then(|h| h.strip_prefix(b"Bearer ")).unwrap_or_default();
            if constant_time_eq(presented, token.as_bytes()) {
                Ok(())
            } else if authorization.is_none() {
                Err(HttpError::Unauthorized("missing admin token: send `Authorization: Bearer <token>`".into()))
            } else {
                Err(HttpError::Unauthorized("wrong admin token".into()))
            }
        }
        None if peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback() => Ok(()),
        None => Err(HttpError::Unauthorized(format!(
            "admin requests from {} are refused: without an admin token only loopback \
             clients may deploy; start the server with --admin-token or WASMRPC_ADMIN_TOKEN",
            peer.ip()
        ))),
    }
}

/// Reads an admin request's body of at most `limit` bytes; `what` says,
/// when it is larger, what the limit is (the API's own words for each
/// route). Every admin route but the deploy (whose body is the module)
/// reads its body here.
pub(crate) async fn read_body(
    req: Request<Incoming>,
    config: &Config,
    limit: u64,
    what: &str,
) -> Result<Bytes, HttpError> {
    body::read(req, limit, config.body_read_timeout).await.map_err(|e| match e {
        BodyError::TooLarge => HttpError::TooLarge(format!("the body is too large: {what}")),
        BodyError::Timeout => HttpError::Timeout(format!(
            "the body did not arrive within {} ms (--body-timeout-ms)",
            config.body_read_timeout.as_millis()
        )),
        BodyError::Broken(e) => HttpError::BadRequest(format!("cannot read the body: {e}")),
    })
}

/// Compares without an early exit, so timing does not reveal the matching prefix.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// `PUT /procedures/{name}[?allow-outbound=URL...][&reuse=N[&reuse-idle-ms=T][&reuse-memory-mib=M]]`:
/// 201 with metadata on a first deploy, 200 on a replace; 400 for a bad
/// `allow-outbound` entry or reuse setting.
pub async fn deploy(
    registry: &Arc<Registry>,
    config: &Config,
    peer: SocketAddr,
    name: &str,
    req: Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    authorize_request(config, peer, &req)?;
    check_name(name)?;
    let allowed_outbound = allow_outbound(req.uri().query());
    crate::outbound::Grant::parse(&allowed_outbound).map_err(HttpError::BadRequest)?;
    let reuse = Reuse::from_query(req.uri().query()).map_err(HttpError::BadRequest)?;
    let limit = config.max_module_bytes;
    let body = body::read(req, limit, config.body_read_timeout).await.map_err(|e| match e {
        BodyError::TooLarge => HttpError::TooLarge(format!(
            "the module is larger than the limit of {} MiB (--max-module-mib)",
            limit >> 20
        )),
        BodyError::Timeout => HttpError::Timeout(format!(
            "the upload did not arrive within {} ms (--body-timeout-ms)",
            config.body_read_timeout.as_millis()
        )),
        BodyError::Broken(e) => HttpError::BadRequest(format!("cannot read the upload: {e}")),
    })?;
    if body.is_empty() {
        return Err(HttpError::BadRequest(
            "the request body is empty: send the .wasm bytes, e.g. `curl -X PUT --data-binary @f.wasm`".into(),
        ));
    }
    let (metadata, created) = registry.deploy_with(name, body, Settings { allowed_outbound, reuse }).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(status, to_json(&metadata)))
}

/// Every `allow-outbound` value of a query string, in order.
fn allow_outbound(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "allow-outbound")
        .map(|(_, value)| value.into_owned())
        .collect()
}

/// `GET /procedures/{name}`.
pub fn get(registry: &Registry, name: &str) -> Result<HttpResponse, HttpError> {
    let metadata = registry.metadata(name).ok_or_else(|| HttpError::from(RegistryError::not_deployed(name)))?;
    Ok(json_response(StatusCode::OK, to_json(&metadata)))
}

/// `GET /procedures`: every serving version, sorted by name.
pub fn list(registry: &Registry) -> HttpResponse {
    json_response(StatusCode::OK, to_json(&registry.list()))
}

/// `DELETE /procedures/{name}`: 204.
pub async fn remove(
    registry: &Arc<Registry>,
    config: &Config,
    peer: SocketAddr,
    name: &str,
    req: &Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    authorize_request(config, peer, req)?;
    registry.remove(name).await?;
    Ok(json_response(StatusCode::NO_CONTENT, Bytes::new()))
}

/// `GET /procedures/{name}/versions`: the kept versions, newest first.
pub async fn versions(registry: &Arc<Registry>, name: &str) -> Result<HttpResponse, HttpError> {
    Ok(json_response(StatusCode::OK, to_json(&registry.versions(name).await?)))
}

/// `POST /procedures/{name}/versions/{n}/activate`: version `n` serves
/// again; 200 with its metadata.
pub async fn activate(
    registry: &Arc<Registry>,
    config: &Config,
    peer: SocketAddr,
    name: &str,
    version: &str,
    req: &Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    authorize_request(config, peer, req)?;
    check_name(name)?;
    let version: u64 = version.parse().map_err(|_| {
        let shown = crate::logtext::loggable(version.get(..32).unwrap_or("(not shown)"));
        HttpError::NotFound(format!("`{shown}` is not a version number: versions count 1, 2, ..."))
    })?;
    let metadata = registry.activate(name, version).await?;
    Ok(json_response(StatusCode::OK, to_json(&metadata)))
}

/// Applies [`authorize`] to a request with the server's token.
pub(crate) fn authorize_request(config: &Config, peer: SocketAddr, req: &Request<Incoming>) -> Result<(), HttpError> {
    let header = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    authorize(config.admin_token.as_deref(), header, peer)
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Bytes {
    // Metadata is plain strings and numbers: serialising cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_rules() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(authorize(None, None, local).is_ok());
        assert!(matches!(authorize(None, None, remote), Err(HttpError::Unauthorized(_))));
        // Loopback over IPv6, also an IPv4 client on a dual-stack socket; not a mapped remote one.
        for peer in ["[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert!(authorize(None, None, peer.parse().unwrap()).is_ok(), "{peer}");
        }
        assert!(authorize(None, None, "[::ffff:192.0.2.7]:5000".parse().unwrap()).is_err());
        assert!(authorize(Some("s3cret"), Some(b"Bearer s3cret"), remote).is_ok());
        assert!(authorize(Some("s3cret"), Some(b"Bearer s3cre"), local).is_err());
        assert!(authorize(Some("s3cret"), Some(b"Bearer s3cret2"), local).is_err());
        assert!(authorize(Some("s3cret"), None, local).is_err());
        assert!(authorize(Some("s3cret"), Some(b"s3cret"), local).is_err());
    }
}
