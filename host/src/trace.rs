//! Distributed tracing: W3C Trace Context (`traceparent`, `tracestate`)
//! read from a request, carried through a call tree and onto a procedure's
//! outgoing HTTP requests, and each call's span exported over OTLP/HTTP
//! (`--otlp-endpoint`).
//!
//! - [`from_headers`] reads a request's (or a WebSocket upgrade's)
//!   `traceparent` strictly (version 00 as the spec writes it, later
//!   versions by their first four fields); a bad one is ignored, never an
//!   error to the client. The caller keeps it in [`crate::rpc::Caller`].
//! - [`Tracing::top_level`] gives a request's call its [`Span`]: a child of
//!   the header's span, or, only when exporting, the root of a new trace.
//!   Without a header and without an endpoint it is `None`, and the call
//!   path pays nothing: no id, no clock read, no allocation.
//! - A nested call's span is [`Span::child`] of its caller's
//!   (`sandbox/capabilities/nested.rs`); an outgoing request carries the
//!   calling call's span as its parent ([`inject`], from
//!   `sandbox/capabilities/http.rs`), so another wasmrpc server called
//!   that way continues the trace.
//! - [`Span::end`], from [`crate::registry::Registry::call`] where the
//!   call's log line is written, hands the finished span to the batch span
//!   processor (on the tokio runtime) when the trace is sampled and an
//!   endpoint is set. The spans are built here, from ids made here, so a
//!   nested call or an outgoing request can name a span before it ends.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor,
};
use opentelemetry_sdk::Resource;

use crate::sandbox::CallError;

/// The W3C header that names a request's parent span.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C header with vendors' trace data, passed on unchanged.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// Longest `tracestate` passed on: the spec's 512 characters (vendors
/// may drop a longer one, and this server does).
const MAX_TRACESTATE: usize = 512;
/// How long a graceful shutdown waits for the last spans to be sent.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// The resource's service name unless the environment sets another.
const SERVICE_NAME: &str = "wasmrpc";

/// A remote parent: the span a `traceparent` header names, with the
/// request's `tracestate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The header's sampled flag: spans of an unsampled trace are
    /// propagated, never exported.
    pub sampled: bool,
    /// `tracestate` as received (several headers joined with `,`), if any.
    pub state: Option<Arc<str>>,
}

/// Reads the `traceparent` (and `tracestate`) of a request; `None` when
/// there is none or it is not valid (a client's bad header starts no error;
/// more than one `traceparent` is not valid). A `tracestate` that is not
/// visible ASCII or is longer than 512 characters is dropped.
pub fn from_headers(headers: &HeaderMap) -> Option<Parent> {
    let mut values = headers.get_all(TRACEPARENT).into_iter();
    let (Some(value), None) = (values.next(), values.next()) else { return None };
    let (trace_id, span_id, sampled) = parse_traceparent(value.as_bytes())?;
    let mut state = String::new();
    for value in headers.get_all(TRACESTATE) {
        let Ok(text) = value.to_str() else { return Some(Parent { trace_id, span_id, sampled, state: None }) };
        if !state.is_empty() {
            state.push(',');
        }
        state.push_str(text);
    }
    let state = (!state.is_empty() && state.len() <= MAX_TRACESTATE).then(|| Arc::from(state));
    Some(Parent { trace_id, span_id, sampled, state })
}

/// Parses a `traceparent` value: `VERSION-TRACEID-PARENTID-FLAGS`, all
/// lowercase hex. Version `00` is exactly that (55 characters); a later
/// version (not `ff`, which is invalid) may be longer, with a `-` after the
/// flags, and is read by its first four fields. All-zero ids are invalid.
/// Returns the trace id, the parent span id and the sampled flag.
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex(&value[..2])?;
    match version {
        0xff => return None,
        0 if value.len() != 55 => return None,
        _ if value.len() > 55 && value[55] != b'-' => return None,
        _ => {}
    }
    let trace_id = TraceId::from(hex(&value[3..35])?);
    let span_id = SpanId::from(u64::try_from(hex(&value[36..52])?).ok()?);
    let flags = hex(&value[53..55])?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    Some((trace_id, span_id, flags & 1 == 1))
}

/// The number `text` (at most 32 lowercase hex digits) writes.
fn hex(text: &[u8]) -> Option<u128> {
    text.iter().try_fold(0u128, |n, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(digit))
    })
}

/// One call's span: its ids, the span it hangs from, and, when it is to be
/// exported, where to and since when.
#[derive(Debug, Clone)]
pub struct Span {
    trace_id: TraceId,
    span_id: SpanId,
    /// The header's span (top-level) or the calling call's; `None` for the
    /// root of a trace this server started.
    parent: Option<SpanId>,
    /// Whether `parent` is another process's (a header's).
    parent_remote: bool,
    sampled: bool,
    state: Option<Arc<str>>,
    /// The exporter and the call's start; `Some` only for a sampled span
    /// with `--otlp-endpoint` set.
    export: Option<(Exporter, SystemTime)>,
}

