//! A small HTTP/1 client for the command line (`deploy`, `call`, `list`,
//! `remove`) and the end-to-end tests: one request, whole body back.

use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long the command line waits for an answer (a deploy compiles).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
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

/// Sends one request to `url`; `headers` are added as given.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Answer> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
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
    let body =
        response.into_body().collect().await.context("the connection broke while reading the answer")?.to_bytes();
    Ok(Answer { status, content_type, body })
}
