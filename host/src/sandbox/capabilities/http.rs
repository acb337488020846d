//! `wasi:http` (`outgoing-handler` and `types`, any 0.2.x): a procedure's
//! outgoing HTTP requests, to the hosts its version was granted at deploy
//! (`allow-outbound`, rules in [`crate::outbound`]). The types and the
//! linking are `wasmtime-wasi-http`'s; every request goes through this
//! server's send hook ([`Hooks::send_request`]), which:
//!
//! 1. counts it against `--max-outbound-requests` and finds the grant
//!    entry for its scheme, host and port (none: `HTTP-request-denied`);
//! 2. resolves the host once, keeps the addresses the entry may reach
//!    (a loopback, private, link-local or metadata address only if the
//!    entry names it literally: else `destination-IP-prohibited`) and
//!    connects to one of exactly those addresses, so DNS cannot change the
//!    answer between the check and the connection;
//! 3. sends the request (HTTP/1.1, TLS for https; redirects are not
//!    followed: the guest gets the 3xx) and reads the response body whole,
//!    within the call's `--max-outbound-response-mib` (else
//!    `HTTP-response-body-size`);
//! 4. does all that with the call's slot lent to other calls
//!    (`sandbox/slots.rs`), and within the call's deadline;
//! 5. reads the guest's request body to its end even when the request no
//!    longer needs it (refused, or answered early: [`Drained`]), so the
//!    guest sees the answer, not a closed body stream;
//! 6. when the call is traced, sets `traceparent` to the call's span (the
//!    host's wins over one the guest set) and `tracestate` to the
//!    request's ([`crate::trace::inject`]), so a server it calls continues
//!    the trace.
//!
//! A refusal or a failure is a `wasi:http` error code for the guest,
//! never a trap, with a log line that names the host and the grant or flag
//! that would allow it. A component that imports nothing of `wasi:http`
//! pays nothing per call: the state here is made at its first use.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::Capability;
use crate::metrics::ProcStats;
use crate::outbound::{check_address, Entry, Grant, Host, Limits, RequestHost, Scheme};
use crate::sandbox::call::Dispatcher;
use crate::sandbox::state::CallState;

pub(in crate::sandbox) const CAPABILITY: Capability = Capability {
    described: "`wasi:http` (outgoing-handler and types, 0.2.x; hosts granted at deploy)",
    serves,
    link: |linker| wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker),
};

fn serves(name: &str) -> bool {
    let Some((iface, version)) = name.strip_prefix("wasi:http/").and_then(|r| r.split_once('@')) else {
        return false;
    };
    matches!(iface, "outgoing-handler" | "types") && version.starts_with("0.2.")
}

/// Whether a component importing `name` uses outgoing HTTP: only those
/// get a version's grant at each call.
pub(in crate::sandbox) fn imports_http(name: &str) -> bool {
    name.starts_with("wasi:http/")
}

/// What a version's calls need to send requests: its grant, the server's
/// limits and its procedure's counters. Shared by the version's calls, and
/// given to a call only if its component imports `wasi:http`.
pub struct Outbound {
    pub grant: Grant,
    pub limits: Limits,
    pub stats: Arc<ProcStats>,
}

/// A call's `wasi:http` state, made at its first use.
pub(in crate::sandbox) struct HttpCall {
    ctx: WasiHttpCtx,
    hooks: Hooks,
}

