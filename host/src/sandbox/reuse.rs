//! Instance reuse, opted into per deploy (`PUT /procedures/{name}?reuse=N`):
//! a version's setting ([`Reuse`], kept with the version), and the idle
//! instances of such versions between their calls ([`Idle`]).
//!
//! A reused instance keeps its memory, its globals and its WASI state (open
//! streams and other resources) from one call to the next: that is the
//! point (a cache, parsed configuration, an interpreter's loaded modules).
//! Each call still gets its own request id, deadline, place in its call
//! tree and log and output budgets (`CallState::next_call`); the memory
//! limit is the instance's.
//!
//! An instance is out of [`Idle`] while a call runs in it, so it serves one
//! call at a time, and it is keyed by its version (like `ready.rs`), so it
//! serves no other procedure or version. The sandbox puts it back after a
//! call that ended with an answer or the guest's own error, if it has served
//! fewer than N calls and its memory is within the version's ceiling; after
//! a trap, a time or memory limit or any other error raised by the host it
//! is dropped. Idle instances are dropped after the version's idle time (a
//! sweep every [`SWEEP_EVERY`]) and once the version no longer serves.
//!
//! Bounded: at most `capacity` (`--max-idle-instances`) idle instances across
//! all versions, the longest idle dropped first to make room. Running ones
//! are bounded by the calls running (the call slots); a version's
//! concurrent calls each use an instance of their own, and a call takes
//! the most recently used one, so instances a burst needed idle out after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often idle instances past their idle time are dropped.
pub(super) const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The most calls per instance a deploy may ask for.
pub(super) const MAX_REUSE_CALLS: u32 = 1_000_000;
/// The longest idle time a deploy may ask for: one hour.
pub(super) const MAX_REUSE_IDLE_MS: u64 = 3_600_000;
/// The idle time when a deploy names none: 30 s.
pub(super) const DEFAULT_REUSE_IDLE_MS: u64 = 30_000;

/// A version's instance reuse (`?reuse=N&reuse-idle-ms=T&reuse-memory-mib=M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reuse {
    /// Calls per instance; 1: a fresh instance per call (the default).
    pub calls: u32,
    /// An instance idle this long is dropped.
    pub idle_ms: u64,
    /// An instance whose linear memory is above this many MiB after a call
    /// is dropped; `None`: only the server's memory limit applies.
    pub memory_mib: Option<u64>,
}

impl Default for Reuse {
    fn default() -> Self {
        Reuse { calls: 1, idle_ms: DEFAULT_REUSE_IDLE_MS, memory_mib: None }
    }
}

impl Reuse {
    /// Whether each call gets a fresh instance (`reuse=1`, the default).
    pub fn is_fresh(&self) -> bool {
        self.calls <= 1
    }

    /// The setting a deploy's query string asks for (`reuse`,
    /// `reuse-idle-ms`, `reuse-memory-mib`; other keys are not ours), or
    /// what is wrong with it.
    pub fn from_query(query: Option<&str>) -> Result<Reuse, String> {
        Reuse::from_pairs(form_urlencoded::parse(query.unwrap_or_default().as_bytes()))
    }

    /// The setting named by `pairs` of a key (`reuse`, `reuse-idle-ms`,
    /// `reuse-memory-mib`; other keys are not ours) and its value as text,
    /// or what is wrong with it.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Reuse, String>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut reuse = Reuse::default();
        let (mut idle, mut memory) = (false, false);
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            let number =
                |max: u64, what: &str| {
                    value.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                        format!("invalid {key}={value}: expected {what}, a whole number from 1 to {max}")
                    })
                };
            match key {
                "reuse" => {
                    let calls =
                        number(u64::from(MAX_REUSE_CALLS), "calls per instance (1: a fresh instance per call)")?;
                    reuse.calls = u32::try_from(calls).unwrap_or(MAX_REUSE_CALLS);
                }
                "reuse-idle-ms" => {
                    reuse.idle_ms = number(MAX_REUSE_IDLE_MS, "milliseconds an instance may stay idle")?;
                    idle = true;
                }
                "reuse-memory-mib" => {
                    reuse.memory_mib = Some(number(1 << 16, "MiB of memory an instance may keep between calls")?);
                    memory = true;
                }
                _ => {}
            }
        }
        if reuse.is_fresh() && (idle || memory) {
            let named = if idle { "reuse-idle-ms" } else { "reuse-memory-mib" };
            return Err(format!("{named} applies only to reused instances: add reuse=N (calls per instance, N > 1)"));
        }
        Ok(reuse)
    }
}

struct Entry<T> {
    key: Weak<()>,
    expires: Instant,
    item: T,
}

/// The idle reused instances `T` of every version (see the module's
/// documentation), oldest first.
pub(super) struct Idle<T> {
    capacity: usize,
    entries: Mutex<Vec<Entry<T>>>,
    /// Whether the sweeping task was started.
    sweeping: AtomicBool,
}

