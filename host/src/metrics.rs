//! Counters for `GET /metrics`, in the Prometheus text format: calls, errors by
//! JSON-RPC code and a latency histogram per procedure. A call touches only
//! atomics of its own procedure; the error map is locked on errors alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// One procedure's counters; shared by all its versions.
#[derive(Default)]
pub struct ProcStats {
    calls: AtomicU64,
    /// Per bucket, then one for +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    micros_sum: AtomicU64,
    errors: Mutex<BTreeMap<i32, u64>>,
}

impl ProcStats {
    /// Records one finished call; `error_code` is the JSON-RPC code it ended with.
    pub fn record(&self, elapsed: Duration, error_code: Option<i32>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&b| secs <= b).unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.micros_sum.fetch_add(micros, Ordering::Relaxed);
        if let Some(code) = error_code {
            let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
            *errors.entry(code).or_default() += 1;
        }
    }
}

/// Renders the text exposition of every procedure's counters.
pub fn render<'a>(procedures: impl Iterator<Item = (&'a str, &'a ProcStats)>, deployed: usize) -> String {
    let mut calls =
        String::from("# HELP wasmrpc_calls_total Calls answered, per procedure.\n# TYPE wasmrpc_calls_total counter\n");
    let mut errors = String::from(
        "# HELP wasmrpc_errors_total Calls that ended in an error, per procedure and JSON-RPC code.\n# TYPE wasmrpc_errors_total counter\n",
    );
    let mut latency = String::from(
        "# HELP wasmrpc_call_duration_seconds Time from dispatch to result, per procedure.\n# TYPE wasmrpc_call_duration_seconds histogram\n",
    );
    for (name, stats) in procedures {
        let total = stats.calls.load(Ordering::Relaxed);
        let _ = writeln!(calls, "wasmrpc_calls_total{{procedure=\"{name}\"}} {total}");
        for (code, n) in stats.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(errors, "wasmrpc_errors_total{{procedure=\"{name}\",code=\"{code}\"}} {n}");
        }
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += stats.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                latency,
                "wasmrpc_call_duration_seconds_bucket{{procedure=\"{name}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += stats.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let sum = stats.micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            latency,
            "wasmrpc_call_duration_seconds_bucket{{procedure=\"{name}\",le=\"+Inf\"}} {cumulative}\n\
             wasmrpc_call_duration_seconds_sum{{procedure=\"{name}\"}} {sum}\n\
             wasmrpc_call_duration_seconds_count{{procedure=\"{name}\"}} {cumulative}\n"
        );
    }
    format!(
        "# HELP wasmrpc_procedures_deployed Procedures serving now.\n# TYPE wasmrpc_procedures_deployed gauge\nwasmrpc_procedures_deployed {deployed}\n{calls}{errors}{latency}"
    )
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
        let text = render([("math", &stats)].into_iter(), 1);
        assert!(text.contains("wasmrpc_calls_total{procedure=\"math\"} 3"));
        assert!(text.contains("wasmrpc_errors_total{procedure=\"math\",code=\"-32000\"} 1"));
        assert!(text.contains("le=\"0.0001\"} 1\n"));
        assert!(text.contains("le=\"0.005\"} 2\n"));
        assert!(text.contains("le=\"+Inf\"} 3\n"));
        assert!(text.contains("wasmrpc_procedures_deployed 1"));
    }
}