/// The send hook's view of its call.
struct Hooks {
    /// `None`: the component imports `wasi:http` but its version is not
    /// known to it (`describe` at deploy): every request is refused.
    outbound: Option<Arc<Outbound>>,
    dispatcher: Option<Arc<dyn Dispatcher>>,
    procedure: Arc<str>,
    request_id: u64,
    deadline: Instant,
    /// Requests sent so far by this call.
    sent: u32,
    /// Response body bytes received so far by this call's requests.
    received: Arc<AtomicU64>,
    /// The call's span, named as the parent of its requests.
    trace: Option<crate::trace::Span>,
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let CallState { http, table, outbound, tree, procedure, request_id, .. } = self;
        let call = http.get_or_insert_with(|| {
            Box::new(HttpCall {
                ctx: WasiHttpCtx::new(),
                hooks: Hooks {
                    outbound: outbound.clone(),
                    dispatcher: tree.dispatcher.clone(),
                    procedure: procedure.clone(),
                    request_id: *request_id,
                    deadline: tree.deadline,
                    sent: 0,
                    received: Arc::new(AtomicU64::new(0)),
                    trace: tree.trace.clone(),
                },
            })
        });
        WasiHttpCtxView { ctx: &mut call.ctx, table, hooks: &mut call.hooks }
    }
}

/// The result the send hook gives back (`WasiHttpHooks::send_request`).
type Sent = Result<(http::Response<WasiBody>, Box<dyn std::future::Future<Output = Result<(), Error>> + Send>), Error>;