impl<T: Send + 'static> Idle<T> {
    pub(super) fn new(capacity: usize) -> Idle<T> {
        Idle { capacity, entries: Mutex::new(Vec::new()), sweeping: AtomicBool::new(false) }
    }

    /// The most recently used idle instance of the version `key`, if one is
    /// and its idle time has not passed.
    pub(super) fn take(&self, key: &Arc<()>) -> Option<T> {
        let now = Instant::now();
        let mut entries = self.lock();
        let at = entries.iter().rposition(|e| is_key(&e.key, key) && e.expires > now)?;
        Some(entries.remove(at).item)
    }

    /// Keeps `item`, an instance of the version `key`, for at most `idle`.
    /// Returns what must be dropped (outside the lock): the longest idle one
    /// if full (or `item` itself when nothing may be kept). Instances of
    /// versions no longer serving are the sweep's to drop, not each call's.
    pub(super) fn put(self: &Arc<Self>, key: &Arc<()>, item: T, idle: Duration) -> Vec<T> {
        if self.capacity == 0 {
            return vec![item];
        }
        self.start_sweeping();
        let mut entries = self.lock();
        let dropped = if entries.len() >= self.capacity { vec![entries.remove(0).item] } else { Vec::new() };
        entries.push(Entry { key: Arc::downgrade(key), expires: Instant::now() + idle, item });
        dropped
    }

    /// Removes the instances idle past their time, or of versions no longer
    /// serving, for the caller to drop outside the lock.
    pub(super) fn sweep(&self, now: Instant) -> Vec<T> {
        drain(&mut self.lock(), |e| e.expires <= now || e.key.strong_count() == 0)
    }

    /// How many instances are idle now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Starts, once, the task that sweeps every [`SWEEP_EVERY`] while the
    /// sandbox lives (it holds no strong reference).
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Relaxed);
            return;
        };
        let idle = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(idle) = idle.upgrade() else { return };
                drop(idle.sweep(Instant::now()));
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry<T>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes the entries `gone` says to, keeping the others' order.
fn drain<T>(entries: &mut Vec<Entry<T>>, gone: impl Fn(&Entry<T>) -> bool) -> Vec<T> {
    let mut removed = Vec::new();
    let mut at = 0;
    while at < entries.len() {
        if gone(&entries[at]) {
            removed.push(entries.remove(at).item);
        } else {
            at += 1;
        }
    }
    removed
}

fn is_key(weak: &Weak<()>, key: &Arc<()>) -> bool {
    std::ptr::eq(weak.as_ptr(), Arc::as_ptr(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_asks_for_reuse_or_says_what_is_wrong() {
        assert_eq!(Reuse::from_query(None), Ok(Reuse::default()));
        assert_eq!(Reuse::from_query(Some("allow-outbound=http://a")), Ok(Reuse::default()));
        assert_eq!(
            Reuse::from_query(Some("reuse=3&reuse-idle-ms=500&reuse-memory-mib=20")),
            Ok(Reuse { calls: 3, idle_ms: 500, memory_mib: Some(20) })
        );
        assert!(Reuse::from_query(Some("reuse=1")).unwrap().is_fresh());
        for (query, says) in [
            ("reuse=0", "invalid reuse=0: expected calls per instance"),
            ("reuse=x", "invalid reuse=x"),
            ("reuse=1000001", "from 1 to 1000000"),
            ("reuse=2&reuse-idle-ms=0", "invalid reuse-idle-ms=0"),
            ("reuse=2&reuse-memory-mib=-1", "invalid reuse-memory-mib=-1"),
            ("reuse-idle-ms=10", "reuse-idle-ms applies only to reused instances"),
            ("reuse=1&reuse-memory-mib=10", "reuse-memory-mib applies only"),
        ] {
            let err = Reuse::from_query(Some(query)).unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
        // What `wasmrpc deploy --reuse 5 --reuse-idle-ms 1000 --reuse-memory-mib 8` sends.
        let reuse = Reuse { calls: 5, idle_ms: 1000, memory_mib: Some(8) };
        assert_eq!(Reuse::from_query(Some("reuse=5&reuse-idle-ms=1000&reuse-memory-mib=8")), Ok(reuse));
        assert!(Reuse::default().is_fresh());
    }

    #[test]
    fn idle_instances_are_taken_newest_first_per_version_and_bounded() {
        let idle = Arc::new(Idle::new(3));
        let (a, b) = (Arc::new(()), Arc::new(()));
        let long = Duration::from_secs(60);
        assert!(idle.put(&a, 1, long).is_empty());
        assert!(idle.put(&a, 2, long).is_empty());
        assert!(idle.put(&b, 3, long).is_empty());
        // Full: the longest idle goes.
        assert_eq!(idle.put(&b, 4, long), vec![1]);
        assert_eq!(idle.take(&a), Some(2));
        assert_eq!(idle.take(&a), None);
        assert_eq!(idle.take(&b), Some(4));
        // A version no longer serving loses its instances.
        drop(b);
        assert_eq!(idle.sweep(Instant::now()), vec![3]);
        // Past its idle time an instance is not taken, and the sweep drops it.
        assert!(idle.put(&a, 5, Duration::ZERO).is_empty());
        assert_eq!(idle.take(&a), None);
        assert_eq!(idle.sweep(Instant::now()), vec![5]);
        assert_eq!(idle.len(), 0);
        let none: Arc<Idle<u32>> = Arc::new(Idle::new(0));
        assert_eq!(none.put(&a, 6, long), vec![6]);
    }
}