impl Span {
    /// The trace this span is part of.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This call's own span id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// A nested call's span: a new span id in the same trace, this span
    /// its parent, exported like this one.
    pub fn child(&self) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            parent: Some(self.span_id),
            parent_remote: false,
            sampled: self.sampled,
            state: self.state.clone(),
            export: self.export.as_ref().map(|(exporter, _)| (exporter.clone(), SystemTime::now())),
        }
    }

    /// The `traceparent` that names this span as the parent (version 00;
    /// of the flags only "sampled" is kept, as the spec asks).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }

    /// Ends the call `method` (`module.method`) at depth `depth` of request
    /// `request_id` with `error` (`None`: it answered): an exported span
    /// is handed to the batch span processor, anything else is dropped.
    pub fn end(self, method: &str, depth: u32, request_id: u64, error: Option<&CallError>) {
        let Some((exporter, start_time)) = self.export else { return };
        let procedure = method.split_once('.').map_or(method, |(module, _)| module);
        let outcome = error.map_or_else(|| "ok".to_owned(), |e| e.code().to_string());
        let mut attributes = vec![
            KeyValue::new("rpc.system", "jsonrpc"),
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("wasmrpc.procedure", procedure.to_owned()),
            KeyValue::new("wasmrpc.method", method.to_owned()),
            KeyValue::new("wasmrpc.outcome", outcome),
            KeyValue::new("wasmrpc.depth", i64::from(depth)),
            KeyValue::new("wasmrpc.request_id", i64::try_from(request_id).unwrap_or(i64::MAX)),
        ];
        let status = match error {
            Some(e) => {
                attributes.push(KeyValue::new("rpc.jsonrpc.error_code", i64::from(e.code())));
                attributes.push(KeyValue::new(
                    "rpc.jsonrpc.error_message",
                    crate::logtext::loggable(e.message()).into_owned(),
                ));
                Status::error(crate::logtext::loggable(e.message()).into_owned())
            }
            None => Status::Unset,
        };
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let span = SpanData {
            span_context: SpanContext::new(self.trace_id, self.span_id, flags, false, TraceState::NONE),
            parent_span_id: self.parent.unwrap_or(SpanId::INVALID),
            parent_span_is_remote: self.parent_remote,
            span_kind: if depth == 0 { SpanKind::Server } else { SpanKind::Internal },
            name: Cow::Owned(method.to_owned()),
            start_time,
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: exporter.0.scope.clone(),
        };
        exporter.0.processor.on_end(span);
    }
}

