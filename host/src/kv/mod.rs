//! Procedures' durable key-value state (`wasi:keyvalue`): what a bucket is,
//! the limits every backend enforces, and the one API the sandbox's
//! capability (`sandbox/capabilities/keyvalue.rs`), the admin API and the
//! CLI use. Two backends keep the data: an embedded database file in the
//! data dir (`embedded.rs`, one machine) and a table in the shared
//! PostgreSQL registry (`pg.rs`, every replica sees the same data).
//!
//! A bucket belongs to the procedure *name* that opened it: `open("default")`
//! in `notes` is `(notes, default)`, whatever version runs, and the name is
//! never taken from the guest. Data outlives versions, redeploys and
//! `DELETE /procedures/{name}`; only [`Kv::erase`] removes it.
//!
//! Writes are durable when they return: the embedded backend commits
//! concurrent calls' writes together (group commit), PostgreSQL commits each
//! statement. Counters are decimal text (`"12800"`), as wasmtime's
//! `wasi-keyvalue` keeps them, so `get` of a counter is valid JSON.

pub mod embedded;
pub mod pg;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Default `--kv-max-key-bytes`: longest key, in bytes of UTF-8.
pub const DEFAULT_MAX_KEY_BYTES: usize = 256;
/// Largest `--kv-max-key-bytes`: a key is part of every index entry.
pub const MAX_KEY_BYTES_LIMIT: usize = 4096;
/// Default `--kv-max-value-kib`: largest value (1 MiB).
pub const DEFAULT_MAX_VALUE_KIB: usize = 1024;
/// Largest `--kv-max-value-kib`: a value is held in memory whole.
pub const MAX_VALUE_KIB_LIMIT: usize = 64 * 1024;
/// Default `--kv-quota-mib`: bytes of keys and values one procedure may keep.
pub const DEFAULT_QUOTA_MIB: u64 = 64;
/// Default `--kv-page-keys`: most keys in one page of `list-keys` (and of
/// the admin API's listing).
pub const DEFAULT_PAGE_KEYS: usize = 1000;
/// Longest bucket name (`open`'s identifier), in bytes of UTF-8.
pub const MAX_BUCKET_BYTES: usize = 256;
/// Most keys in one `get-many`, `set-many` or `delete-many`.
pub const MAX_BATCH_KEYS: usize = 1000;

/// The limits of procedures' key-value use, each a flag of `wasmrpc serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// `--kv-max-key-bytes`.
    pub max_key_bytes: usize,
    /// `--kv-max-value-kib`, in bytes.
    pub max_value_bytes: usize,
    /// `--kv-quota-mib`, in bytes: keys and values of all of a procedure's buckets.
    pub quota_bytes: u64,
    /// `--kv-page-keys`.
    pub page_keys: usize,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_KIB << 10,
            quota_bytes: DEFAULT_QUOTA_MIB << 20,
            page_keys: DEFAULT_PAGE_KEYS,
        }
    }
}

/// Why a key-value operation failed. The guest gets `other(message)` (or
/// `no-such-store` for a bad bucket name); the admin API an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("key of {0} bytes is too long: keys are at most {1} bytes (--kv-max-key-bytes)")]
    KeyTooLong(usize, usize),
    #[error("bucket name of {0} bytes is too long: bucket names are at most {MAX_BUCKET_BYTES} bytes")]
    BucketTooLong(usize),
    #[error("value of {0} bytes is too large: values are at most {1} bytes (--kv-max-value-kib)")]
    ValueTooLarge(usize, usize),
    #[error("{0} keys in one batch: at most {MAX_BATCH_KEYS}")]
    BatchTooLong(usize),
    #[error(
        "procedure `{procedure}` would keep {would} bytes of key-value data, past its quota of \
         {quota_mib} MiB (--kv-quota-mib)"
    )]
    Quota { procedure: String, would: u64, quota_mib: u64 },
    #[error("the value of key {0:?} is not a decimal integer: it cannot be incremented")]
    NotAnInteger(String),
    #[error("incrementing key {0:?} would overflow a 64-bit integer")]
    Overflow(String),
    #[error("not a valid cursor: {0}")]
    BadCursor(String),
    /// The backend failed (disk, database): the message the guest sees
    /// says so without the details, which are logged.
    #[error("key-value storage failed: {0:#}")]
    Storage(anyhow::Error),
}

