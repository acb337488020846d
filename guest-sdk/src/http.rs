//! Outgoing HTTP requests from a procedure, through `wasi:http`: the
//! `wstd` crate's client, re-exported here, and [`Failure`], a request that
//! got no response as an error that names the host and what would allow
//! it. The server sends a request only where the deploy granted
//! (`wasmrpc deploy NAME f.wasm --allow-outbound https://api.example.com`),
//! within the call's time limit and the server's outbound limits; a refusal
//! is a `wasi:http` error code, never a trap. Needs the SDK's `http`
//! feature.
//!
//! ```ignore
//! use wasmrpc_guest::http::{block_on, Body, Client, Failure, Request};
//!
//! let url = "https://api.example.com/v1/rates";
//! let request = Request::get(url).body(Body::empty())?;
//! let text = block_on(async {
//!     let mut response = Client::new().send(request).await.map_err(|e| Failure::of(url, &e))?;
//!     Ok::<_, wasmrpc_guest::Error>(response.body_mut().str_contents().await?.to_owned())
//! })?;
//! ```
//!
//! `?` turns a [`Failure`] into a -32013 error ([`Error::HTTP`](crate::Error::HTTP)).

use std::fmt;

use serde_json::json;
pub use wstd::http::*;
pub use wstd::runtime::block_on;

/// A request to `url` that got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The URL asked for.
    pub url: String,
    /// The `wasi:http` error code's WIT name (`HTTP-request-denied`,
    /// `destination-IP-prohibited`, `connection-refused`, ...), or `other`.
    pub code: &'static str,
    /// The error as the client reported it.
    pub detail: String,
}

impl Failure {
    /// The failure of a request to `url` that ended in `error`.
    pub fn of(url: &str, error: &wstd::http::Error) -> Failure {
        let (code, detail) = match error.downcast_ref::<wstd::http::error::ErrorCode>() {
            Some(code) => (code_name(code), format!("{code:?}")),
            None => ("other", format!("{error:#}")),
        };
        Failure { url: url.to_owned(), code, detail }
    }

    /// Why, for a person: names the origin and, for a refusal, the grant
    /// that would allow it.
    pub fn reason(&self) -> String {
        let origin = origin(&self.url);
        match self.code {
            "HTTP-request-denied" => format!(
                "refused: this procedure may not send requests to {origin}; deploy it with `--allow-outbound \
                 {origin}` (`?allow-outbound={origin}`)"
            ),
            "destination-IP-prohibited" => format!(
                "refused: {origin} resolves to an address the server does not send to (grant a loopback or \
                 private server by its literal address, e.g. `--allow-outbound http://127.0.0.1:8080`)"
            ),
            "connection-refused" => format!("connection refused: is the server at {origin} running?"),
            "connection-timeout" => format!("no connection to {origin} in time"),
            "timeout" => format!("{origin} did not answer in time ({})", self.detail),
            "HTTP-response-timeout" | "connection-read-timeout" => format!("{origin} did not answer in time"),
            "DNS-error" | "DNS-timeout" | "destination-not-found" => format!("cannot resolve {origin}"),
            "HTTP-request-URI-invalid" => format!("{} is not a URL the client can send to", self.url),
            "HTTP-response-body-size" => {
                format!("the response of {origin} is larger than the server allows (--max-outbound-response-mib)")
            }
            other => format!("{other}: {}", self.detail),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request to {} failed: {}", self.url, self.reason())
    }
}

impl std::error::Error for Failure {}

impl From<Failure> for crate::Error {
    fn from(failure: Failure) -> crate::Error {
        crate::Error::new(crate::Error::HTTP, failure.to_string()).with_data(json!({
            "url": failure.url,
            "error": failure.code,
            "detail": failure.detail,
        }))
    }
}

/// `scheme://host[:port]` of `url`: what a grant names.
pub(crate) fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find(['/', '?', '#']) {
        Some(end) => &url[..after_scheme + end],
        None => url,
    }
}

/// The WIT name of a `wasi:http` error code (`HTTP-request-denied`), as
/// [`Failure`]'s `data.error` names it.
pub fn code_name(code: &wstd::http::error::ErrorCode) -> &'static str {
    use wstd::http::error::ErrorCode;
    match code {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::InternalError(_) => "internal-error",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_origin_and_the_grant() {
        assert_eq!(origin("http://b:1/rpc"), "http://b:1");
        assert_eq!(origin("https://b"), "https://b");
        let denied =
            Failure { url: "https://api.example.com/v1".into(), code: "HTTP-request-denied", detail: String::new() };
        let error = crate::Error::from(denied);
        assert_eq!(error.code, crate::Error::HTTP);
        assert!(error.message.contains("--allow-outbound https://api.example.com`"), "{}", error.message);
        assert_eq!(error.data.as_ref().map(|d| d["error"].clone()), Some(json!("HTTP-request-denied")));
    }
}
