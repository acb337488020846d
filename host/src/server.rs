//! The HTTP side: accepting connections, routing each request, reading bodies
//! within their limits, and shutting down gracefully. A JSON-RPC request goes
//! `route` -> `rpc::handle` -> `runtime::Runtime::call`; admin requests go to
//! `admin`. Nothing here knows about wasmtime.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::admin::{self, AdminError};
use crate::config::{Config, SHUTDOWN_GRACE};
use crate::registry::Registry;
use crate::rpc::{self, RpcError};

/// What every request handler shares.
pub struct App {
    pub registry: Arc<Registry>,
    pub config: Config,
}

/// Every route of the server; adding one means a variant here and an arm in [`route`].
enum Route<'a> {
    Rpc,
    Procedures,
    Procedure(&'a str),
    Health,
    Metrics,
    NotFound,
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Self {
        match path {
            "/rpc" => Route::Rpc,
            "/procedures" | "/procedures/" => Route::Procedures,
            "/healthz" => Route::Health,
            "/metrics" => Route::Metrics,
            _ => match path.strip_prefix("/procedures/") {
                Some(name) => Route::Procedure(name),
                None => Route::NotFound,
            },
        }
    }
}

/// Opens the data dir, loads every stored procedure, and serves `listener`
/// until `shutdown` resolves; then stops accepting and lets requests in
/// flight finish (for at most [`SHUTDOWN_GRACE`]).
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let registry = {
        let config = config.clone();
        Arc::new(tokio::task::spawn_blocking(move || Registry::open(&config)).await??)
    };
    tracing::info!(
        procedures = registry.snapshot().len(),
        data_dir = %config.data_dir.display(),
        "ready"
    );
    let app = Arc::new(App { registry, config });
    if let Some(dir) = app.config.watch_dir.clone() {
        crate::watch::spawn(app.registry.clone(), dir)?;
    }
    serve(listener, app, shutdown).await;
    Ok(())
}

