//! Calls from a procedure to the procedures of another wasmrpc server, as
//! JSON-RPC over outgoing HTTP (`wasi:http`, through the `wstd` crate).
//!
//! The requests are the procedure's own outgoing HTTP: the server sends them
//! only to what the deploy granted (`?allow-outbound=http://b:8080`, or
//! `wasmrpc deploy NAME f.wasm --allow-outbound http://b:8080`), and they
//! count against the call's time limit and the server's outbound limits.
//! Needs the SDK's `remote` feature.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::Failure;
use crate::Error;

/// How much of a response that is not JSON-RPC an error's `data.body` keeps.
const BODY_EXCERPT: usize = 512;

/// A wasmrpc server to call: `Client::new("http://b:8080")`, then
/// `.call::<i64>("math.add", (2, 3))` as with the local [`call`](crate::call),
/// or the typed functions of a stub from
/// `wasmrpc stub --lang rust --guest --remote --server http://b:8080`.
///
/// A failed call returns the remote procedure's own error (its code,
/// message and data, so `?` passes it on unchanged), or, when no answer
/// came, a [`Error::REMOTE`] (-32012) error naming the URL whose
/// `data.error` is the `wasi:http` error code (`HTTP-request-denied` when
/// the deploy does not grant the server, `connection-refused` when nothing
/// listens there, `connection-timeout`, ...).
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: String,
    timeout: Option<Duration>,
}

impl Client {
    /// The server at base URL `url` (`http://b:8080`; its JSON-RPC endpoint
    /// `/rpc` may also be given).
    pub fn new(url: &str) -> Client {
        let url = url.trim_end_matches('/');
        let endpoint = if url.ends_with("/rpc") { url.to_owned() } else { format!("{url}/rpc") };
        Client { endpoint, timeout: None }
    }

    /// The URL requests go to (`http://b:8080/rpc`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The same client, giving up on a call that has no complete answer
    /// after `timeout` (a -32012 error with `data.error` `timeout`), so the
    /// procedure can still answer in its own time. Without one, the
    /// calling procedure's time limit bounds a call (-32001, the whole
    /// call ends) and the server's `--outbound-connect-timeout-ms` its
    /// connect (`connection-timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = Some(timeout);
        self
    }

    /// Calls `method` (`module.method`) on the server and reads its result
    /// as an `R`. `params` as for the local [`call`](crate::call): a struct
    /// or `json!({..})` by name, a tuple or `Vec` by position, `()` for
    /// none. A result that is not an `R` is a -32603 error naming `method`.
    pub fn call<R: DeserializeOwned>(&self, method: &str, params: impl Serialize) -> Result<R, Error> {
        let params = serde_json::to_value(&params).map_err(|e| {
            Error::new(Error::INTERNAL, format!("cannot serialise the params of {method}: {e}"))
                .with_data(json!({ "method": method }))
        })?;
        let result = self.send(method, params)?;
        R::deserialize(&result).map_err(|e| {
            Error::new(Error::INTERNAL, format!("cannot read the result of {method} from {}: {e}", self.endpoint))
                .with_data(json!({ "method": method, "url": self.endpoint, "result": result }))
        })
    }

    /// [`Client::call`] with `params` and the result as JSON text.
    pub fn call_json(&self, method: &str, params: &str) -> Result<String, Error> {
        let params: Value = serde_json::from_str(params).map_err(|e| {
            Error::new(Error::INVALID_PARAMS, format!("the params of {method} are not JSON: {e}"))
                .with_data(json!({ "method": method }))
        })?;
        self.send(method, params).map(|result| result.to_string())
    }

    /// One JSON-RPC request; its `result`, or its error.
    fn send(&self, method: &str, params: Value) -> Result<Value, Error> {
        let mut request = json!({ "jsonrpc": "2.0", "method": method, "id": 1 });
        // JSON-RPC params are an object or an array: `()` sends none.
        if !params.is_null() {
            request["params"] = params;
        }
        let (status, body) = self.post(method, request.to_string())?;
        answer(&self.endpoint, method, status, &body)
    }

    #[cfg(target_arch = "wasm32")]
    fn post(&self, method: &str, body: String) -> Result<(u16, Vec<u8>), Error> {
        use wstd::future::FutureExt as _;
        use wstd::http::{Body, Client as HttpClient, Request};

        let request = Request::post(&self.endpoint)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Body::from(body))
            .map_err(|e| self.failed(method, "HTTP-request-URI-invalid", &e.to_string()))?;
        let exchange = async {
            let mut response = HttpClient::new().send(request).await.map_err(|e| self.transport(method, &e))?;
            let status = response.status().as_u16();
            let body = response.body_mut().contents().await.map_err(|e| self.transport(method, &e))?;
            Ok((status, body.to_vec()))
        };
        wstd::runtime::block_on(async {
            match self.timeout {
                // Timed here, in the guest: dropping the request closes its
                // connection, whatever the server's wasi:http does with
                // request options.
                Some(timeout) => exchange.timeout(wstd::time::Duration::from(timeout)).await.unwrap_or_else(|_| {
                    Err(self.failed(method, "timeout", &format!("no answer within {} ms", timeout.as_millis())))
                }),
                None => exchange.await,
            }
        })
    }

    /// Outside a Wasm build (the SDK's own tests, native benchmarks) there
    /// is no `wasi:http` to send through.
    #[cfg(not(target_arch = "wasm32"))]
    fn post(&self, method: &str, _body: String) -> Result<(u16, Vec<u8>), Error> {
        Err(self.failed(method, "other", "remote calls need wasi:http: build the procedure for wasm32-wasip2"))
    }

    /// A `wasi:http` failure as a -32012 error.
    #[cfg(target_arch = "wasm32")]
    fn transport(&self, method: &str, e: &wstd::http::Error) -> Error {
        let failure = Failure::of(&self.endpoint, e);
        self.failed(method, failure.code, &failure.detail)
    }

    /// The -32012 error of a call to `method` that got no answer because
    /// of `wasi:http` error `code`.
    fn failed(&self, method: &str, code: &'static str, detail: &str) -> Error {
        let url = &self.endpoint;
        let failure = Failure { url: url.clone(), code, detail: detail.to_owned() };
        Error::new(Error::REMOTE, format!("remote call {method} to {url} failed: {}", failure.reason())).with_data(
            json!({
                "url": url,
                "method": method,
                "error": code,
                "detail": detail,
            }),
        )
    }
}

