//! Counters for `GET /metrics`, in the Prometheus text format: calls, errors by
//! JSON-RPC code, a latency histogram and an instantiate-time histogram per
//! procedure, and nested calls per caller and callee. A call touches only
//! atomics of its own procedure; the error map is locked on errors alone, the
//! nested-call map on nested calls alone. The public endpoint's counters
//! ([`PUBLIC`]: refusals, rate limits, WebSocket connections) move only
//! when something is refused or a connection opens or closes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a request (a JSON-RPC call, a failed admin request): it
/// tags the request's log lines, so an answer can be matched with its logs.
pub fn next_request_id() -> u64 {
    NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed)
}

/// The public endpoint's counters, for the whole server.
#[derive(Debug, Default)]
pub struct Public {
    /// Requests refused before anything ran: no caller key where one is required.
    pub missing_key: AtomicU64,
    /// ... a caller key the server does not know (or a malformed header).
    pub wrong_key: AtomicU64,
    /// ... a web page of an origin `--cors-origin` does not list.
    pub origin: AtomicU64,
    /// Calls answered -32005 by a key's rate limit.
    pub limited_by_key: AtomicU64,
    /// Calls answered -32005 by a client address's rate limit.
    pub limited_by_address: AtomicU64,
    /// WebSocket connections open now.
    pub websockets: AtomicU64,
    /// WebSocket clients dropped for not reading (close 1008).
    pub websockets_dropped: AtomicU64,
}

/// The server's [`Public`] counters.
pub static PUBLIC: Public = Public {
    missing_key: AtomicU64::new(0),
    wrong_key: AtomicU64::new(0),
    origin: AtomicU64::new(0),
    limited_by_key: AtomicU64::new(0),
    limited_by_address: AtomicU64::new(0),
    websockets: AtomicU64::new(0),
    websockets_dropped: AtomicU64::new(0),
};

/// Counts one more in `counter`.
pub fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Appends the public endpoint's counters to `out`.
pub fn render_public(out: &mut String) {
    let p = &PUBLIC;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    out.push_str("# HELP wasmrpc_refused_requests_total JSON-RPC requests and WebSocket upgrades refused before anything ran, by reason.\n# TYPE wasmrpc_refused_requests_total counter\n");
    for (reason, c) in [("missing_key", &p.missing_key), ("wrong_key", &p.wrong_key), ("origin", &p.origin)] {
        let _ = writeln!(out, "wasmrpc_refused_requests_total{{reason=\"{reason}\"}} {}", get(c));
    }
    out.push_str("# HELP wasmrpc_rate_limited_calls_total Calls answered -32005 by a rate limit, by whose bucket (a key's or a client address's).\n# TYPE wasmrpc_rate_limited_calls_total counter\n");
    for (per, c) in [("key", &p.limited_by_key), ("address", &p.limited_by_address)] {
        let _ = writeln!(out, "wasmrpc_rate_limited_calls_total{{per=\"{per}\"}} {}", get(c));
    }
    let _ = write!(
        out,
        "# HELP wasmrpc_websocket_connections WebSocket connections open now.\n# TYPE wasmrpc_websocket_connections gauge\nwasmrpc_websocket_connections {}\n\
         # HELP wasmrpc_websocket_dropped_total WebSocket clients dropped for not reading their answers or notifications (close 1008).\n# TYPE wasmrpc_websocket_dropped_total counter\nwasmrpc_websocket_dropped_total {}\n",
        get(&p.websockets),
        get(&p.websockets_dropped)
    );
}

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Upper bounds of the instantiate-time buckets, in seconds: an instance from
/// the pool takes microseconds, so the latency buckets would lump them all.
const INSTANTIATE_BUCKETS: [f64; 12] =
    [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

/// A histogram of durations: `N` is the number of bounds plus one, for +Inf.
struct Histogram<const N: usize> {
    counts: [AtomicU64; N],
    nanos_sum: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), nanos_sum: AtomicU64::new(0) }
    }
}

