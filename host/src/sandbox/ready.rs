//! Instances made ahead of calls, and used ones dropped after them, off the
//! request's path.
//!
//! A call then only configures a fresh, never-called instance and calls it.
//! Making the next one and returning the used one to the pool (its reset
//! clears the pages it dirtied) run in a task of their own, which tokio runs
//! right after the answer is written, or on an idle worker. At low load this
//! takes instantiation and teardown out of the latency; the work per call is
//! the same.
//!
//! Bounded: at most `capacity` instances are held here or being made, across
//! all procedures. They are kept oldest first, and a procedure called now
//! evicts the one not called for longest, so an idle procedure holds
//! nothing for long, and a redeployed version's instances go as soon as
//! another is made (their key is dead). Background tasks are bounded too:
//! past `capacity` of them, a used instance is dropped in place and no new
//! one is made, so teardown never queues up behind a busy runtime.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

struct Entry<T> {
    key: Weak<()>,
    ready: T,
}

/// The shared set of ready instances `T` (see the module's documentation),
/// each kept for the version whose key made it.
pub(super) struct Ready<T> {
    capacity: usize,
    /// The most one version may hold: one per worker thread.
    per_version: usize,
    inner: Mutex<Inner<T>>,
    /// Background tasks started and not finished: at most `capacity`.
    tasks: AtomicUsize,
    /// How often the runtime's workers had parked at the last call.
    parks: AtomicU64,
}

struct Inner<T> {
    /// Oldest first.
    entries: VecDeque<Entry<T>>,
    /// Entries plus instances being made: at most `capacity`.
    held: usize,
}

impl<T> Ready<T> {
    pub(super) fn new(capacity: usize, per_version: usize) -> Ready<T> {
        Ready {
            capacity,
            per_version,
            inner: Mutex::new(Inner { entries: VecDeque::new(), held: 0 }),
            tasks: AtomicUsize::new(0),
            parks: AtomicU64::new(0),
        }
    }

    /// Whether a worker of the current tokio runtime parked (found nothing
    /// to do) since the previous time this was asked: whether there is idle
    /// time for background work. False outside a runtime.
    pub(super) fn idle_since_last_call(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return false };
        let metrics = runtime.metrics();
        let parks = (0..metrics.num_workers()).map(|w| metrics.worker_park_count(w)).sum();
        self.parks.swap(parks, Ordering::Relaxed) != parks
    }

    /// Whether instances are made ahead at all (`--ready-instances 0`: no).
    pub(super) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// A ready instance of the version `key`, if one is.
    pub(super) fn take(&self, key: &Arc<()>) -> Option<T> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.lock();
        let at = inner.entries.iter().position(|e| is_key(&e.key, key))?;
        let entry = inner.entries.remove(at)?;
        inner.held -= 1;
        Some(entry.ready)
    }

    /// Claims a background task, if fewer than `capacity` run.
    pub(super) fn start_task(&self) -> bool {
        let claimed = self.tasks.fetch_add(1, Ordering::Relaxed) < self.capacity;
        if !claimed {
            self.tasks.fetch_sub(1, Ordering::Relaxed);
        }
        claimed
    }

    pub(super) fn end_task(&self) {
        self.tasks.fetch_sub(1, Ordering::Relaxed);
    }

    /// Claims room to make one more instance of `key`. Makes room, when
    /// full, by evicting the oldest entry of another version; entries of
    /// versions no longer deployed always go. Returns whether to make one,
    /// and the evicted instances, to be dropped outside the lock.
    pub(super) fn reserve(&self, key: &Arc<()>) -> (bool, Vec<T>) {
        let mut evicted = Vec::new();
        let mut inner = self.lock();
        let mut at = 0;
        while at < inner.entries.len() {
            if inner.entries[at].key.strong_count() == 0 {
                evicted.extend(inner.entries.remove(at).map(|e| e.ready));
                inner.held -= 1;
            } else {
                at += 1;
            }
        }
        if inner.entries.iter().filter(|e| is_key(&e.key, key)).count() >= self.per_version {
            return (false, evicted);
        }
        if inner.held < self.capacity {
            inner.held += 1;
            return (true, evicted);
        }
        match inner.entries.iter().position(|e| !is_key(&e.key, key)) {
            // One out, one in: `held` stays.
            Some(oldest) => {
                evicted.extend(inner.entries.remove(oldest).map(|e| e.ready));
                (true, evicted)
            }
            None => (false, evicted),
        }
    }

    /// Keeps `ready`, made for `key` after [`Ready::reserve`] said so.
    pub(super) fn put(&self, key: &Arc<()>, ready: T) {
        self.lock().entries.push_back(Entry { key: Arc::downgrade(key), ready });
    }

    /// Gives back a reservation whose instance could not be made.
    pub(super) fn unreserve(&self) {
        self.lock().held -= 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_key(weak: &Weak<()>, key: &Arc<()>) -> bool {
    std::ptr::eq(weak.as_ptr(), Arc::as_ptr(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes one instance of `key` if `reserve` allows; answers the evicted.
    fn make(ready: &Ready<u32>, key: &Arc<()>, value: u32) -> Option<Vec<u32>> {
        let (make, evicted) = ready.reserve(key);
        make.then(|| {
            ready.put(key, value);
            evicted
        })
    }

    #[test]
    fn bounded_per_version_and_in_all_oldest_other_version_evicted() {
        let ready = Ready::new(3, 2);
        let (a, b, c) = (Arc::new(()), Arc::new(()), Arc::new(()));
        assert_eq!(make(&ready, &a, 1), Some(vec![]));
        assert_eq!(make(&ready, &a, 2), Some(vec![]));
        // Two of `a` already: no third.
        assert_eq!(make(&ready, &a, 3), None);
        assert_eq!(make(&ready, &b, 4), Some(vec![]));
        // Full: `c` evicts the oldest entry of another version.
        assert_eq!(make(&ready, &c, 5), Some(vec![1]));
        assert_eq!(ready.take(&a), Some(2));
        assert_eq!(ready.take(&a), None);
        assert_eq!(ready.take(&c), Some(5));
        // A version no longer deployed loses its instances at the next reserve.
        drop(b);
        assert_eq!(make(&ready, &a, 6), Some(vec![4]));
        assert_eq!(ready.lock().held, 1);
        // A failed make gives its room back.
        assert!(ready.reserve(&c).0);
        ready.unreserve();
        assert_eq!(ready.lock().held, 1);
    }

    #[test]
    fn off_holds_nothing_and_background_tasks_are_bounded() {
        let off: Ready<u32> = Ready::new(0, 2);
        assert!(!off.start_task());
        let key = Arc::new(());
        assert!(!off.reserve(&key).0);
        assert_eq!(off.take(&key), None);
        let ready: Ready<u32> = Ready::new(2, 1);
        assert!(ready.start_task() && ready.start_task());
        assert!(!ready.start_task());
        ready.end_task();
        assert!(ready.start_task());
    }
}
