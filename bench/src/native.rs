//! The native baseline: a hyper server with wasmrpc's HTTP settings that
//! parses the same JSON-RPC request, runs the very same procedure code (the
//! `math` and `json` example crates, compiled natively, through the SDK's
//! own stubs) and answers the same bytes, with no Wasm in between. Its
//! requests/s and CPU per request are what a fresh sandbox per call is
//! measured against.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use wasmrpc::registry::CallError;
use wasmrpc::rpc::{self, RpcError};
use wasmrpc_guest::__private::{dispatch, Method as Procedure};

// The example procedures, their source unchanged, compiled natively.
#[path = "../../procedures/json/src/lib.rs"]
mod json;
#[path = "../../procedures/math/src/lib.rs"]
mod math;

/// wasmrpc's defaults, so both servers do the same HTTP work.
const MAX_BODY_BYTES: usize = 1 << 20;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub type Modules = HashMap<&'static str, Vec<Procedure>>;

/// The procedures the baseline serves, by module name.
pub fn modules() -> Modules {
    HashMap::from([("math", math::__wasmrpc_methods().to_vec()), ("json", json::__wasmrpc_methods().to_vec())])
}

/// Serves until the process is killed; prints `native listening on URL` first.
pub fn run(listen: &str) -> anyhow::Result<()> {
    silence_guest_logger();
    // The same runtime `wasmrpc serve` builds: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen).await?;
        println!("native listening on http://{}", listener.local_addr()?);
        let modules = Arc::new(modules());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let modules = modules.clone();
            let service = service_fn(move |req| {
                let modules = modules.clone();
                async move { Ok::<_, Infallible>(answer(&modules, req).await) }
            });
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(conn);
        }
    })
}

async fn answer(modules: &Modules, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST || req.uri().path() != "/rpc" {
        return response(StatusCode::NOT_FOUND, Bytes::from_static(b"{\"error\":\"POST /rpc only\"}"));
    }
    match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(body) => response(StatusCode::OK, Bytes::from(handle(modules, &body.to_bytes()))),
        Err(e) => response(StatusCode::BAD_REQUEST, Bytes::from(format!("{{\"error\":\"{e}\"}}"))),
    }
}

fn response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[derive(Deserialize)]
struct Envelope<'a> {
    jsonrpc: &'a str,
    method: &'a str,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    id: &'a RawValue,
}

/// One JSON-RPC request in, one response out (no batches or notifications:
/// the benchmark sends neither). The envelope is parsed here; the response
/// is built by wasmrpc's own `rpc::result_response` / `rpc::error_response`.
pub fn handle(modules: &Modules, body: &[u8]) -> Vec<u8> {
    let envelope = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) if envelope.jsonrpc == "2.0" => envelope,
        _ => return rpc::error_response(&RpcError::InvalidRequest { detail: None }, None),
    };
    let id = envelope.id;
    let (module, function) = envelope.method.split_once('.').unwrap_or((envelope.method, envelope.method));
    let Some(methods) = modules.get(module) else {
        let error = RpcError::Call { method: envelope.method.to_owned(), error: CallError::MethodNotFound };
        return rpc::error_response(&error, Some(id));
    };
    let params = envelope.params.map_or("null", RawValue::get);
    // The same response builders as wasmrpc's: the bytes must be the same.
    match dispatch(methods, function, params) {
        Ok(result) => rpc::result_response(&result, id),
        Err(e) => {
            let error = CallError::Guest { code: e.code, message: e.message, data: e.data.map(|d| d.to_string()) };
            rpc::error_response(&RpcError::Call { method: envelope.method.to_owned(), error }, Some(id))
        }
    }
}

/// The SDK installs a logger that forwards to the Wasm host on its first
/// call; natively that would print every `log` record of every crate (mio's
/// included). A silent logger installed first keeps it out.
pub fn silence_guest_logger() {
    if log::set_logger(&Silent).is_ok() {
        log::set_max_level(log::LevelFilter::Off);
    }
}

struct Silent;

impl log::Log for Silent {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        false
    }

    fn log(&self, _: &log::Record<'_>) {}

    fn flush(&self) {}
}