impl<const N: usize> Histogram<N> {
    fn record(&self, bounds: &[f64], elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = bounds.iter().position(|&b| secs <= b).unwrap_or(N - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos_sum.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of `metric` for `procedure`.
    fn render(&self, out: &mut String, metric: &str, procedure: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (count, bound) in self.counts.iter().zip(bounds) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{metric}_bucket{{procedure=\"{procedure}\",le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[N - 1].load(Ordering::Relaxed);
        let sum = self.nanos_sum.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = write!(
            out,
            "{metric}_bucket{{procedure=\"{procedure}\",le=\"+Inf\"}} {cumulative}\n\
             {metric}_sum{{procedure=\"{procedure}\"}} {sum}\n\
             {metric}_count{{procedure=\"{procedure}\"}} {cumulative}\n"
        );
    }
}

/// One procedure's counters; shared by all its versions.
#[derive(Default)]
pub struct ProcStats {
    calls: AtomicU64,
    latency: Histogram<{ LATENCY_BUCKETS.len() + 1 }>,
    instantiate: Histogram<{ INSTANTIATE_BUCKETS.len() + 1 }>,
    /// Calls served by a ready instance (made ahead: `--ready-instances`).
    ready: AtomicU64,
    /// Calls served by an instance that served an earlier call (`?reuse=N`).
    reused: AtomicU64,
    errors: Mutex<BTreeMap<i32, u64>>,
    /// Outbound HTTP requests by granted host and outcome (locked per
    /// request, by calls that send one).
    outbound: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl ProcStats {
    /// Records one finished call; `error_code` is the JSON-RPC code it ended with.
    pub fn record(&self, elapsed: Duration, error_code: Option<i32>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency.record(&LATENCY_BUCKETS, elapsed);
        if let Some(code) = error_code {
            let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
            *errors.entry(code).or_default() += 1;
        }
    }

    /// Records how long creating a call's fresh instance took.
    pub fn record_instantiate(&self, elapsed: Duration) {
        self.instantiate.record(&INSTANTIATE_BUCKETS, elapsed);
    }

    /// Records one outbound request to `host` (as granted, or a
    /// placeholder such as `(not granted)`) that ended in `outcome`.
    pub fn record_outbound(&self, host: &str, outcome: &'static str) {
        let mut outbound = self.outbound.lock().unwrap_or_else(|p| p.into_inner());
        *outbound.entry((host.to_owned(), outcome)).or_default() += 1;
    }

    /// Records a call that took a ready instance, made ahead of it.
    pub fn record_ready_instance(&self) {
        self.ready.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a call that reused an instance an earlier call used.
    pub fn record_reused_instance(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Nested calls (a procedure calling another through `client.call`), per
/// caller and callee. Only deployed callees are counted, so the pairs are
/// bounded by the deployed names, not by what a guest asks for.
#[derive(Default)]
pub struct NestedCalls {
    by_caller: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl NestedCalls {
    /// Counts one call from procedure `caller` to procedure `callee`.
    pub fn record(&self, caller: &str, callee: &str) {
        let mut by_caller = self.by_caller.lock().unwrap_or_else(|p| p.into_inner());
        let callees = match by_caller.get_mut(caller) {
            Some(callees) => callees,
            None => by_caller.entry(caller.to_owned()).or_default(),
        };
        match callees.get_mut(callee) {
            Some(n) => *n += 1,
            None => {
                callees.insert(callee.to_owned(), 1);
            }
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP wasmrpc_nested_calls_total Calls a procedure made to another, per caller and callee.\n# TYPE wasmrpc_nested_calls_total counter\n",
        );
        for (caller, callees) in self.by_caller.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for (callee, n) in callees {
                let _ = writeln!(out, "wasmrpc_nested_calls_total{{caller=\"{caller}\",callee=\"{callee}\"}} {n}");
            }
        }
    }
}

/// Renders the text exposition of every procedure's counters and the nested calls.
pub fn render<'a>(
    procedures: impl Iterator<Item = (&'a str, &'a ProcStats)>,
    deployed: usize,
    nested: &NestedCalls,
) -> String {
    let mut calls =
        String::from("# HELP wasmrpc_calls_total Calls answered, per procedure.\n# TYPE wasmrpc_calls_total counter\n");
    let mut errors = String::from(
        "# HELP wasmrpc_errors_total Calls that ended in an error, per procedure and JSON-RPC code.\n# TYPE wasmrpc_errors_total counter\n",
    );
    let mut ready = String::from(
        "# HELP wasmrpc_ready_instance_calls_total Calls served by an instance made ahead of them (--ready-instances), per procedure.\n# TYPE wasmrpc_ready_instance_calls_total counter\n",
    );
    let mut reused = String::from(
        "# HELP wasmrpc_reused_instance_calls_total Calls served by an instance that served an earlier call (deployed with ?reuse=N), per procedure.\n# TYPE wasmrpc_reused_instance_calls_total counter\n",
    );
    let mut latency = String::from(
        "# HELP wasmrpc_call_duration_seconds Time from dispatch to result, per procedure.\n# TYPE wasmrpc_call_duration_seconds histogram\n",
    );
    let mut instantiate = String::from(
        "# HELP wasmrpc_instantiate_duration_seconds Time to create a fresh instance for a call (in the call, or just ahead of it: --ready-instances), per procedure.\n# TYPE wasmrpc_instantiate_duration_seconds histogram\n",
    );
    let mut outbound = String::from(
        "# HELP wasmrpc_outbound_requests_total Outgoing HTTP requests of procedures, per procedure, granted host and outcome.\n# TYPE wasmrpc_outbound_requests_total counter\n",
    );
    for (name, stats) in procedures {
        for ((host, outcome), n) in stats.outbound.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                outbound,
                "wasmrpc_outbound_requests_total{{procedure=\"{name}\",host=\"{host}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let total = stats.calls.load(Ordering::Relaxed);
        let _ = writeln!(calls, "wasmrpc_calls_total{{procedure=\"{name}\"}} {total}");
        let served = stats.ready.load(Ordering::Relaxed);
        let _ = writeln!(ready, "wasmrpc_ready_instance_calls_total{{procedure=\"{name}\"}} {served}");
        let again = stats.reused.load(Ordering::Relaxed);
        let _ = writeln!(reused, "wasmrpc_reused_instance_calls_total{{procedure=\"{name}\"}} {again}");
        for (code, n) in stats.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(errors, "wasmrpc_errors_total{{procedure=\"{name}\",code=\"{code}\"}} {n}");
        }
        stats.latency.render(&mut latency, "wasmrpc_call_duration_seconds", name, &LATENCY_BUCKETS);
        stats.instantiate.render(&mut instantiate, "wasmrpc_instantiate_duration_seconds", name, &INSTANTIATE_BUCKETS);
    }
    let mut nested_calls = String::new();
    nested.render(&mut nested_calls);
    format!(
        "# HELP wasmrpc_procedures_deployed Procedures serving now.\n# TYPE wasmrpc_procedures_deployed gauge\nwasmrpc_procedures_deployed {deployed}\n{calls}{errors}{ready}{reused}{nested_calls}{outbound}{latency}{instantiate}"
    )
}

/// Renders the key-value counters: operations, bytes and errors per
/// procedure, and the embedded store's commits (`commits`: commits and the
/// calls' writes they carried).
pub fn render_kv(
    out: &mut String,
    procedures: &[(String, std::sync::Arc<crate::kv::KvStats>)],
    commits: Option<(u64, u64)>,
) {
    out.push_str("# HELP wasmrpc_kv_operations_total Key-value operations of procedures' guests, per procedure and kind.\n# TYPE wasmrpc_kv_operations_total counter\n");
    for (name, s) in procedures {
        for (op, n) in [("read", &s.reads), ("write", &s.writes)] {
            let _ = writeln!(
                out,
                "wasmrpc_kv_operations_total{{procedure=\"{name}\",op=\"{op}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str("# HELP wasmrpc_kv_bytes_total Bytes of keys and values read and written, per procedure.\n# TYPE wasmrpc_kv_bytes_total counter\n");
    for (name, s) in procedures {
        for (dir, n) in [("read", &s.bytes_read), ("written", &s.bytes_written)] {
            let _ = writeln!(
                out,
                "wasmrpc_kv_bytes_total{{procedure=\"{name}\",direction=\"{dir}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str("# HELP wasmrpc_kv_errors_total Key-value operations refused or failed, per procedure.\n# TYPE wasmrpc_kv_errors_total counter\n");
    for (name, s) in procedures {
        let _ = writeln!(out, "wasmrpc_kv_errors_total{{procedure=\"{name}\"}} {}", s.errors.load(Ordering::Relaxed));
    }
    if let Some((commits, writes)) = commits {
        let _ = write!(
            out,
            "# HELP wasmrpc_kv_commits_total Commits of the embedded key-value store (each one fsync).\n# TYPE wasmrpc_kv_commits_total counter\nwasmrpc_kv_commits_total {commits}\n\
             # HELP wasmrpc_kv_committed_writes_total Writes (one call's list each) the commits carried: over commits, writes per commit.\n# TYPE wasmrpc_kv_committed_writes_total counter\nwasmrpc_kv_committed_writes_total {writes}\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_errors_and_cumulative_buckets() {
        let stats = ProcStats::default();
        stats.record(Duration::from_micros(50), None);
        stats.record(Duration::from_millis(3), Some(-32000));
        stats.record(Duration::from_secs(9), Some(-32001));
        let text = render([("math", &stats)].into_iter(), 1, &NestedCalls::default());
        assert!(text.contains("wasmrpc_calls_total{procedure=\"math\"} 3"));
        assert!(text.contains("wasmrpc_errors_total{procedure=\"math\",code=\"-32000\"} 1"));
        assert!(text.contains("wasmrpc_call_duration_seconds_bucket{procedure=\"math\",le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("wasmrpc_call_duration_seconds_bucket{procedure=\"math\",le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("wasmrpc_call_duration_seconds_bucket{procedure=\"math\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("wasmrpc_call_duration_seconds_sum{procedure=\"math\"} 9.00305\n"), "{text}");
        assert!(text.contains("wasmrpc_procedures_deployed 1"));
        assert!(text.contains("wasmrpc_ready_instance_calls_total{procedure=\"math\"} 0\n"), "{text}");
        stats.record_ready_instance();
        let text = render([("math", &stats)].into_iter(), 1, &NestedCalls::default());
        assert!(text.contains("wasmrpc_ready_instance_calls_total{procedure=\"math\"} 1\n"), "{text}");
    }

    #[test]
    fn renders_nested_calls_per_pair() {
        let nested = NestedCalls::default();
        nested.record("calc", "math");
        nested.record("calc", "math");
        nested.record("calc", "text");
        nested.record("a", "calc");
        let text = render(std::iter::empty(), 0, &nested);
        assert!(text.contains("# TYPE wasmrpc_nested_calls_total counter\n"), "{text}");
        assert!(text.contains("wasmrpc_nested_calls_total{caller=\"calc\",callee=\"math\"} 2\n"), "{text}");
        assert!(text.contains("wasmrpc_nested_calls_total{caller=\"calc\",callee=\"text\"} 1\n"), "{text}");
        assert!(text.contains("wasmrpc_nested_calls_total{caller=\"a\",callee=\"calc\"} 1\n"), "{text}");
    }

    #[test]
    fn renders_the_instantiate_histogram() {
        let stats = ProcStats::default();
        let text = render([("math", &stats)].into_iter(), 1, &NestedCalls::default());
        assert!(text.contains("# TYPE wasmrpc_instantiate_duration_seconds histogram\n"), "{text}");
        assert!(text.contains("wasmrpc_instantiate_duration_seconds_count{procedure=\"math\"} 0\n"), "{text}");

        stats.record_instantiate(Duration::from_micros(8));
        stats.record_instantiate(Duration::from_micros(40));
        stats.record_instantiate(Duration::from_millis(300));
        // Instantiating is not a call: the call counters stay at zero.
        let text = render([("math", &stats)].into_iter(), 1, &NestedCalls::default());
        let line = |suffix: &str| format!("wasmrpc_instantiate_duration_seconds_{suffix}\n");
        assert!(text.contains(&line("bucket{procedure=\"math\",le=\"0.00001\"} 1")), "{text}");
        assert!(text.contains(&line("bucket{procedure=\"math\",le=\"0.000025\"} 1")), "{text}");
        assert!(text.contains(&line("bucket{procedure=\"math\",le=\"0.00005\"} 2")), "{text}");
        assert!(text.contains(&line("bucket{procedure=\"math\",le=\"0.1\"} 2")), "{text}");
        assert!(text.contains(&line("bucket{procedure=\"math\",le=\"+Inf\"} 3")), "{text}");
        assert!(text.contains(&line("sum{procedure=\"math\"} 0.300048")), "{text}");
        assert!(text.contains(&line("count{procedure=\"math\"} 3")), "{text}");
        assert!(text.contains("wasmrpc_calls_total{procedure=\"math\"} 0\n"), "{text}");
        assert!(text.contains("wasmrpc_call_duration_seconds_count{procedure=\"math\"} 0\n"), "{text}");
        // Each family is one block: its HELP and TYPE once, its samples together.
        assert_eq!(text.matches("# TYPE wasmrpc_instantiate_duration_seconds").count(), 1);
        let first = text.find("wasmrpc_instantiate_duration_seconds_bucket").unwrap();
        assert!(text[first..].lines().all(|l| l.starts_with("wasmrpc_instantiate_duration_seconds_")), "{text}");
    }
}
