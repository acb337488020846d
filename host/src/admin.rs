//! The admin API: deploy, inspect and remove procedures
//! (`PUT/GET/DELETE /procedures/{name}`, `GET /procedures`), and who may.
//! Every error is JSON `{"error": "..."}` with the status of its [`AdminError`].

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;

use crate::registry::{DeployError, Registry};

/// Every way an admin request can fail, one variant per HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AdminError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error": "..."}`.
    pub fn body(&self) -> Bytes {
        Bytes::from(json!({ "error": self.to_string() }).to_string())
    }
}

impl From<DeployError> for AdminError {
    fn from(err: DeployError) -> Self {
        match err {
            DeployError::BadName(m) => AdminError::BadRequest(m),
            DeployError::Invalid(m) => AdminError::BadRequest(m.0),
            DeployError::NotFound(_) => AdminError::NotFound(err.to_string()),
            DeployError::Overloaded(m) => AdminError::Overloaded(m),
            DeployError::Internal(e) => {
                tracing::error!("admin request failed: {e:#}");
                AdminError::Internal(format!("internal error: {e:#}"))
            }
        }
    }
}

/// Who may change procedures: with a token, whoever presents it; without one,
/// loopback clients only.
pub fn authorize(token: Option<&str>, authorization: Option<&[u8]>, peer: SocketAddr) -> Result<(), AdminError> {
    match token {
        Some(token) => {
            let presented = authorization.and_then(|h| h.strip_prefix(b"Bearer ")).unwrap_or_default();
            if constant_time_eq(presented, token.as_bytes()) {
                Ok(())
            } else if authorization.is_none() {
                Err(AdminError::Unauthorized("missing admin token: send `Authorization: Bearer <token>`".into()))
            } else {
                Err(AdminError::Unauthorized("wrong admin token".into()))
            }
        }
        None if peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback() => Ok(()),
        None => Err(AdminError::Unauthorized(format!(
            "admin requests from {} are refused: without an admin token only loopback \
             clients may deploy; start the server with --admin-token or WASMRPC_ADMIN_TOKEN",
            peer.ip()
        ))),
    }
}

/// Compares without an early exit, so timing does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// `PUT /procedures/{name}`: 201 with metadata on a first deploy, 200 on a replace.
pub async fn deploy(registry: &Arc<Registry>, name: &str, body: Bytes) -> Result<(StatusCode, Bytes), AdminError> {
    let (metadata, created) = registry.deploy(name, body).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, to_json(&metadata)))
}

/// `GET /procedures/{name}`.
pub fn get(registry: &Registry, name: &str) -> Result<(StatusCode, Bytes), AdminError> {
    let deployed = registry.get(name).ok_or_else(|| AdminError::from(DeployError::NotFound(name.to_owned())))?;
    Ok((StatusCode::OK, to_json(&deployed.metadata)))
}

/// `GET /procedures`: every serving version, sorted by name.
pub fn list(registry: &Registry) -> (StatusCode, Bytes) {
    let table = registry.snapshot();
    let mut all: Vec<_> = table.values().map(|d| &d.metadata).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    (StatusCode::OK, to_json(&all))
}

/// `DELETE /procedures/{name}`: 204.
pub async fn remove(registry: &Registry, name: &str) -> Result<(StatusCode, Bytes), AdminError> {
    registry.remove(name).await?;
    Ok((StatusCode::NO_CONTENT, Bytes::new()))
}

fn to_json(value: &impl serde::Serialize) -> Bytes {
    // Metadata is plain strings and numbers: serialising cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let cases = [
            (AdminError::BadRequest(String::new()), 400),
            (AdminError::Unauthorized(String::new()), 401),
            (AdminError::NotFound(String::new()), 404),
            (AdminError::MethodNotAllowed(String::new()), 405),
            (AdminError::Timeout(String::new()), 408),
            (AdminError::TooLarge(String::new()), 413),
            (AdminError::Overloaded(String::new()), 503),
            (AdminError::Internal(String::new()), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
        }
        let body: serde_json::Value = serde_json::from_slice(&AdminError::NotFound("no such".into()).body()).unwrap();
        assert_eq!(body, json!({"error": "no such"}));
    }

    #[test]
    fn authorization_rules() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(authorize(None, None, local).is_ok());
        assert!(matches!(authorize(None, None, remote), Err(AdminError::Unauthorized(_))));
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
