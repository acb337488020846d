//! A small HTTP/1 client for the command line (`deploy`, `call`, `list`,
//! `remove`, `dev`) and the end-to-end tests: one request, whole body back;
//! and [`AdminClient`], the one client of the admin API that the commands
//! share.

use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How long the command line waits for an answer (a deploy compiles).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("the server answered with invalid JSON: {}", self.text()))
    }
}

/// Sends one request to `url` on a new connection; `headers` are added as given.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Answer> {
    HttpClient::new().send(method, url, headers, body).await
}

/// A client that keeps connections alive between requests (use it within
/// one tokio runtime).
#[derive(Clone)]
pub struct HttpClient(Client<HttpConnector, Full<Bytes>>);

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    pub fn new() -> HttpClient {
        // Idle connections are dropped well before the server's header timeout
        // (10 s) would close them under a request.
        HttpClient(
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build_http(),
        )
    }

    /// Sends one request to `url`; `headers` are added as given.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Answer> {
        let client = &self.0;
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).with_context(|| format!("invalid URL `{url}`"))?;
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await {
            Err(_) => bail!("no answer from {url} within {REQUEST_TIMEOUT:?}"),
            Ok(Err(e)) => {
                let mut source: &dyn std::error::Error = &e;
                while let Some(next) = source.source() {
                    source = next;
                }
                bail!("cannot reach the server at {url}: {source} (is `wasmrpc serve` running? set --server)")
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let content_type =
            response.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let headers = response.headers().clone();
        let body =
            response.into_body().collect().await.context("the connection broke while reading the answer")?.to_bytes();
        Ok(Answer { status, content_type, headers, body })
    }
}

/// Why an admin request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminFailure {
    /// The server answered with an error status; `message` is its `{"error"}` text.
    #[error("the server answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
    /// The server could not be reached, or the request not made.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The admin API (`/procedures`) of one server, with its token if any.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    authorization: Option<String>,
}

impl AdminClient {
    /// A client of the server at `server` (a base URL); an empty token counts as none.
    pub fn new(server: &str, admin_token: Option<&str>) -> Self {
        AdminClient {
            base: server.trim_end_matches('/').to_owned(),
            authorization: admin_token.filter(|t| !t.is_empty()).map(|t| format!("Bearer {t}")),
        }
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with `body`; a non-2xx answer is [`AdminFailure::Refused`].
    pub async fn request(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Answer, AdminFailure> {
        let headers: Vec<(&str, &str)> = self.authorization.iter().map(|b| ("authorization", b.as_str())).collect();
        let answer = send(method, &format!("{}{path}", self.base), &headers, body).await?;
        if !answer.status.is_success() {
            let message = answer
                .json()
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| answer.text());
            return Err(AdminFailure::Refused { status: answer.status, message });
        }
        Ok(answer)
    }
}
