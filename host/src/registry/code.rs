//! Loaded code: the compiled components in memory, one per sha256 however
//! many procedures and versions serve it, at most `--max-loaded-mib` of them.
//!
//! A version's code is loaded at its first call (from the compiled-code
//! cache in the data dir: a map of the file and a link, milliseconds), or
//! at its deploy (it was just compiled), and kept by the version until it
//! is unloaded. Past the bound, the code whose versions were called least
//! recently is unloaded first; the version loads it again at its next call.
//! Code being inserted is never the one unloaded, so one component larger
//! than the bound still serves. Instances running or kept (ready, reused)
//! hold their code until they go, whatever this table says.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::sandbox::Compiled;

/// The loaded components, by sha256, and how much memory they take.
pub(super) struct LoadedCode {
    max_bytes: u64,
    inner: Mutex<Inner>,
    /// Loads at a call (a version whose code was not in memory).
    loads: AtomicU64,
}

#[derive(Default)]
struct Inner {
    by_sha: HashMap<String, (Compiled, u64)>,
    bytes: u64,
}

impl LoadedCode {
    pub(super) fn new(max_bytes: u64) -> LoadedCode {
        LoadedCode { max_bytes, inner: Mutex::default(), loads: AtomicU64::new(0) }
    }

    /// The code of `sha256`, if loaded.
    pub(super) fn get(&self, sha256: &str) -> Option<Compiled> {
        self.lock().by_sha.get(sha256).map(|(code, _)| code.clone())
    }

    /// Keeps `code` as the code of `sha256` (the one already loaded, if
    /// another load got there first, which is answered), and unloads past
    /// the bound: `last_used()`, asked only then, tells how recently each
    /// sha256 was called (a higher number is more recent; absent: never).
    /// Answers the code to use and the shas unloaded, whose versions must
    /// forget their code.
    pub(super) fn insert(
        &self,
        sha256: &str,
        code: Compiled,
        last_used: impl FnOnce() -> HashMap<String, u64>,
    ) -> (Compiled, Vec<String>) {
        let mut inner = self.lock();
        if let Some((kept, _)) = inner.by_sha.get(sha256) {
            return (kept.clone(), Vec::new());
        }
        let bytes = code.code_bytes();
        inner.bytes += bytes;
        inner.by_sha.insert(sha256.to_owned(), (code.clone(), bytes));
        let mut unloaded = Vec::new();
        if inner.bytes > self.max_bytes {
            let last_used = last_used();
            let recency = |sha: &String| last_used.get(sha).copied().unwrap_or(0);
            let mut candidates: Vec<(u64, String)> =
                inner.by_sha.keys().filter(|s| *s != sha256).map(|s| (recency(s), s.clone())).collect();
            candidates.sort_unstable();
            for (_, sha) in candidates {
                if inner.bytes <= self.max_bytes {
                    break;
                }
                if let Some((_, freed)) = inner.by_sha.remove(&sha) {
                    inner.bytes -= freed;
                    unloaded.push(sha);
                }
            }
        }
        (code, unloaded)
    }

    /// Counts a load at a call.
    pub(super) fn record_load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// Unloads the code no serving version uses.
    pub(super) fn retain(&self, serving: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        let gone: Vec<String> = inner.by_sha.keys().filter(|s| !serving(s)).cloned().collect();
        for sha in gone {
            if let Some((_, freed)) = inner.by_sha.remove(&sha) {
                inner.bytes -= freed;
            }
        }
    }

    /// Components loaded, their bytes, and the loads made at a call so far.
    pub(super) fn figures(&self) -> (usize, u64, u64) {
        let inner = self.lock();
        (inner.by_sha.len(), inner.bytes, self.loads.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