/// The result or error of the JSON-RPC answer `body` (HTTP `status`) of
/// `endpoint` to a call of `method`.
fn answer(endpoint: &str, method: &str, status: u16, body: &[u8]) -> Result<Value, Error> {
    let response: Option<Value> = serde_json::from_slice(body).ok();
    match response {
        Some(Value::Object(mut response)) if response.contains_key("error") => {
            let error = response.remove("error").unwrap_or_default();
            let code = error["code"].as_i64().and_then(|c| i32::try_from(c).ok());
            let message = error["message"].as_str();
            match (code, message) {
                (Some(code), Some(message)) => {
                    Err(Error { code, message: message.to_owned(), data: error.get("data").cloned() })
                }
                _ => Err(not_json_rpc(endpoint, method, status, body)),
            }
        }
        Some(Value::Object(mut response)) if response.contains_key("result") => {
            Ok(response.remove("result").unwrap_or_default())
        }
        _ => Err(not_json_rpc(endpoint, method, status, body)),
    }
}

/// An answer that is no JSON-RPC response (a proxy's error page, another
/// kind of server) as a -32012 error with its status and the start of it.
fn not_json_rpc(endpoint: &str, method: &str, status: u16, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
    Error::new(
        Error::REMOTE,
        format!("remote call {method} to {endpoint} failed: HTTP {status} without a JSON-RPC answer (is it a wasmrpc server?)"),
    )
    .with_data(json!({ "url": endpoint, "method": method, "error": "not-JSON-RPC", "status": status, "body": excerpt }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_servers_rpc() {
        assert_eq!(Client::new("http://127.0.0.1:8080").endpoint(), "http://127.0.0.1:8080/rpc");
        assert_eq!(Client::new("http://127.0.0.1:8080/").endpoint(), "http://127.0.0.1:8080/rpc");
        assert_eq!(Client::new("http://b:1/rpc").endpoint(), "http://b:1/rpc");
    }

    #[test]
    fn answers_become_results_or_the_remote_error() {
        let ok = answer("u", "math.add", 200, br#"{"jsonrpc":"2.0","result":5,"id":1}"#);
        assert_eq!(ok, Ok(json!(5)));
        let body = br#"{"jsonrpc":"2.0","error":{"code":1,"message":"division by zero","data":{"a":1.0}},"id":1}"#;
        let err = answer("u", "math.divide", 200, body).unwrap_err();
        assert_eq!(err, Error::new(1, "division by zero").with_data(json!({"a": 1.0})));
        let err = answer("http://b:1/rpc", "math.add", 502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(err.code, Error::REMOTE);
        assert!(err.message.contains("HTTP 502 without a JSON-RPC answer"), "{err}");
        assert_eq!(err.data.unwrap()["body"], "<html>bad gateway</html>");
    }

    #[test]
    fn transport_failures_name_the_url_and_the_fix() {
        let client = Client::new("http://127.0.0.1:9");
        let denied = client.failed("math.add", "HTTP-request-denied", "");
        assert_eq!(denied.code, -32012);
        assert!(denied.message.starts_with("remote call math.add to http://127.0.0.1:9/rpc failed: refused"));
        assert!(denied.message.contains("--allow-outbound http://127.0.0.1:9`"), "{denied}");
        assert_eq!(denied.data.unwrap()["error"], "HTTP-request-denied");
        let down = client.failed("math.add", "connection-refused", "");
        assert!(down.message.contains("connection refused: is the server at http://127.0.0.1:9 running?"));
        // Natively there is no wasi:http: a clear error, not a panic.
        let native = client.call::<i64>("math.add", (1, 2)).unwrap_err();
        assert_eq!(native.code, Error::REMOTE, "{native}");
    }
}
