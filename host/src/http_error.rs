//! The one error type of the HTTP API: every way a request outside JSON-RPC
//! can fail (admin routes, unknown paths, wrong methods, unreadable bodies),
//! one variant per status, answered as JSON `{"error": "..."}`.
//!
//! Internal errors never reach the client as they are: their chain can name
//! data-dir paths. [`HttpError::internal`] logs the chain with an error id and
//! answers a generic message carrying that id, so an operator can find it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

/// What every handler answers with.
pub type HttpResponse = Response<Full<Bytes>>;

/// Every way an HTTP request can fail, one variant per status.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the request is understood and refused (a page of another origin).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already (a caller key's name).
    #[error("{0}")]
    Conflict(String),
    /// `allow` lists the methods the path takes, for the `Allow` header.
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: &'static str },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Overloaded(String),
    /// A service the request needs (a shared registry) cannot be reached now.
    #[error("{0}")]
    Unavailable(String),
    /// A generic message with the id under which the details were logged.
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    /// Logs `err`'s whole chain under a fresh id and returns the error the
    /// client sees: the id and nothing of the chain.
    pub fn internal(err: &anyhow::Error) -> Self {
        let request_id = crate::metrics::next_request_id();
        tracing::error!(request_id, "request failed: {err:#}");
        HttpError::Internal(format!(
            "internal server error (request id {request_id}): the details are in the server's log"
        ))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Overloaded(_) | HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error": "..."}`.
    pub fn body(&self) -> Bytes {
        Bytes::from(json!({ "error": self.to_string() }).to_string())
    }

    /// The whole answer: status, JSON body, and the headers the status calls for.
    pub fn response(&self) -> HttpResponse {
        let mut response = json_response(self.status(), self.body());
        match self {
            // Call slots free up within a call's time limit: a retry soon may succeed.
            HttpError::Overloaded(_) => {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // A registry that is down is usually back within seconds (a restart, a failover).
            HttpError::Unavailable(_) => {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            HttpError::MethodNotAllowed { allow, .. } => {
                response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

/// A response with `body` and, unless it is 204, `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let cases = [
            (HttpError::BadRequest(String::new()), 400),
            (HttpError::Unauthorized(String::new()), 401),
            (HttpError::Forbidden(String::new()), 403),
            (HttpError::NotFound(String::new()), 404),
            (HttpError::Conflict(String::new()), 409),
            (HttpError::MethodNotAllowed { message: String::new(), allow: "GET" }, 405),
            (HttpError::Timeout(String::new()), 408),
            (HttpError::TooLarge(String::new()), 413),
            (HttpError::Overloaded(String::new()), 503),
            (HttpError::Unavailable(String::new()), 503),
            (HttpError::Internal(String::new()), 500),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
        }
        let body: serde_json::Value = serde_json::from_slice(&HttpError::NotFound("no such".into()).body()).unwrap();
        assert_eq!(body, json!({"error": "no such"}));
    }

    #[test]
    fn internal_errors_hide_their_chain() {
        let err = anyhow::anyhow!("cannot write /secret/data-dir/procedures/x.json").context("saving the record");
        let answer = HttpError::internal(&err);
        let text = answer.to_string();
        assert!(!text.contains("/secret") && !text.contains("saving"), "{text}");
        assert!(text.contains("request id "), "{text}");
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn headers_follow_the_status() {
        let response = HttpError::Overloaded("busy".into()).response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let response = HttpError::Unavailable("registry down".into()).response();
        assert_eq!(response.headers()[RETRY_AFTER], "5");
        let response = HttpError::MethodNotAllowed { message: "no".into(), allow: "GET, PUT" }.response();
        assert_eq!(response.headers()[ALLOW], "GET, PUT");
    }
}
