//! The HTTP side: accepting connections, routing each request, and shutting
//! down gracefully. A JSON-RPC request goes `route` -> [`rpc::handle`] ->
//! [`Registry::call`]; admin requests go to [`admin`], the web page to
//! [`dashboard`]. Nothing here knows about wasmtime.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::admin;
use crate::body::{self, BodyError};
use crate::config::{Config, SHUTDOWN_GRACE, STARTUP_WAIT};
use crate::dashboard;
use crate::http_error::{json_response, HttpError, HttpResponse};
use crate::registry::Registry;
use crate::rpc::{self, RpcError};

/// What every request handler shares.
pub struct App {
    pub registry: Arc<Registry>,
    pub config: Config,
    /// The JSON-RPC side, shared by `POST /rpc` and WebSocket connections.
    pub rpc: Arc<rpc::Endpoint>,
}

/// Every route of the server; adding one means a variant here and an arm in [`route`].
enum Route<'a> {
    Rpc,
    Procedures,
    Procedure(&'a str),
    /// `/procedures/{name}/versions`.
    Versions(&'a str),
    /// `/procedures/{name}/kv` and `/procedures/{name}/kv/{bucket}/{key}`.
    Kv(&'a str, Option<&'a str>),
    /// `/procedures/{name}/config`.
    Config(&'a str),
    /// `/procedures/{name}/versions/{n}/activate`; `n` as sent.
    Activate(&'a str, &'a str),
    Health,
    Metrics,
    /// `/` and `/dashboard/*`: the web page and its files.
    Dashboard(&'a str),
    /// `/keys` (`None`) and `/keys/{name}`: caller keys.
    Keys(Option<&'a str>),
    NotFound,
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Self {
        match path {
            "/rpc" => Route::Rpc,
            "/procedures" | "/procedures/" => Route::Procedures,
            "/healthz" => Route::Health,
            "/metrics" => Route::Metrics,
            "/keys" | "/keys/" => Route::Keys(None),
            _ if path.starts_with("/keys/") => Route::Keys(path.strip_prefix("/keys/")),
            _ if dashboard::owns(path) => Route::Dashboard(path),
            _ => match path.strip_prefix("/procedures/") {
                Some(rest) => match admin::kv::handles(rest) {
                    Some((name, kv_path)) => Route::Kv(name, kv_path),
                    None if admin::config::handles(rest).is_some() => {
                        Route::Config(admin::config::handles(rest).unwrap_or_default())
                    }
                    None => match rest.split('/').collect::<Vec<_>>()[..] {
                        [name, "versions"] => Route::Versions(name),
                        [name, "versions", n, "activate"] => Route::Activate(name, n),
                        // Anything else is a name, which the handler checks, so
                        // `a/../b` is refused as a bad name, not as a missing route.
                        _ => Route::Procedure(rest),
                    },
                },
                None => Route::NotFound,
            },
        }
    }
}

/// Serves `listener` until `shutdown` resolves; then stops accepting and
/// lets requests in flight finish (for at most [`SHUTDOWN_GRACE`]).
/// Meanwhile the registry loads (the data dir, or the shared registry,
/// retried while it cannot be reached): until it has, `/healthz` answers
/// 503 and other requests wait for it (at most [`STARTUP_WAIT`]). A failure
/// to load that retrying cannot fix ends the server with that error.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let startup = Arc::new(Startup::new(config));
    let loader = tokio::spawn(load(startup.clone()));
    let abort = loader.abort_handle();
    let mut failure = None;
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            failed = loader => failure = Some(failed.unwrap_or_else(|e| anyhow::anyhow!("starting failed: {e}"))),
        }
    };
    serve(listener, startup.clone(), stop).await;
    abort.abort();
    if let Some(app) = startup.app.get() {
        app.rpc.tracing.shutdown().await;
    }
    failure.map_or(Ok(()), Err)
}

/// The server while it starts and once it is ready.
struct Startup {
    config: Config,
    /// Set once, when the registry has loaded.
    app: OnceLock<Arc<App>>,
    ready: watch::Sender<bool>,
    /// Why the server is not ready yet, for `/healthz`.
    detail: Mutex<String>,
}

impl Startup {
    fn new(config: Config) -> Self {
        Startup {
            config,
            app: OnceLock::new(),
            ready: watch::Sender::new(false),
            detail: Mutex::new("loading the registry".into()),
        }
    }

    fn not_ready(&self, why: String) {
        *self.detail.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// The app once ready. Before, `/healthz` is answered 503 at once and
    /// other requests wait for readiness, at most [`STARTUP_WAIT`].
    async fn app(&self, path: &str) -> Result<Arc<App>, HttpResponse> {
        if let Some(app) = self.app.get() {
            return Ok(app.clone());
        }
        let detail = || self.detail.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if path != "/healthz" {
            let mut ready = self.ready.subscribe();
            if let Ok(Ok(_)) = tokio::time::timeout(STARTUP_WAIT, ready.wait_for(|ready| *ready)).await {
                if let Some(app) = self.app.get() {
                    return Ok(app.clone());
                }
            }
            let why = format!("the server is still starting ({}); retry later", detail());
            return Err(HttpError::Unavailable(why).response());
        }
        let body = serde_json::json!({"status": "starting", "detail": detail()}).to_string();
        Err(json_response(StatusCode::SERVICE_UNAVAILABLE, Bytes::from(body)))
    }
}

/// Loads the registry and makes the server ready; returns only if that
/// failed for good.
async fn load(startup: Arc<Startup>) -> anyhow::Error {
    match open(&startup).await {
        Ok(app) => {
            let _ = startup.app.set(app);
            startup.ready.send_replace(true);
            std::future::pending().await
        }
        Err(e) => e,
    }
}

/// Opens the registry `startup.config` names and starts what runs beside
/// the server (following a shared registry, `--watch`).
async fn open(startup: &Startup) -> anyhow::Result<Arc<App>> {
    let config = startup.config.clone();
    let registry = match &config.registry {
        None => {
            let config = config.clone();
            Arc::new(tokio::task::spawn_blocking(move || Registry::open(&config)).await??)
        }
        Some(target) => {
            tracing::info!(registry = %target, "using the shared registry");
            crate::replica::open(&config, target, |why| startup.not_ready(why)).await?
        }
    };
    tracing::info!(procedures = registry.len(), data_dir = %config.data_dir.display(), "ready");
    let mut rpc = rpc::Endpoint::new(registry.clone(), &config);
    rpc.tracing = crate::trace::Tracing::start(config.otlp_endpoint.as_deref())?;
    let rpc = Arc::new(rpc);
    let app = Arc::new(App { registry, config, rpc });
    if let Some(dir) = app.config.watch_dir.clone() {
        crate::watch::spawn(app.registry.clone(), dir)?;
    }
    Ok(app)
}

/// What a connection holds while it is open, as HTTP or upgraded to a
/// WebSocket ([`crate::ws`]): its slot under `--max-connections`, and the
/// signal that the server is shutting down.
pub struct Connection {
    startup: Arc<Startup>,
    /// Turns true when the server starts shutting down.
    pub closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

async fn serve(listener: TcpListener, startup: Arc<Startup>, shutdown: impl Future<Output = ()>) {
    // Past the cap the loop stops accepting: new connections wait in the
    // kernel's backlog until a served one closes (and gives its slot back).
    let max_connections = startup.config.max_connections;
    let connections = Arc::new(Semaphore::new(max_connections));
    let closing = watch::Sender::new(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(startup.config.header_read_timeout).keep_alive(true);
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
        let connection = Arc::new(Connection { startup: startup.clone(), closing: closing.subscribe(), _slot: permit });
        let mut stop = closing.subscribe();
        let service = service_fn(move |req| {
            let connection = connection.clone();
            async move { Ok::<_, Infallible>(handle(&connection, peer, req).await) }
        });
        // An upgraded connection (a WebSocket) leaves hyper here; its task
        // holds the `Connection` (and its slot) until it closes.
        let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = async { drop(stop.wait_for(|closing| *closing).await) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    // HTTP connections finish their requests; WebSocket connections their
    // calls, then close with 1001. Each gives its slot back once closed.
    closing.send_replace(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(all)).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway");
    }
}

/// Answers one request. An error may be answered before the body is read (a
/// bad name, a missing token, too large): hyper then closes the connection,
/// so the answer says so, and the client does not send its next request into
/// a closing socket.
async fn handle(connection: &Arc<Connection>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req.headers().get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0");
    let mut response = match connection.startup.app(req.uri().path()).await {
        Ok(app) => route(&app, connection, peer, req).await,
        Err(not_ready) => not_ready,
    };
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Sends a request to its handler by path and method.
async fn route(app: &Arc<App>, connection: &Arc<Connection>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let result = match (Route::parse(&path), &method) {
        (Route::Rpc, &Method::POST) => return rpc_request(app, peer, req).await,
        (Route::Rpc, &Method::GET) if crate::ws::is_upgrade(req.headers()) => {
            return crate::ws::upgrade(app, connection, peer, req).await
        }
        (Route::Rpc, &Method::OPTIONS) => crate::cors::preflight(&app.config.cors_origins, req.headers()),
        (Route::Health, &Method::GET) => Ok(json_response(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))),
        (Route::Metrics, &Method::GET) => Ok(metrics(app)),
        (Route::Procedures, &Method::GET) => Ok(admin::list(&app.registry)),
        (Route::Procedure(name), &Method::GET) => admin::get(&app.registry, name),
        (Route::Procedure(name), &Method::PUT) => admin::deploy(&app.registry, &app.config, peer, name, req).await,
        (Route::Procedure(name), &Method::DELETE) => admin::remove(&app.registry, &app.config, peer, name, &req).await,
        (Route::Versions(name), &Method::GET) => admin::versions(&app.registry, name).await,
        (Route::Activate(name, n), &Method::POST) => {
            admin::activate(&app.registry, &app.config, peer, name, n, &req).await
        }
        (Route::Kv(name, kv_path), _) => admin::kv::serve(&app.registry, &app.config, peer, name, kv_path, req).await,
        (Route::Config(name), _) => admin::config::serve(&app.registry, &app.config, peer, name, req).await,
        (Route::Keys(name), _) => admin::keys::serve(&app.registry, &app.config, peer, name, req).await,
        (Route::NotFound, _) => Err(no_route(&path)),
        (Route::Dashboard(_), _) if !app.config.dashboard => Err(no_route(&path)),
        (Route::Dashboard(file), &Method::GET) => dashboard::serve(file, req.headers()),
        (route, _) => {
            let allow = match route {
                Route::Rpc | Route::Activate(..) => "POST",
                Route::Procedure(_) => "GET, PUT, DELETE",
                _ => "GET",
            };
            Err(HttpError::MethodNotAllowed {
                message: format!("{method} is not allowed on {path}; use {allow}"),
                allow,
            })
        }
    };
    result.unwrap_or_else(|e| e.response())
}

fn no_route(path: &str) -> HttpError {
    HttpError::NotFound(format!("no route for {path}: see GET /procedures, POST /rpc, GET /healthz, GET /metrics"))
}

async fn rpc_request(app: &Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let allow_origin = match crate::cors::check(&app.config.cors_origins, req.headers()) {
        Ok(origin) => origin,
        Err(why) => {
            return invalid_request(StatusCode::FORBIDDEN, why);
        }
    };
    let mut response = rpc_answer(app, peer, req).await;
    if let Some(origin) = allow_origin {
        crate::cors::allow(&mut response, origin);
    }
    response
}

/// A `/rpc` request refused as a whole with `status`: the JSON-RPC
/// -32600 "Invalid Request" whose `data` says why (never the admin API's
/// `{"error"}` shape on `/rpc`).
pub(crate) fn invalid_request(status: StatusCode, detail: String) -> HttpResponse {
    let body = rpc::error_response(&RpcError::InvalidRequest { detail: Some(detail) }, None);
    json_response(status, Bytes::from(body))
}

/// Reads a `POST /rpc` body and answers it.
async fn rpc_answer(app: &Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let caller = match caller_for(app, peer, req.headers()) {
        Ok(caller) => caller,
        Err(refused) => return refused.response(),
    };
    let limit = app.config.max_body_bytes;
    let body = match body::read(req, limit, app.config.body_read_timeout).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            let detail = format!("the request body is larger than the limit of {} KiB (--max-body-kib)", limit >> 10);
            return invalid_request(StatusCode::PAYLOAD_TOO_LARGE, detail);
        }
        Err(BodyError::Timeout) => {
            let detail = format!(
                "the request body did not arrive within {} ms (--body-timeout-ms)",
                app.config.body_read_timeout.as_millis()
            );
            return invalid_request(StatusCode::REQUEST_TIMEOUT, detail);
        }
        // Still a JSON-RPC answer, never the admin API's `{"error"}` shape.
        Err(BodyError::Broken(e)) => {
            let detail = format!("cannot read the request body: {e}");
            return invalid_request(StatusCode::BAD_REQUEST, detail);
        }
    };
    let (answer, refused) = rpc::answer(&app.rpc, &caller, &body).await;
    let status = match (&answer, refused) {
        // No call could run (a rate limit): the whole request is refused.
        (_, Some(_)) => StatusCode::TOO_MANY_REQUESTS,
        (Some(_), None) => StatusCode::OK,
        (None, None) => StatusCode::NO_CONTENT,
    };
    let mut response = json_response(status, answer.map_or_else(Bytes::new, Bytes::from));
    if let Some(wait) = refused {
        response.headers_mut().insert(hyper::header::RETRY_AFTER, crate::keys::retry_after_header(wait));
    }
    response
}

/// Who is calling, from a `/rpc` request's headers (its key, its
/// `traceparent`): the one place both transports make their
/// [`rpc::Caller`], `POST /rpc` for its request and the WebSocket upgrade
/// for every message of the connection. A refusal (a missing or unknown
/// key) is answered before any body is read or the upgrade is made.
pub fn caller_for(
    app: &App,
    peer: SocketAddr,
    headers: &hyper::HeaderMap,
) -> Result<rpc::Caller, crate::keys::Unauthorized> {
    let key = crate::keys::caller_key(app, headers)?;
    let trace = crate::trace::from_headers(headers);
    Ok(rpc::Caller { addr: Some(peer.ip()), trace, key, session: None })
}

fn metrics(app: &App) -> HttpResponse {
    let stats = app.registry.stats();
    let mut text = crate::metrics::render(
        stats.iter().map(|(name, s)| (name.as_str(), &**s)),
        app.registry.len(),
        app.registry.nested_calls(),
    );
    let kv = app.registry.kv();
    crate::metrics::render_kv(&mut text, &kv.all_stats(), kv.commits());
    crate::metrics::render_public(&mut text);
    let (loaded, bytes, loads) = app.registry.loaded_code();
    let idle = app.registry.idle_instances();
    text.push_str(&format!(
        "# HELP wasmrpc_loaded_components Distinct compiled components loaded: identical code is loaded once, shared by every procedure and version that serves it.\n# TYPE wasmrpc_loaded_components gauge\nwasmrpc_loaded_components {loaded}\n\
         # HELP wasmrpc_loaded_code_bytes Bytes of the loaded components' code (at most --max-loaded-mib, unless one component alone is larger).\n# TYPE wasmrpc_loaded_code_bytes gauge\nwasmrpc_loaded_code_bytes {bytes}\n\
         # HELP wasmrpc_code_loads_total Loads of a procedure's code at a call: its first call since start or deploy elsewhere, or after it was unloaded past --max-loaded-mib.\n# TYPE wasmrpc_code_loads_total counter\nwasmrpc_code_loads_total {loads}\n\
         # HELP wasmrpc_idle_instances Instances kept between calls for procedures deployed with ?reuse=N (at most --max-idle-instances).\n# TYPE wasmrpc_idle_instances gauge\nwasmrpc_idle_instances {idle}\n"
    ));
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use hyper::Method;

    use super::*;
    use wasmrpc_client::http::send;

    /// Every route and its errors, through `run` on a real loopback socket
    /// but in this process: no binary, no procedures.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routes_answer_by_path_and_method() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut config = Config::new(dir.path().join("data"));
        config.max_concurrent_calls = 2;
        let server = tokio::spawn(run(listener, config, async {
            let _ = stopped.await;
        }));
        let ask = |method: Method, path: &str, body: &'static str| {
            let url = format!("{base}{path}");
            async move { send(method, &url, &[], body).await.unwrap() }
        };
        // The server is healthy once the registry is open.
        let mut health = None;
        for _ in 0..200 {
            if let Ok(answer) = send(Method::GET, &format!("{base}/healthz"), &[], "").await {
                if answer.status == StatusCode::OK {
                    health = Some(answer);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let health = health.expect("the server never answered /healthz");
        assert_eq!((health.status, health.text()), (StatusCode::OK, r#"{"status":"ok"}"#.to_owned()));

        let answer = ask(Method::GET, "/procedures", "").await;
        assert_eq!((answer.status, answer.text()), (StatusCode::OK, "[]".to_owned()));
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));

        let answer = ask(Method::GET, "/procedures/math", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(answer.json().unwrap()["error"], "no procedure named `math` is deployed");

        let answer = ask(Method::PUT, "/procedures/Bad.Name", "x").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.json().unwrap()["error"].as_str().unwrap().starts_with("invalid procedure name"));

        let answer = ask(Method::PUT, "/procedures/ok", "not wasm").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.json().unwrap()["error"].as_str().unwrap().contains("not a WebAssembly file"));

        let answer = ask(Method::DELETE, "/procedures/math", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);

        let answer = ask(Method::POST, "/healthz", "").await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.headers["allow"], "GET");
        let answer = ask(Method::GET, "/rpc", "").await;
        assert_eq!(answer.headers["allow"], "POST");
        let answer = ask(Method::POST, "/procedures/math", "").await;
        assert_eq!(answer.headers["allow"], "GET, PUT, DELETE");
        let answer = ask(Method::GET, "/procedures/math/versions", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert!(answer.text().contains("was ever deployed"), "{}", answer.text());
        let answer = ask(Method::POST, "/procedures/math/versions/1/activate", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        let answer = ask(Method::PUT, "/procedures/math/versions", "").await;
        assert_eq!(answer.headers["allow"], "GET");
        let answer = ask(Method::GET, "/procedures/math/versions/1/activate", "").await;
        assert_eq!(answer.headers["allow"], "POST");
        let answer = ask(Method::PUT, "/procedures/a/../b", "x").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);

        // The dashboard: the page, its files, and nothing else under /dashboard/.
        let answer = ask(Method::GET, "/", "").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_type.as_deref(), Some("text/html; charset=utf-8"));
        assert_eq!(answer.headers["content-security-policy"], dashboard::CSP);
        assert!(answer.text().contains("<title>wasmrpc</title>"), "{}", answer.text());
        let answer = ask(Method::GET, "/dashboard/app.js", "").await;
        assert_eq!(answer.content_type.as_deref(), Some("text/javascript; charset=utf-8"));
        let answer = ask(Method::GET, "/dashboard/../procedures", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        let answer = ask(Method::POST, "/", "").await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.headers["allow"], "GET");

        let answer = ask(Method::GET, "/nowhere", "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert!(answer.json().unwrap()["error"].as_str().unwrap().starts_with("no route for /nowhere"));

        let answer = ask(Method::POST, "/rpc", "{").await;
        assert_eq!(answer.text(), r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#);
        let answer = ask(Method::POST, "/rpc", r#"{"jsonrpc":"2.0","method":"rpc.discover","id":1}"#).await;
        assert_eq!(answer.json().unwrap()["result"]["methods"], serde_json::json!([]));
        let answer = ask(Method::POST, "/rpc", r#"{"jsonrpc":"2.0","method":"math.add"}"#).await;
        assert_eq!((answer.status, answer.body.len()), (StatusCode::NO_CONTENT, 0));

        let answer = ask(Method::GET, "/metrics", "").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.content_type.unwrap().starts_with("text/plain"));

        stop.send(()).unwrap();
        tokio::time::timeout(SHUTDOWN_GRACE, server).await.expect("the server did not stop").unwrap().unwrap();
    }
}
