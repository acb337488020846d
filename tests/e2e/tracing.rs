//! Tracing: a request's W3C `traceparent` is continued through nested calls,
//! onto a procedure's outgoing HTTP requests and into another wasmrpc
//! server called that way; with `--otlp-endpoint` every call's span reaches
//! a collector the test runs (the loopback upstream, decoding OTLP/HTTP
//! protobuf with `opentelemetry-proto`), and without it nothing is sent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;
use serde_json::{json, Value};

use crate::support::Server;
use crate::upstream::{deploy_with_grants, Reply, Upstream};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// `traceparent` for `trace` and `parent`, sampled.
fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

/// A span as the collector received it; ids in lowercase hex.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    trace_id: String,
    span_id: String,
    /// Empty for a root span.
    parent: String,
    name: String,
    kind: SpanKind,
    /// Attributes, as text.
    attributes: HashMap<String, String>,
    error: bool,
    started: u64,
    ended: u64,
}

impl Exported {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A collector on 127.0.0.1: accepts `POST /v1/traces`.
async fn collector() -> Upstream {
    Upstream::start(|request| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/traces") => Reply::new("200 OK", Vec::new()).header("content-type", "application/x-protobuf"),
        _ => Reply::new("404 Not Found", Vec::new()),
    })
    .await
}

