//! The HTTP transport: one request, whole body back, over hyper's pooled
//! HTTP/1 client, to `http://` and `https://` URLs (TLS: see
//! [`HttpClient::with_root_certificate`]). [`crate::Client`] sends its
//! JSON-RPC requests through it; the `wasmrpc` command line (admin requests)
//! and the end-to-end tests use it directly.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::tls::{Connector, Failure, Tls};

/// How long a request may take by default, answer included. Long, because
/// the command line's deploys wait for the server to compile the module.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long an idle keep-alive connection is kept: well under the server's
/// header timeout (10 s by default), so the server never closes one under a
/// request that is just being sent.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request got no HTTP answer (or, for a `ws://` client, no answer
/// over its WebSocket connection). An answer with an error status is not a
/// transport error: it is an [`Answer`].
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach the server at {url}: {reason} (is `wasmrpc serve` running there?)")]
    Unreachable { url: String, reason: String },
    /// No TLS connection (`https://`, `wss://`): most often a certificate
    /// that does not verify, which the reason names.
    #[error("cannot reach the server at {url} over TLS: {reason}")]
    Tls { url: String, reason: String },
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("the connection to {url} broke while reading the answer: {reason}")]
    Broken { url: String, reason: String },
}

/// An answer whose body should have been JSON and is not.
#[derive(Debug, thiserror::Error)]
#[error("the server answered with invalid JSON ({reason}): {text}")]
pub struct InvalidJson {
    pub text: String,
    pub reason: String,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, InvalidJson> {
        serde_json::from_slice(&self.body).map_err(|e| InvalidJson { text: self.text(), reason: e.to_string() })
    }
}

/// Sends one request to `url` on a new client; `headers` are added as given.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Answer, TransportError> {
    HttpClient::new().send(method, url, headers, body).await
}

/// A client that keeps connections alive between requests (use it within
/// one tokio runtime). Cloning it shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    tls: Tls,
    timeout: Duration,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client whose requests time out after [`DEFAULT_TIMEOUT`].
    pub fn new() -> HttpClient {
        HttpClient::with_tls(Tls::default(), DEFAULT_TIMEOUT)
    }

    fn with_tls(tls: Tls, timeout: Duration) -> HttpClient {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector::new(tls.clone()));
        HttpClient { client, tls, timeout }
    }

    /// A client (with connections of its own) that also trusts the
    /// certificates in `pem` as roots for `https://`: one or more
    /// `-----BEGIN CERTIFICATE-----` blocks, such as the certificate of the
    /// authority that signed a server's private certificate. Trusted
    /// besides the Mozilla roots built in and the PEM file the environment
    /// variable `SSL_CERT_FILE` names, if set. Fails if `pem` holds no
    /// usable certificate.
    pub fn with_root_certificate(self, pem: &[u8]) -> std::io::Result<HttpClient> {
        Ok(HttpClient::with_tls(self.tls.with_pem(pem)?, self.timeout))
    }

    /// The same client (sharing its connections) with another time limit
    /// per request, answer included.
    pub fn with_timeout(mut self, timeout: Duration) -> HttpClient {
        self.timeout = timeout;
        self
    }

    /// Sends one request to `url`; `headers` are added as given.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Answer, TransportError> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body.into()))
            .map_err(|e| TransportError::InvalidUrl { url: url.to_owned(), reason: innermost(&e) })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| match Failure::find(&e) {
                Some(failure) => TransportError::Tls { url: url.to_owned(), reason: failure.to_string() },
                None => TransportError::Unreachable { url: url.to_owned(), reason: innermost(&e) },
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let content_type =
                headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| TransportError::Broken { url: url.to_owned(), reason: innermost(&e) })?
                .to_bytes();
            Ok(Answer { status, content_type, headers, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(TransportError::Timeout { url: url.to_owned(), timeout: self.timeout }))
    }
}

/// The innermost cause of `error`: hyper's outer layers only say "client
/// error (Connect)"; the reason a user can act on is at the bottom.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