/// Puts `span` on an outgoing request as its parent: `traceparent` names
/// it, replacing any the guest set (the host's trace wins), and
/// `tracestate` is the one the request came with, or none.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::try_from(span.traceparent()) {
        headers.insert(TRACEPARENT, value);
    }
    match span.state.as_deref().map(HeaderValue::from_str) {
        Some(Ok(state)) => {
            headers.insert(TRACESTATE, state);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// A new span id (never the invalid all-zero one).
fn new_span_id() -> SpanId {
    loop {
        let id = RandomIdGenerator::default().new_span_id();
        if id != SpanId::INVALID {
            return id;
        }
    }
}

/// A new trace id (never the invalid all-zero one).
fn new_trace_id() -> TraceId {
    loop {
        let id = RandomIdGenerator::default().new_trace_id();
        if id != TraceId::INVALID {
            return id;
        }
    }
}

/// Where finished spans go: the batch span processor and its OTLP exporter.
#[derive(Clone)]
pub struct Exporter(Arc<ExporterInner>);

struct ExporterInner {
    processor: BatchSpanProcessor<opentelemetry_sdk::runtime::Tokio>,
    scope: InstrumentationScope,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

/// The server's tracing: whether it exports (`--otlp-endpoint`); it
/// propagates `traceparent` either way.
#[derive(Debug, Clone, Default)]
pub struct Tracing {
    exporter: Option<Exporter>,
}

impl Tracing {
    /// Tracing that exports to `endpoint` (`http://HOST:PORT`, spans go to
    /// `/v1/traces` under it) or, with `None`, only propagates. Must run on
    /// the tokio runtime, where the batch span processor's task is started.
    /// The batch processor honours `OTEL_BSP_*`, the exporter
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`/`_HEADERS` and `_TIMEOUT`, the
    /// resource `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn start(endpoint: Option<&str>) -> anyhow::Result<Tracing> {
        let Some(endpoint) = endpoint else { return Ok(Tracing::default()) };
        use opentelemetry_otlp::WithExportConfig;
        let url = traces_url(endpoint).map_err(anyhow::Error::msg)?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the OTLP exporter for --otlp-endpoint {endpoint}: {e}"))?;
        // `OTEL_SERVICE_NAME` or a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`
        // names the service; else it is "wasmrpc".
        let detected = Resource::builder().build();
        let named = detected
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
        let resource = if named { detected } else { Resource::builder().with_service_name(SERVICE_NAME).build() };
        exporter.set_resource(&resource);
        let processor = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let scope = InstrumentationScope::builder("wasmrpc").with_version(env!("CARGO_PKG_VERSION")).build();
        tracing::info!(endpoint = %endpoint, "exporting spans over OTLP");
        Ok(Tracing { exporter: Some(Exporter(Arc::new(ExporterInner { processor, scope }))) })
    }

    /// The span of a request's call: a child of `parent` (the request's
    /// `traceparent`), else, when exporting, the root of a new trace, else
    /// none (nothing to propagate nor to export: no cost).
    pub fn top_level(&self, parent: Option<&Parent>) -> Option<Span> {
        let export = |sampled: bool| {
            self.exporter.as_ref().filter(|_| sampled).map(|exporter| (exporter.clone(), SystemTime::now()))
        };
        match parent {
            Some(parent) => Some(Span {
                trace_id: parent.trace_id,
                span_id: new_span_id(),
                parent: Some(parent.span_id),
                parent_remote: true,
                sampled: parent.sampled,
                state: parent.state.clone(),
                export: export(parent.sampled),
            }),
            None if self.exporter.is_some() => Some(Span {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
                parent: None,
                parent_remote: false,
                sampled: true,
                state: None,
                export: export(true),
            }),
            None => None,
        }
    }

    /// Sends the spans not sent yet and stops the exporter (at a graceful
    /// shutdown); waits at most 5 seconds.
    pub async fn shutdown(&self) {
        let Some(exporter) = self.exporter.clone() else { return };
        let flush = tokio::task::spawn_blocking(move || exporter.0.processor.shutdown_with_timeout(SHUTDOWN_WAIT));
        match tokio::time::timeout(SHUTDOWN_WAIT, flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("sending the last spans failed: {e}"),
            Ok(Err(_)) | Err(_) => tracing::warn!("the last spans were not sent within {SHUTDOWN_WAIT:?}"),
        }
    }
}

/// The OTLP/HTTP traces URL under `endpoint` (`http://HOST:PORT[/PATH]`):
/// `endpoint/v1/traces`. Only plain `http` is supported (a collector or an
/// agent beside the server).
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| {
        format!("--otlp-endpoint {endpoint:?} is not a URL ({e}); give http://HOST:PORT, e.g. http://127.0.0.1:4318")
    })?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) if uri.query().is_none() => {}
        (Some("https"), _) => {
            return Err(format!(
                "--otlp-endpoint {endpoint}: https is not supported; send to a collector or agent over http \
                 (e.g. http://127.0.0.1:4318), which may forward over TLS"
            ))
        }
        _ => return Err(format!("--otlp-endpoint {endpoint:?} must be http://HOST:PORT, e.g. http://127.0.0.1:4318")),
    }
    Ok(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_parses() {
        let (trace_id, span_id, sampled) = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span_id.to_string(), "00f067aa0ba902b7");
        assert!(sampled);
        let (_, _, sampled) = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!sampled);
        // Flags other than "sampled" are accepted and not passed on.
        let (_, _, sampled) = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
        assert!(sampled);
    }

    #[test]
    fn invalid_headers_are_refused() {
        let cases = [
            // All-zero trace id and parent id.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Uppercase hex.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Version 00 with more after it.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
            // Short, wrong separators, not hex.
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // A later version whose flags are followed by something other than `-`.
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "",
        ];
        for bad in cases {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn later_versions_are_read_by_their_first_fields() {
        let (trace_id, span_id, sampled) =
            parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")
                .unwrap();
        assert_eq!(trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span_id.to_string(), "00f067aa0ba902b7");
        assert!(sampled);
        assert!(parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").is_some());
    }

    #[test]
    fn headers_give_the_parent_and_its_state() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers), None);
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        headers.append(TRACESTATE, HeaderValue::from_static("rojo=00f067aa0ba902b7"));
        let parent = from_headers(&headers).unwrap();
        assert_eq!(parent.state.as_deref(), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(from_headers(&headers), None, "two traceparent headers");
    }

    #[test]
    fn without_an_endpoint_only_a_header_starts_a_span() {
        let tracing = Tracing::default();
        assert!(tracing.top_level(None).is_none());
        let (trace_id, span_id, sampled) = parse_traceparent(VALID.as_bytes()).unwrap();
        let parent = Parent { trace_id, span_id, sampled, state: Some("a=b".into()) };
        let span = tracing.top_level(Some(&parent)).unwrap();
        assert_eq!((span.trace_id, span.parent, span.export.is_none()), (trace_id, Some(span_id), true));
        assert_ne!(span.span_id, span_id);
        let child = span.child();
        assert_eq!((child.trace_id, child.parent), (trace_id, Some(span.span_id)));
        let mut headers = HeaderMap::new();
        headers.insert(TRACESTATE, HeaderValue::from_static("guest=1"));
        inject(&child, &mut headers);
        assert_eq!(headers[TRACEPARENT], format!("00-{trace_id}-{}-01", child.span_id).as_str());
        assert_eq!(headers[TRACESTATE], "a=b");
        assert_eq!(parse_traceparent(headers[TRACEPARENT].as_bytes()), Some((trace_id, child.span_id, true)));
    }

    #[test]
    fn endpoints_are_checked() {
        assert_eq!(traces_url("http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/").unwrap(), "http://collector:4318/v1/traces");
        assert!(traces_url("https://collector:4318").unwrap_err().contains("https is not supported"));
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("not a url").is_err());
    }
}