/// Every span the collector received so far, decoded.
fn spans(collector: &Upstream) -> Vec<Exported> {
    let seen = collector.seen.lock().unwrap().clone();
    let mut out = Vec::new();
    for request in seen {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v1/traces"));
        assert_eq!(request.header("content-type"), Some("application/x-protobuf"));
        let export = ExportTraceServiceRequest::decode(&request.body[..]).expect("an OTLP protobuf export");
        for resource_spans in export.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| text(v.value.as_ref()))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref().and_then(|v| v.value.as_ref()))))
                    .collect();
                out.push(Exported {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind(),
                    attributes,
                    error: span.status.as_ref().is_some_and(|s| s.code() == SpanStatus::Error),
                    started: span.start_time_unix_nano,
                    ended: span.end_time_unix_nano,
                });
            }
        }
    }
    out
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Waits (at most 20 s) until the collector holds `count` spans of
/// `trace`; returns them.
async fn wait_for_spans(collector: &Upstream, trace: &str, count: usize) -> Vec<Exported> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<_> = spans(collector).into_iter().filter(|s| s.trace_id == trace).collect();
        if found.len() >= count || Instant::now() > deadline {
            assert_eq!(found.len(), count, "spans of trace {trace}: {found:#?}\nall: {:#?}", spans(collector));
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `method` with `params` on `server`, with `headers`: the response object.
async fn call_with(server: &Server, headers: &[(&str, &str)], method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string();
    let answer = server.post_with(headers, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json().unwrap()
}

/// A server exporting to `collector`, batches sent every 100 ms.
fn exporting_server(collector: &Upstream) -> Server {
    Server::start_with_env(&["--otlp-endpoint", &collector.url("")], &[("OTEL_BSP_SCHEDULE_DELAY", "100")])
}

#[tokio::test]
async fn a_traceparent_is_continued_through_nested_calls_and_exported() {
    let collector = collector().await;
    let server = exporting_server(&collector);
    for (name, file) in [("nested", "test_nested"), ("math", "math"), ("raw", "test_raw")] {
        server.deploy_ok(name, file).await;
    }
    let header = traceparent(TRACE, PARENT);
    let answer = call_with(&server, &[("traceparent", &header)], "nested.call", json!(["math.add", [2, 3]])).await;
    assert_eq!(answer["result"], 5, "{answer}");

    let found = wait_for_spans(&collector, TRACE, 2).await;
    let top = found.iter().find(|s| s.name == "nested.call").expect("the top-level span");
    let child = found.iter().find(|s| s.name == "math.add").expect("the nested call's span");
    // The top-level span hangs from the header's span, the nested one from it.
    assert_eq!(top.parent, PARENT);
    assert_ne!(top.span_id, PARENT);
    assert_eq!(child.parent, top.span_id);
    assert_ne!(child.span_id, top.span_id);
    assert_eq!((top.kind, child.kind), (SpanKind::Server, SpanKind::Internal));
    for (span, depth, procedure) in [(top, "0", "nested"), (child, "1", "math")] {
        assert_eq!(span.service, "wasmrpc");
        assert_eq!(span.attr("wasmrpc.method"), span.name);
        assert_eq!(span.attr("wasmrpc.procedure"), procedure);
        assert_eq!(span.attr("wasmrpc.depth"), depth);
        assert_eq!(span.attr("wasmrpc.outcome"), "ok");
        assert_eq!(span.attr("rpc.system"), "jsonrpc");
        assert!(!span.error, "{span:?}");
        assert!(span.started > 0 && span.started <= span.ended, "{span:?}");
    }
    assert_eq!(top.attr("wasmrpc.request_id"), child.attr("wasmrpc.request_id"));
    assert!(top.started <= child.started && child.ended <= top.ended, "{top:?} {child:?}");
    // The call's log line names its trace, so logs and traces join.
    server.wait_for_log(0, &["wasmrpc::call", "nested.call", "trace_id", TRACE], Duration::from_secs(5)).await;

    // An error: the procedure's own code is the outcome, both spans marked.
    const FAILING: &str = "0af7651916cd43dd8448eb211c80319c";
    let header = traceparent(FAILING, PARENT);
    let answer = call_with(&server, &[("traceparent", &header)], "nested.call", json!(["raw.custom_error", []])).await;
    assert_eq!(answer["error"]["code"], 42, "{answer}");
    let found = wait_for_spans(&collector, FAILING, 2).await;
    for span in &found {
        assert!(span.error, "{span:?}");
        assert_eq!(span.attr("wasmrpc.outcome"), "42", "{span:?}");
        assert_eq!(span.attr("rpc.jsonrpc.error_code"), "42", "{span:?}");
    }

    // No header: a span all the same, in a trace of its own.
    let before: Vec<String> = spans(&collector).into_iter().map(|s| s.trace_id).collect();
    assert_eq!(call_with(&server, &[], "math.add", json!([1, 1])).await["result"], 2);
    // A bad header (uppercase hex) is ignored, never an error: a new trace too.
    let upper = traceparent(&TRACE.to_uppercase(), PARENT);
    assert_eq!(call_with(&server, &[("traceparent", &upper)], "math.multiply", json!([2, 2])).await["result"], 4);
    // Not sampled: propagated, never exported. It ends before the next
    // call starts, so its span would be sent no later than that one's.
    const UNSAMPLED: &str = "11111111111111111111111111111111";
    let header = format!("00-{UNSAMPLED}-{PARENT}-00");
    assert_eq!(call_with(&server, &[("traceparent", &header)], "math.add", json!([3, 3])).await["result"], 6);
    assert_eq!(call_with(&server, &[], "math.subtract", json!([3, 1])).await["result"], 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        let fresh: Vec<_> = spans(&collector).into_iter().filter(|s| !before.contains(&s.trace_id)).collect();
        if fresh.len() >= 3 || Instant::now() > deadline {
            break fresh;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<&str> = fresh.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["math.add", "math.multiply", "math.subtract"], "{fresh:#?}");
    for span in &fresh {
        assert!(span.parent.is_empty(), "a root span: {span:?}");
        assert_eq!(span.trace_id.len(), 32);
        assert_ne!(span.trace_id, TRACE.to_lowercase());
        assert_ne!(span.trace_id, UNSAMPLED);
    }
    assert_ne!(fresh[0].trace_id, fresh[1].trace_id);
}

#[tokio::test]
async fn outgoing_requests_carry_the_calling_calls_span() {
    let upstream = Upstream::start(|_| Reply::new("200 OK", "hello")).await;
    let collector = collector().await;
    let server = exporting_server(&collector);
    let (status, meta) = deploy_with_grants(&server, "h", "test_http_client", &[&upstream.grant()]).await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");

    let header = traceparent(TRACE, PARENT);
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let headers = [("traceparent", header.as_str()), ("tracestate", state)];
    let answer = call_with(&server, &headers, "h.fetch", json!({"url": upstream.url("/a")})).await;
    assert_eq!(answer["result"]["body"], "hello", "{answer}");
    let fetch = wait_for_spans(&collector, TRACE, 1).await.remove(0);
    assert_eq!(fetch.parent, PARENT);
    let sent = upstream.seen.lock().unwrap().pop().unwrap();
    // The request names the calling call's span as its parent.
    assert_eq!(sent.header("traceparent"), Some(traceparent(TRACE, &fetch.span_id).as_str()), "{sent:?}");
    assert_eq!(sent.header("tracestate"), Some(state), "{sent:?}");

    // Not traced (no header on a server without an endpoint): the request
    // goes as the guest made it.
    let quiet = Server::start(&[]);
    deploy_with_grants(&quiet, "h", "test_http_client", &[&upstream.grant()]).await;
    assert_eq!(quiet.result("h.fetch", json!({"url": upstream.url("/b")})).await["body"], "hello");
    let sent = upstream.seen.lock().unwrap().pop().unwrap();
    assert_eq!(sent.path, "/b");
    assert_eq!((sent.header("traceparent"), sent.header("tracestate")), (None, None), "{sent:?}");
    // With a header and no endpoint the trace is still propagated.
    let answer = call_with(&quiet, &[("traceparent", &header)], "h.fetch", json!({"url": upstream.url("/c")})).await;
    assert_eq!(answer["result"]["body"], "hello", "{answer}");
    let sent = upstream.seen.lock().unwrap().pop().unwrap();
    let propagated = sent.header("traceparent").unwrap_or_default();
    assert!(propagated.starts_with(&format!("00-{TRACE}-")) && propagated.ends_with("-01"), "{sent:?}");
    assert!(!propagated.contains(PARENT), "the call's own span, not the client's: {propagated}");
}

#[tokio::test]
async fn a_remote_call_continues_the_trace_on_the_other_server() {
    let collector = collector().await;
    let b = exporting_server(&collector);
    b.deploy_ok("math", "math").await;
    let a = exporting_server(&collector);
    let (status, meta) = deploy_with_grants(&a, "rc", "test_remote_caller", &[&b.url]).await;
    assert_eq!(status, StatusCode::CREATED, "{meta}");

    let header = traceparent(TRACE, PARENT);
    let answer =
        call_with(&a, &[("traceparent", &header)], "rc.add_remote", json!({"url": b.url, "a": 2, "b": 3})).await;
    assert_eq!(answer["result"], 5, "{answer}");
    let found = wait_for_spans(&collector, TRACE, 2).await;
    let caller = found.iter().find(|s| s.name == "rc.add_remote").expect("A's span");
    let callee = found.iter().find(|s| s.name == "math.add").expect("B's span");
    assert_eq!(caller.parent, PARENT);
    // B's call hangs from A's: the request A's procedure sent named it.
    assert_eq!(callee.parent, caller.span_id);
    assert_eq!((caller.kind, callee.kind), (SpanKind::Server, SpanKind::Server));
    assert_eq!(callee.attr("wasmrpc.depth"), "0");
}

/// Stops `server` gracefully (SIGTERM) off the runtime, which meanwhile
/// serves the collector.
async fn stop(server: Server) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || server.stop("TERM")).await.unwrap()
}

#[tokio::test]
async fn spans_are_flushed_at_a_graceful_shutdown_and_never_sent_without_an_endpoint() {
    let collector = collector().await;
    // A batch delay longer than the test: only the shutdown sends the span.
    let server =
        Server::start_with_env(&["--otlp-endpoint", &collector.url("")], &[("OTEL_BSP_SCHEDULE_DELAY", "600000")]);
    server.deploy_ok("math", "math").await;
    let header = traceparent(TRACE, PARENT);
    assert_eq!(call_with(&server, &[("traceparent", &header)], "math.add", json!([1, 2])).await["result"], 3);
    assert!(stop(server).await.success());
    let found: Vec<_> = spans(&collector).into_iter().filter(|s| s.trace_id == TRACE).collect();
    assert_eq!(found.len(), 1, "{found:#?}");

    // No --otlp-endpoint: nothing is sent, even with the standard OTLP
    // variables pointing at the collector, and by the end of a graceful
    // shutdown nothing can still be waiting to go.
    let collector = self::collector().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url("")),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url("/v1/traces")),
        ("OTEL_BSP_SCHEDULE_DELAY", "10".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with_env(&[], &env);
    server.deploy_ok("math", "math").await;
    assert_eq!(call_with(&server, &[("traceparent", &header)], "math.add", json!([1, 2])).await["result"], 3);
    assert_eq!(call_with(&server, &[], "math.add", json!([1, 2])).await["result"], 3);
    assert!(stop(server).await.success());
    assert_eq!(collector.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn a_bad_endpoint_is_refused_at_start() {
    for (endpoint, says) in
        [("https://127.0.0.1:4318", "https is not supported"), ("127.0.0.1:4318", "http://HOST:PORT")]
    {
        let (ok, _, err) = crate::support::wasmrpc(&["serve", "--otlp-endpoint", endpoint, "--listen", "127.0.0.1:0"]);
        assert!(!ok && err.contains(says), "{endpoint}: {err}");
    }
}