/// One admitted request: where it goes, by which entry.
struct Admitted {
    entry: Entry,
    host: RequestHost,
    port: u16,
    scheme: Scheme,
    outbound: Arc<Outbound>,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn std::future::Future<Output = Sent> + Send> {
        let admitted = self.admit(&request);
        let mut request = request;
        if let Some(span) = &self.trace {
            crate::trace::inject(span, request.headers_mut());
        }
        let dispatcher = self.dispatcher.clone();
        let (procedure, request_id, deadline) = (self.procedure.clone(), self.request_id, self.deadline);
        let received = self.received.clone();
        let request = request.map(|body| Drained { body: Some(body), ended: false, deadline });
        Box::new(async move {
            let admitted = admitted?;
            let label = host_label(&admitted.entry);
            let work = send(request, &admitted, &received, &procedure, request_id);
            let work = async {
                match tokio::time::timeout_at(deadline.into(), work).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err((Error::HttpResponseTimeout, "timeout")),
                }
            };
            // Admitted only with a dispatcher: the call holds a slot to lend.
            let outcome = match &dispatcher {
                Some(dispatcher) => dispatcher.slots().lend_while(work).await,
                None => work.await,
            };
            let outcome_label = match &outcome {
                Ok(_) => "ok",
                Err((_, why)) => why,
            };
            admitted.outbound.stats.record_outbound(&label, outcome_label);
            let response = outcome.map_err(|(e, _)| e)?;
            let done: Box<dyn std::future::Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The metrics label of requests granted by `entry`: its host as granted
/// (a wildcard stays one label), so guests cannot make labels without end.
fn host_label(entry: &Entry) -> String {
    match &entry.host {
        Host::Name(name) => name.clone(),
        Host::Subdomains(suffix) => format!("*.{suffix}"),
        Host::Ip(IpAddr::V4(ip)) => ip.to_string(),
        Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
    }
}

impl Hooks {
    /// Counts the request and finds its grant entry, or refuses it.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Result<Admitted, Error> {
        let uri = request.uri();
        let host = uri.host().map(RequestHost::parse);
        let Some(outbound) = self.outbound.clone().filter(|_| self.dispatcher.is_some()) else {
            self.refuse(host.as_ref(), "outbound HTTP is not available while `describe` runs at deploy");
            return Err(Error::HttpRequestDenied);
        };
        self.sent = self.sent.saturating_add(1);
        if self.sent > outbound.limits.max_requests {
            let message = format!(
                "at most {} outbound requests per call (--max-outbound-requests)",
                outbound.limits.max_requests
            );
            self.refuse(host.as_ref(), &message);
            outbound.stats.record_outbound("(limit)", "limit");
            return Err(Error::InternalError(Some(message)));
        }
        let scheme = uri.scheme_str().and_then(Scheme::parse);
        let (Some(scheme), Some(host)) = (scheme, host) else {
            self.refuse(None, "the URL has no http or https scheme, or no host");
            return Err(Error::HttpRequestUriInvalid);
        };
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        let Some(entry) = outbound.grant.find(scheme, &host, port).cloned() else {
            let wanted = Entry {
                scheme,
                host: match &host {
                    RequestHost::Name(n) => Host::Name(n.clone()),
                    RequestHost::Ip(ip) => Host::Ip(*ip),
                },
                port,
            };
            self.refuse(
                Some(&host),
                &format!(
                    "{wanted} is not granted to this version; deploy it with --allow-outbound {wanted} \
                     (PUT /procedures/{}?allow-outbound={wanted})",
                    self.procedure
                ),
            );
            outbound.stats.record_outbound("(not granted)", "denied");
            return Err(Error::HttpRequestDenied);
        };
        Ok(Admitted { entry, host, port, scheme, outbound })
    }

    fn refuse(&self, host: Option<&RequestHost>, why: &str) {
        let host = host.map(ToString::to_string);
        tracing::warn!(
            target: "wasmrpc::outbound",
            procedure = &*self.procedure,
            request_id = self.request_id,
            host,
            "outbound request refused: {why}"
        );
    }
}

/// The guest's request body, read to its end even when the request no
/// longer needs it: a guest writes its body while it waits for the answer
/// (wstd does), and a body stream closed under it would hide that answer (a
/// refusal, or a response that came before the last bytes were sent) behind
/// a write error ("connection reset"). Dropped before its end, it is read
/// to its end and discarded by a task of its own, which ends when the guest
/// finishes or drops the body (at the latest when its call ends) or at the
/// call's deadline.
struct Drained {
    body: Option<WasiBody>,
    ended: bool,
    deadline: Instant,
}

impl http_body::Body for Drained {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        let Some(body) = self.body.as_mut() else { return std::task::Poll::Ready(None) };
        let frame = std::pin::Pin::new(body).poll_frame(cx);
        if matches!(frame, std::task::Poll::Ready(None)) {
            self.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let (Some(mut body), false) = (self.body.take(), self.ended) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let deadline = self.deadline;
        runtime.spawn(tokio::time::timeout_at(deadline.into(), async move {
            while let Some(Ok(_)) = body.frame().await {}
        }));
    }
}

/// A failure, and its outcome label for the metrics.
type Failed = (Error, &'static str);

/// Resolves, checks, connects, sends and reads the whole response.
async fn send(
    mut request: http::Request<Drained>,
    admitted: &Admitted,
    received: &AtomicU64,
    procedure: &str,
    request_id: u64,
) -> Result<http::Response<WasiBody>, Failed> {
    let limits = admitted.outbound.limits;
    let log = |outcome: &str, why: &dyn std::fmt::Display| {
        tracing::warn!(
            target: "wasmrpc::outbound",
            procedure,
            request_id,
            host = %admitted.host,
            outcome,
            "outbound request failed: {why}"
        );
    };
    let connect = async {
        let addresses = resolve(&admitted.host, admitted.port).await.map_err(|e| {
            log("dns", &e);
            (Error::DnsError { rcode: Some(e.to_string()), info_code: None }, "dns")
        })?;
        let mut allowed = Vec::with_capacity(addresses.len());
        let mut refused = None;
        for address in addresses {
            match check_address(&admitted.entry, address.ip()) {
                Ok(()) => allowed.push(address),
                Err(range) => refused = Some((address.ip(), range)),
            }
        }
        if allowed.is_empty() {
            if let Some((ip, range)) = refused {
                log(
                    "refused",
                    &format!(
                        "{} resolves to {ip}, in {range}, which only an entry naming that address \
                         literally may reach (e.g. --allow-outbound {}://{}:{})",
                        admitted.host,
                        scheme_str(admitted.scheme),
                        RequestHost::Ip(ip),
                        admitted.port
                    ),
                );
            }
            return Err((Error::DestinationIpProhibited, "refused"));
        }
        let mut last = None;
        for address in allowed {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::other("no address"));
        log("connect", &e);
        Err((Error::ConnectionRefused, "connect"))
    };
    let stream = match tokio::time::timeout(limits.connect_timeout, connect).await {
        Ok(stream) => stream?,
        Err(_) => {
            log(
                "connect",
                &format!("no connection within {:?} (--outbound-connect-timeout-ms)", limits.connect_timeout),
            );
            return Err((Error::ConnectionTimeout, "connect"));
        }
    };
    let stream: Box<dyn Stream> = match admitted.scheme {
        Scheme::Http => Box::new(stream),
        Scheme::Https => {
            let name = match &admitted.host {
                RequestHost::Name(n) => rustls::pki_types::ServerName::try_from(n.clone()),
                RequestHost::Ip(ip) => Ok(rustls::pki_types::ServerName::from(*ip)),
            }
            .map_err(|e| {
                log("tls", &e);
                (Error::TlsProtocolError, "tls")
            })?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()).connect(name, stream).await.map_err(|e| {
                log("tls", &e);
                (Error::TlsCertificateError, "tls")
            })?;
            Box::new(tls)
        }
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(|e| {
            log("error", &e);
            (Error::HttpProtocolError, "error")
        })?;
    // The request line names the path only (no proxy here).
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| (Error::HttpRequestUriInvalid, "error"))?;
    let cap = limits.max_response_bytes;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| {
            log("error", &e);
            (Error::HttpProtocolError, "error")
        })?;
        let (parts, mut body) = response.into_parts();
        let mut bytes = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                log("error", &e);
                (Error::HttpResponseIncomplete, "error")
            })?;
            let Ok(data) = frame.into_data() else { continue };
            let total = received.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if total > cap {
                log(
                    "too_large",
                    &format!("this call's responses passed {} MiB (--max-outbound-response-mib)", cap >> 20),
                );
                return Err((Error::HttpResponseBodySize(Some(total)), "too_large"));
            }
            bytes.extend_from_slice(&data);
        }
        let body = Full::new(Bytes::from(bytes)).map_err(|e: Infallible| match e {}).boxed_unsync();
        Ok(http::Response::from_parts(parts, body))
    };
    // The connection is driven here, not in a task of its own: it ends
    // with the request (the call's deadline, its end).
    let mut exchange = std::pin::pin!(exchange);
    let mut conn = std::pin::pin!(conn);
    let mut conn_done = false;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return std::task::Poll::Ready(out);
        }
        if !conn_done {
            if let std::task::Poll::Ready(result) = conn.as_mut().poll(cx) {
                conn_done = true;
                if let Err(e) = result {
                    log("error", &e);
                    return std::task::Poll::Ready(Err((Error::ConnectionTerminated, "error")));
                }
                return exchange.as_mut().poll(cx);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn scheme_str(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// The addresses of `host` (an address resolves to itself), each tried in
/// turn; resolved once, so what is checked is what is connected to.
async fn resolve(host: &RequestHost, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    match host {
        RequestHost::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        RequestHost::Name(name) => Ok(tokio::net::lookup_host((name.as_str(), port)).await?.collect()),
    }
}

/// A connection, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The TLS client settings: the webpki roots, ring's provider; made once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
            #[allow(
                deprecated,
                reason = "ring is the provider wasmtime-wasi-http builds with; its post-quantum gap is not ours to fill"
            )]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn serves_wasi_http_0_2() {
        for v in ["0.2.0", "0.2.3", "0.2.6"] {
            assert!(serves(&format!("wasi:http/outgoing-handler@{v}")));
            assert!(serves(&format!("wasi:http/types@{v}")));
        }
        assert!(!serves("wasi:http/incoming-handler@0.2.0"));
        assert!(!serves("wasi:http/outgoing-handler@0.3.0"));
        assert!(!serves("wasi:http/types"));
        assert!(!serves("wasi:keyvalue/store@0.2.0-draft"));
    }
}