async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    // Past the cap the loop stops accepting: new connections wait in the
    // kernel's backlog until a served one closes.
    let connections = Arc::new(Semaphore::new(app.config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(app.config.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(route(&app, peer, req).await) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
}

type HttpResponse = Response<Full<Bytes>>;

async fn route(app: &Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req.headers().get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    let mut response = answer(app, peer, req).await;
    // An error may be answered before the body is read (a bad name, a
    // missing token, too large): hyper then closes the connection, so say
    // so, and the client does not send its next request into a closing socket.
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn answer(app: &Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let result = match (Route::parse(&path), &method) {
        (Route::Rpc, &Method::POST) => return rpc_request(app, req).await,
        (Route::Health, &Method::GET) => Ok(json_response(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))),
        (Route::Metrics, &Method::GET) => Ok(metrics(app)),
        (Route::Procedures, &Method::GET) => Ok(json_tuple(admin::list(&app.registry))),
        (Route::Procedure(name), &Method::GET) => admin::get(&app.registry, name).map(json_tuple),
        (Route::Procedure(name), &Method::PUT) => deploy(app, peer, name, req).await.map(json_tuple),
        (Route::Procedure(name), &Method::DELETE) => match authorize(app, peer, &req) {
            Ok(()) => admin::remove(&app.registry, name).await.map(json_tuple),
            Err(e) => Err(e),
        },
        (Route::NotFound, _) => Err(AdminError::NotFound(format!(
            "no route for {path}: see GET /procedures, POST /rpc, GET /healthz, GET /metrics"
        ))),
        (route, _) => {
            let allow = match route {
                Route::Rpc => "POST",
                Route::Procedure(_) => "GET, PUT, DELETE",
                _ => "GET",
            };
            let err = AdminError::MethodNotAllowed(format!("{method} is not allowed on {path}; use {allow}"));
            let mut response = error_response(&err);
            response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
            return response;
        }
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn json_tuple((status, body): (StatusCode, Bytes)) -> HttpResponse {
    json_response(status, body)
}

fn authorize(app: &App, peer: SocketAddr, req: &Request<Incoming>) -> Result<(), AdminError> {
    let header = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    admin::authorize(app.config.admin_token.as_deref(), header, peer)
}

async fn deploy(
    app: &Arc<App>,
    peer: SocketAddr,
    name: &str,
    req: Request<Incoming>,
) -> Result<(StatusCode, Bytes), AdminError> {
    authorize(app, peer, &req)?;
    crate::registry::check_name(name).map_err(AdminError::from)?;
    let limit = app.config.max_module_bytes;
    let too_large = || {
        AdminError::TooLarge(format!("the module is larger than the limit of {} MiB (--max-module-mib)", limit >> 20))
    };
    let body = read_body(req, limit, app.config.body_read_timeout).await.map_err(|e| match e {
        BodyError::TooLarge => too_large(),
        BodyError::Timeout => AdminError::Timeout(format!(
            "the upload did not arrive within {} ms (--body-timeout-ms)",
            app.config.body_read_timeout.as_millis()
        )),
        BodyError::Broken(e) => AdminError::BadRequest(format!("cannot read the upload: {e}")),
    })?;
    if body.is_empty() {
        return Err(AdminError::BadRequest(
            "the request body is empty: send the .wasm bytes, e.g. `curl -X PUT --data-binary @f.wasm`".into(),
        ));
    }
    admin::deploy(&app.registry, name, body).await
}

async fn rpc_request(app: &Arc<App>, req: Request<Incoming>) -> HttpResponse {
    let limit = app.config.max_body_bytes;
    let body = match read_body(req, limit, app.config.body_read_timeout).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            let detail = format!("the request body is larger than the limit of {} KiB (--max-body-kib)", limit >> 10);
            let body = rpc::error_response(&RpcError::InvalidRequest { detail: Some(detail) }, None);
            return json_response(StatusCode::PAYLOAD_TOO_LARGE, Bytes::from(body));
        }
        Err(BodyError::Timeout) => {
            let detail = format!(
                "the request body did not arrive within {} ms (--body-timeout-ms)",
                app.config.body_read_timeout.as_millis()
            );
            let body = rpc::error_response(&RpcError::InvalidRequest { detail: Some(detail) }, None);
            return json_response(StatusCode::REQUEST_TIMEOUT, Bytes::from(body));
        }
        Err(BodyError::Broken(e)) => {
            return error_response(&AdminError::BadRequest(format!("cannot read the request body: {e}")))
        }
    };
    match rpc::handle(&app.registry, app.config.max_batch, &body).await {
        Some(answer) => json_response(StatusCode::OK, Bytes::from(answer)),
        None => Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).unwrap_or_default(),
    }
}

fn metrics(app: &App) -> HttpResponse {
    let stats = app.registry.stats();
    let text =
        crate::metrics::render(stats.iter().map(|(name, s)| (name.as_str(), &**s)), app.registry.snapshot().len());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

enum BodyError {
    TooLarge,
    Timeout,
    Broken(String),
}

/// Reads a whole body of at most `limit` bytes within `timeout`.
async fn read_body(req: Request<Incoming>, limit: u64, timeout: Duration) -> Result<Bytes, BodyError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > limit) {
        if declared - limit <= DRAIN_BYTES {
            drain(req.into_body()).await;
        }
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

/// How far past the limit a refused body is still read (and dropped) before
/// the error is sent: closing a socket with unread data resets it, and the
/// client, still sending, would see a broken pipe instead of the answer.
const DRAIN_BYTES: u64 = 8 << 20;
/// How long that reading may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);

async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, async { while let Some(Ok(_)) = body.frame().await {} }).await;
}

fn json_response(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

fn error_response(err: &AdminError) -> HttpResponse {
    let mut response = json_response(err.status(), err.body());
    if matches!(err, AdminError::Overloaded(_)) {
        // Call slots free up within a call's time limit: a retry soon may succeed.
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