impl KvError {
    /// The text a guest or a client may see: a storage failure's details
    /// (paths, hostnames) stay in the server log.
    pub fn public_message(&self, request_id: u64) -> String {
        match self {
            KvError::Storage(e) => {
                tracing::error!(request_id, "key-value storage failed: {e:#}");
                format!("key-value storage failed (request id {request_id}; the server log has the details)")
            }
            other => other.to_string(),
        }
    }
}

impl From<anyhow::Error> for KvError {
    fn from(e: anyhow::Error) -> Self {
        KvError::Storage(e)
    }
}

/// One key's write. A list of them is applied in order; each key's write is
/// atomic, the list is not (like `set-many` in the WIT).
#[derive(Debug, Clone)]
pub enum Write {
    Set {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Adds `delta` to the key's decimal value (absent: 0).
    Increment {
        key: String,
        delta: i64,
    },
    /// Sets `value` if the key's value is `expected` (`None`: absent).
    Swap {
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    },
}

impl Write {
    /// The key written.
    pub(crate) fn key(&self) -> &str {
        match self {
            Write::Set { key, .. } | Write::Delete { key } | Write::Increment { key, .. } | Write::Swap { key, .. } => {
                key
            }
        }
    }

    /// Bytes the write carries, for `/metrics`.
    fn bytes(&self) -> u64 {
        let value = match self {
            Write::Set { value, .. } | Write::Swap { value, .. } => value.len(),
            Write::Delete { .. } | Write::Increment { .. } => 0,
        };
        (self.key().len() + value) as u64
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done,
    /// An increment's new value.
    Counter(i64),
    /// A swap that found another value (`None`: the key is absent): nothing written.
    SwapFailed(Option<Vec<u8>>),
}

/// Where a listing starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// At the first key.
    First,
    /// After this key (a `draft2` or admin cursor).
    After(String),
    /// After this many keys (a `draft` cursor, which is a number).
    Skip(u64),
}

/// One page of keys (with their values when asked), in byte order.
#[derive(Debug, Default)]
pub struct Page {
    pub entries: Vec<(String, Option<Vec<u8>>)>,
    /// `true` when keys follow the last one.
    pub more: bool,
}

/// A bucket of a procedure, for operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BucketInfo {
    pub bucket: String,
    pub keys: u64,
    /// Bytes of keys and values; what the quota counts.
    pub bytes: u64,
}

/// The key-value state of every procedure, on one backend.
pub struct Kv {
    backend: Backend,
    limits: KvLimits,
    stats: Mutex<HashMap<String, Arc<KvStats>>>,
}

/// The backend. PostgreSQL's futures (a pool's, a client's) are large:
/// each is boxed where it is awaited, so that every [`Kv`] future stays
/// small for the embedded store, which callers move and copy (callgrind,
/// one guest `get` per call: 147,298 instructions per call with the
/// PostgreSQL futures inline, most of the difference `memcpy`; 95,706 boxed).
enum Backend {
    Embedded(embedded::Embedded),
    Postgres(pg::PgKv),
}

/// Operations, bytes and errors of one procedure's key-value use.
#[derive(Default)]
pub struct KvStats {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
}

/// Checks a bucket name.
pub fn check_bucket(bucket: &str) -> Result<(), KvError> {
    if bucket.len() > MAX_BUCKET_BYTES {
        return Err(KvError::BucketTooLong(bucket.len()));
    }
    Ok(())
}

impl KvLimits {
    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() > self.max_key_bytes {
            return Err(KvError::KeyTooLong(key.len(), self.max_key_bytes));
        }
        Ok(())
    }

    fn check_write(&self, write: &Write) -> Result<(), KvError> {
        self.check_key(write.key())?;
        match write {
            Write::Set { value, .. } | Write::Swap { value, .. } if value.len() > self.max_value_bytes => {
                Err(KvError::ValueTooLarge(value.len(), self.max_value_bytes))
            }
            _ => Ok(()),
        }
    }
}

/// A counter's value after adding `delta` to `old` (absent: 0).
pub(crate) fn incremented(key: &str, old: Option<&[u8]>, delta: i64) -> Result<i64, KvError> {
    let current = match old {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| KvError::NotAnInteger(key.to_owned()))?,
    };
    current.checked_add(delta).ok_or_else(|| KvError::Overflow(key.to_owned()))
}

impl Kv {
    /// The embedded store in `data_dir` (`kv.redb`), made if absent. Blocking.
    pub fn embedded(data_dir: &std::path::Path, limits: KvLimits) -> anyhow::Result<Kv> {
        Ok(Kv::with(Backend::Embedded(embedded::Embedded::open(data_dir)?), limits))
    }

    /// The table in the shared registry.
    pub fn postgres(kv: pg::PgKv, limits: KvLimits) -> Kv {
        Kv::with(Backend::Postgres(kv), limits)
    }

    fn with(backend: Backend, limits: KvLimits) -> Kv {
        Kv { backend, limits, stats: Mutex::default() }
    }

    /// The limits every operation is held to.
    pub fn limits(&self) -> &KvLimits {
        &self.limits
    }

    /// The counters of `procedure`.
    pub fn stats(&self, procedure: &str) -> Arc<KvStats> {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stats.get(procedure) {
            return s.clone();
        }
        stats.entry(procedure.to_owned()).or_default().clone()
    }

    /// Every procedure's counters, by name, for `/metrics`.
    pub fn all_stats(&self) -> Vec<(String, Arc<KvStats>)> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = stats.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Counts one read that returned `bytes` of values, or failed.
    fn count_read<T>(&self, procedure: &str, result: &Result<T, KvError>, bytes: u64) {
        let stats = self.stats(procedure);
        match result {
            Ok(_) => {
                stats.reads.fetch_add(1, Ordering::Relaxed);
                stats.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The values of `keys` in `procedure`'s `bucket` (`None`: absent).
    pub async fn get_many(
        &self,
        procedure: &str,
        bucket: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let result = self.get_many_unmetered(procedure, bucket, keys).await;
        let bytes = result.as_ref().map_or(0, |vs| vs.iter().flatten().map(|v| v.len() as u64).sum());
        self.count_read(procedure, &result, bytes);
        result
    }

    async fn get_many_unmetered(
        &self,
        procedure: &str,
        bucket: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        check_bucket(bucket)?;
        if keys.len() > MAX_BATCH_KEYS {
            return Err(KvError::BatchTooLong(keys.len()));
        }
        keys.iter().try_for_each(|k| self.limits.check_key(k))?;
        match &self.backend {
            Backend::Embedded(db) => db.get_many(procedure, bucket, keys),
            Backend::Postgres(db) => Box::pin(db.get_many(procedure, bucket, keys)).await,
        }
    }

    /// The value of `key` in `procedure`'s `bucket`.
    pub async fn get(&self, procedure: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.get_many(procedure, bucket, &[key]).await?.pop().flatten())
    }

    /// Applies `writes` to `procedure`'s `bucket` in order, durably: each
    /// has its own outcome (a refused write does not stop the others). The
    /// outer error is a failure of the whole list (a bad bucket name, a
    /// list too long, the storage).
    pub async fn write(
        &self,
        procedure: &str,
        bucket: &str,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<Written, KvError>>, KvError> {
        let written: u64 = writes.iter().map(Write::bytes).sum();
        let result = self.write_unmetered(procedure, bucket, writes).await;
        // One write operation, and an error for each write refused (or one
        // for the whole list).
        let stats = self.stats(procedure);
        let failed = match &result {
            Ok(outcomes) => {
                stats.writes.fetch_add(1, Ordering::Relaxed);
                stats.bytes_written.fetch_add(written, Ordering::Relaxed);
                outcomes.iter().filter(|o| o.is_err()).count() as u64
            }
            Err(_) => 1,
        };
        stats.errors.fetch_add(failed, Ordering::Relaxed);
        result
    }

    async fn write_unmetered(
        &self,
        procedure: &str,
        bucket: &str,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<Written, KvError>>, KvError> {
        check_bucket(bucket)?;
        if writes.len() > MAX_BATCH_KEYS {
            return Err(KvError::BatchTooLong(writes.len()));
        }
        // Writes that fail the limits never reach the backend.
        let checked: Vec<Result<Write, KvError>> =
            writes.into_iter().map(|w| self.limits.check_write(&w).map(|()| w)).collect();
        let valid: Vec<Write> = checked.iter().filter_map(|w| w.as_ref().ok().cloned()).collect();
        let mut applied = if valid.is_empty() {
            Vec::new()
        } else {
            match &self.backend {
                Backend::Embedded(db) => db.write(procedure, bucket, valid, self.limits.quota_bytes).await?,
                Backend::Postgres(db) => Box::pin(db.write(procedure, bucket, valid, self.limits.quota_bytes)).await?,
            }
        }
        .into_iter();
        Ok(checked
            .into_iter()
            .map(|w| match w {
                Ok(_) => {
                    applied.next().unwrap_or_else(|| Err(KvError::Storage(anyhow::anyhow!("a write went missing"))))
                }
                Err(e) => Err(e),
            })
            .collect())
    }

    /// One write's outcome.
    pub async fn write_one(&self, procedure: &str, bucket: &str, write: Write) -> Result<Written, KvError> {
        self.write(procedure, bucket, vec![write])
            .await?
            .pop()
            .unwrap_or_else(|| Err(KvError::Storage(anyhow::anyhow!("a write went missing"))))
    }

    /// Up to `limit` (at most `--kv-page-keys`) keys of `procedure`'s
    /// `bucket` that start with `prefix`, from `start`, in byte order.
    pub async fn list(
        &self,
        procedure: &str,
        bucket: &str,
        prefix: &str,
        start: &Start,
        limit: usize,
        values: bool,
    ) -> Result<Page, KvError> {
        check_bucket(bucket)?;
        let limit = limit.clamp(1, self.limits.page_keys);
        let result = match &self.backend {
            Backend::Embedded(db) => db.list(procedure, bucket, prefix, start, limit, values),
            Backend::Postgres(db) => Box::pin(db.list(procedure, bucket, prefix, start, limit, values)).await,
        };
        self.count_read(procedure, &result, 0);
        result
    }

    /// `procedure`'s buckets with their key counts and bytes, by name.
    pub async fn buckets(&self, procedure: &str) -> Result<Vec<BucketInfo>, KvError> {
        let mut buckets = match &self.backend {
            Backend::Embedded(db) => db.buckets(procedure)?,
            Backend::Postgres(db) => Box::pin(db.buckets(procedure)).await?,
        };
        // By name, whatever order the backend keeps them in.
        buckets.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        Ok(buckets)
    }

    /// Removes all of `procedure`'s data; answers how many keys it had.
    pub async fn erase(&self, procedure: &str) -> Result<u64, KvError> {
        match &self.backend {
            Backend::Embedded(db) => db.erase(procedure).await,
            Backend::Postgres(db) => Box::pin(db.erase(procedure)).await,
        }
    }

    /// Whether a read waits on another machine (PostgreSQL), so that a call
    /// should lend its slot meanwhile; the embedded store reads from memory
    /// or the page cache at once.
    pub fn reads_wait(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Commits so far and writes they carried (the embedded backend's group
    /// commit; PostgreSQL commits each write), for `/metrics` and the bench.
    pub fn commits(&self) -> Option<(u64, u64)> {
        match &self.backend {
            Backend::Embedded(db) => Some(db.commits()),
            Backend::Postgres(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_and_checked() {
        assert_eq!(incremented("k", None, 5).unwrap(), 5);
        assert_eq!(incremented("k", Some(b"41"), 1).unwrap(), 42);
        assert_eq!(incremented("k", Some(b"-3"), 1).unwrap(), -2);
        assert!(matches!(incremented("k", Some(b"x1"), 1), Err(KvError::NotAnInteger(_))));
        assert!(matches!(incremented("k", Some(b"9223372036854775807"), 1), Err(KvError::Overflow(_))));
    }

    #[test]
    fn limits_are_checked_before_the_backend() {
        let limits = KvLimits::default();
        assert!(limits.check_key(&"k".repeat(256)).is_ok());
        assert!(matches!(limits.check_key(&"k".repeat(257)), Err(KvError::KeyTooLong(257, 256))));
        let big = Write::Set { key: "k".into(), value: vec![0; (1 << 20) + 1] };
        assert!(matches!(limits.check_write(&big), Err(KvError::ValueTooLarge(_, _))));
        let max = Write::Set { key: "k".into(), value: vec![0; 1 << 20] };
        assert!(limits.check_write(&max).is_ok());
    }
}
