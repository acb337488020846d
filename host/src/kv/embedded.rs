//! The key-value backend of one machine: `kv.redb` in the data dir, a redb
//! database (a copy-on-write B-tree file with checksummed commits: pure Rust,
//! no server to install, crash-safe, and it refuses a damaged file instead
//! of opening it empty).
//!
//! Reads run on the caller's thread against the last commit. Writes go to
//! one writer thread, which takes every write queued while the previous
//! commit was on its way to the disk and applies them in one transaction
//! with one fsync (group commit): under load a commit carries many calls'
//! writes, and no call waits for more than the commit in progress and its
//! own. A write is answered once its commit is durable.
//!
//! Layout: table `data` maps `[len(procedure)] procedure [len(bucket) u16]
//! bucket key` to the value (lengths prefix the names, so no procedure's or
//! bucket's keys can be reached from another's, whatever bytes they
//! contain); `buckets` keeps each bucket's key count and bytes, and `usage`
//! each procedure's bytes, in the same transactions as the data.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use anyhow::{anyhow, Context as _};
use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::{incremented, BucketInfo, KvError, Page, Start, Write, Written};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const BUCKETS: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("buckets");
const USAGE: TableDefinition<&str, u64> = TableDefinition::new("usage");
/// The file in the data dir.
pub const FILE_NAME: &str = "kv.redb";
/// Most jobs one commit takes, so a commit's replies are not held back by
/// an endless queue.
const MAX_JOBS_PER_COMMIT: usize = 4096;

/// The embedded database and its writer thread.
pub struct Embedded {
    db: Arc<Database>,
    jobs: mpsc::Sender<Job>,
    /// Commits made, and jobs (a call's list of writes) they carried. The
    /// first is bumped (release) after a commit and before its replies.
    commits: Arc<(AtomicU64, AtomicU64)>,
    /// The data table as of commit `.0`, shared by reads until the next
    /// commit: opening a read transaction and the table cost more than a
    /// read itself (about 3,400 instructions of a 6,200-instruction `get`).
    snapshot: ArcSwapOption<(u64, DataTable)>,
}

type DataTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

type Outcomes = Result<Vec<Result<Written, KvError>>, KvError>;

struct Job {
    procedure: String,
    work: Work,
    reply: oneshot::Sender<Outcomes>,
}

enum Work {
    Writes { bucket: String, writes: Vec<Write>, quota: u64 },
    Erase,
}

/// `[len] procedure`: the start of every key of a procedure.
fn procedure_prefix(procedure: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + procedure.len());
    // Procedure names are at most 63 bytes (`registry::check_name`).
    out.push(u8::try_from(procedure.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(procedure.as_bytes());
    out
}

/// `[len] procedure [len u16] bucket`: the start of every key of a bucket.
fn bucket_prefix(procedure: &str, bucket: &str) -> Vec<u8> {
    let mut out = procedure_prefix(procedure);
    // Bucket names are at most 256 bytes (`kv::check_bucket`).
    out.extend_from_slice(&u16::try_from(bucket.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bucket.as_bytes());
    out
}

fn entry_key(scope: &[u8], key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(scope.len() + key.len());
    out.extend_from_slice(scope);
    out.extend_from_slice(key.as_bytes());
    out
}

fn storage(e: impl Into<redb::Error>) -> KvError {
    KvError::Storage(anyhow!(e.into()))
}

impl Embedded {
    /// Opens (or makes) `kv.redb` in `data_dir` and starts its writer.
    /// A damaged file is an error naming it, never a fresh empty store.
    pub fn open(data_dir: &Path) -> anyhow::Result<Embedded> {
        let path = data_dir.join(FILE_NAME);
        let shown = path.display().to_string();
        let repairing = std::sync::Once::new();
        let db = Database::builder()
            .set_repair_callback(move |_| {
                // A commit that was not complete when the server died is
                // rolled back to the one before; answered writes were durable.
                repairing.call_once(|| {
                    tracing::warn!("the key-value store {shown} was not closed cleanly (a crash or kill): checking it")
                });
            })
            .create(&path)
            .with_context(|| {
                format!(
                    "cannot open the key-value store {}: it is damaged or not a redb file (restore it from a \
                 backup or an export, or move it away to start empty)",
                    path.display()
                )
            })?;
        let txn = db.begin_write().context("starting the key-value store")?;
        txn.open_table(DATA)?;
        txn.open_table(BUCKETS)?;
        txn.open_table(USAGE)?;
        txn.commit().context("starting the key-value store")?;
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel();
        let commits = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let (writer_db, writer_commits) = (db.clone(), commits.clone());
        std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || write_loop(&writer_db, &queue, &writer_commits))
            .context("starting the key-value writer")?;
        Ok(Embedded { db, jobs, commits, snapshot: ArcSwapOption::empty() })
    }

    /// The data table as of the last commit answered (or a later one).
    fn data(&self) -> Result<Arc<(u64, DataTable)>, KvError> {
        let seq = self.commits.0.load(Ordering::Acquire);
        if let Some(snapshot) = self.snapshot.load_full().filter(|s| s.0 == seq) {
            return Ok(snapshot);
        }
        // Opened after `seq` was read: it holds every commit up to `seq`
        // (perhaps more, which only makes the next read reopen it).
        let table = self.db.begin_read().map_err(storage)?.open_table(DATA).map_err(storage)?;
        let snapshot = Arc::new((seq, table));
        self.snapshot.store(Some(snapshot.clone()));
        Ok(snapshot)
    }

    pub(super) fn get_many(
        &self,
        procedure: &str,
        bucket: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let scope = bucket_prefix(procedure, bucket);
        let snapshot = self.data()?;
        keys.iter()
            .map(|key| {
                Ok(snapshot.1.get(entry_key(&scope, key).as_slice()).map_err(storage)?.map(|v| v.value().to_vec()))
            })
            .collect()
    }

    pub(super) fn list(
        &self,
        procedure: &str,
        bucket: &str,
        prefix: &str,
        start: &Start,
        limit: usize,
        values: bool,
    ) -> Result<Page, KvError> {
        let scope = bucket_prefix(procedure, bucket);
        let snapshot = self.data()?;
        let data = &snapshot.1;
        let first = entry_key(&scope, prefix);
        let (from, after, skip) = match start {
            Start::After(key) if key.as_str() >= prefix => (entry_key(&scope, key), true, 0),
            Start::Skip(n) => (first.clone(), false, *n),
            _ => (first.clone(), false, 0),
        };
        let mut page = Page::default();
        let mut skipped = 0;
        for entry in data.range(from.as_slice()..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let k = k.value();
            if !k.starts_with(&first) {
                break;
            }
            if after && k == from.as_slice() {
                continue;
            }
            if skipped < skip {
                skipped += 1;
                continue;
            }
            if page.entries.len() == limit {
                page.more = true;
                break;
            }
            // Keys were written from Rust strings.
            let key = String::from_utf8_lossy(&k[scope.len()..]).into_owned();
            page.entries.push((key, values.then(|| v.value().to_vec())));
        }
        Ok(page)
    }

    pub(super) fn buckets(&self, procedure: &str) -> Result<Vec<BucketInfo>, KvError> {
        let prefix = procedure_prefix(procedure);
        let txn = self.db.begin_read().map_err(storage)?;
        let buckets = txn.open_table(BUCKETS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in buckets.range(prefix.as_slice()..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let Some(rest) = k.value().strip_prefix(prefix.as_slice()) else { break };
            let (keys, bytes) = v.value();
            let name = String::from_utf8_lossy(rest.get(2..).unwrap_or_default()).into_owned();
            out.push(BucketInfo { bucket: name, keys, bytes });
        }
        Ok(out)
    }

    pub(super) async fn write(&self, procedure: &str, bucket: &str, writes: Vec<Write>, quota: u64) -> Outcomes {
        self.submit(procedure, Work::Writes { bucket: bucket.to_owned(), writes, quota }).await
    }

    pub(super) async fn erase(&self, procedure: &str) -> Result<u64, KvError> {
        match self.submit(procedure, Work::Erase).await?.pop() {
            Some(Ok(Written::Counter(n))) => Ok(u64::try_from(n).unwrap_or_default()),
            _ => Err(KvError::Storage(anyhow!("erase answered nothing"))),
        }
    }

    async fn submit(&self, procedure: &str, work: Work) -> Outcomes {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { procedure: procedure.to_owned(), work, reply })
            .map_err(|_| KvError::Storage(anyhow!("the key-value writer has stopped")))?;
        answer.await.map_err(|_| KvError::Storage(anyhow!("the key-value writer has stopped")))?
    }

    pub(super) fn commits(&self) -> (u64, u64) {
        (self.commits.0.load(Ordering::Relaxed), self.commits.1.load(Ordering::Relaxed))
    }
}

/// The writer thread: one transaction and one fsync per round, for every
/// job queued when the round starts. It commits as soon as it has a job:
/// waiting for more (up to 500 us, until 50 us pass without one) made
/// commits carry 19 writes instead of 8.5 at 64 connections, but cost 12%
/// of the calls per second (A/B of one build, 2 cores), since a commit
/// here takes about 0.3 ms and the calls' CPU, not the disk, is the bound.
fn write_loop(db: &Database, queue: &mpsc::Receiver<Job>, commits: &(AtomicU64, AtomicU64)) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match commit(db, &jobs) {
            Ok(outcomes) => {
                commits.1.fetch_add(jobs.len() as u64, Ordering::Relaxed);
                // Before the replies: a read that starts after one sees it.
                commits.0.fetch_add(1, Ordering::Release);
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!("key-value commit failed: {e:#}");
                for job in jobs {
                    let _ = job.reply.send(Err(KvError::Storage(anyhow!("commit failed: {e:#}"))));
                }
            }
        }
    }
}

struct Tables<'t> {
    data: Table<'t, &'static [u8], &'static [u8]>,
    buckets: Table<'t, &'static [u8], (u64, u64)>,
    usage: Table<'t, &'static str, u64>,
}

/// Applies `jobs` in one transaction; the outcome of each, once durable.
fn commit(db: &Database, jobs: &[Job]) -> anyhow::Result<Vec<Outcomes>> {
    let txn = db.begin_write()?;
    let outcomes = {
        let mut tables =
            Tables { data: txn.open_table(DATA)?, buckets: txn.open_table(BUCKETS)?, usage: txn.open_table(USAGE)? };
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            outcomes.push(match &job.work {
                Work::Writes { bucket, writes, quota } => {
                    let scope = bucket_prefix(&job.procedure, bucket);
                    let done: Vec<_> = writes
                        .iter()
                        .map(|w| apply(&mut tables, &job.procedure, &scope, w, *quota))
                        .collect::<Result<_, redb::Error>>()?;
                    Ok(done)
                }
                Work::Erase => Ok(vec![Ok(Written::Counter(erase(&mut tables, &job.procedure)?))]),
            });
        }
        outcomes
    };
    txn.commit()?;
    Ok(outcomes)
}

/// One write, with its bucket's and procedure's counts. A refused write
/// changes nothing; the outer error is the storage's.
fn apply(
    t: &mut Tables<'_>,
    procedure: &str,
    scope: &[u8],
    write: &Write,
    quota: u64,
) -> Result<Result<Written, KvError>, redb::Error> {
    let key = write.key();
    let full = entry_key(scope, key);
    let old = t.data.get(full.as_slice())?.map(|v| v.value().to_vec());
    let (new, answer) = match write {
        Write::Set { value, .. } => (Some(value.clone()), Written::Done),
        Write::Delete { .. } => (None, Written::Done),
        Write::Increment { delta, .. } => match incremented(key, old.as_deref(), *delta) {
            Ok(n) => (Some(n.to_string().into_bytes()), Written::Counter(n)),
            Err(e) => return Ok(Err(e)),
        },
        Write::Swap { expected, value, .. } => {
            if *expected != old {
                return Ok(Ok(Written::SwapFailed(old)));
            }
            (Some(value.clone()), Written::Done)
        }
    };
    let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, |v| (key.len() + v.len()) as u64);
    let (old_size, new_size) = (size(&old), size(&new));
    if new == old {
        return Ok(Ok(answer));
    }
    if old_size == new_size && old.is_some() == new.is_some() {
        // Same size, same key count (an increment from 12 to 13, a set of
        // as many bytes): only the data changes, not the counts.
        if let Some(value) = &new {
            t.data.insert(full.as_slice(), value.as_slice())?;
        }
        return Ok(Ok(answer));
    }
    let used = t.usage.get(procedure)?.map_or(0, |v| v.value());
    let would = used.saturating_sub(old_size).saturating_add(new_size);
    if new_size > old_size && would > quota {
        return Ok(Err(KvError::Quota { procedure: procedure.to_owned(), would, quota_mib: quota >> 20 }));
    }
    match &new {
        Some(value) => {
            t.data.insert(full.as_slice(), value.as_slice())?;
        }
        None => {
            t.data.remove(full.as_slice())?;
        }
    }
    let (keys, bytes) = t.buckets.get(scope)?.map_or((0, 0), |v| v.value());
    let keys = keys + u64::from(new.is_some()) - u64::from(old.is_some());
    let bytes = bytes.saturating_sub(old_size).saturating_add(new_size);
    if keys == 0 {
        t.buckets.remove(scope)?;
    } else {
        t.buckets.insert(scope, (keys, bytes))?;
    }
    if would == 0 {
        t.usage.remove(procedure)?;
    } else {
        t.usage.insert(procedure, would)?;
    }
    Ok(Ok(answer))
}

/// Removes every key of `procedure`; answers how many there were.
fn erase(t: &mut Tables<'_>, procedure: &str) -> Result<i64, redb::Error> {
    let prefix = procedure_prefix(procedure);
    let mut removed = 0_i64;
    let scopes: Vec<(Vec<u8>, u64)> = t
        .buckets
        .range(prefix.as_slice()..)?
        .map_while(|e| e.ok())
        .take_while(|(k, _)| k.value().starts_with(&prefix))
        .map(|(k, v)| (k.value().to_vec(), v.value().0))
        .collect();
    for (scope, keys) in scopes {
        // Every key in the range starts with `scope`.
        t.data.retain_in(scope.as_slice()..next_prefix(&scope).as_slice(), |_, _| false)?;
        t.buckets.remove(scope.as_slice())?;
        removed += i64::try_from(keys).unwrap_or(i64::MAX);
    }
    t.usage.remove(procedure)?;
    Ok(removed)
}

/// The smallest byte string greater than every string starting with `prefix`.
fn next_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return next;
        }
    }
    // All 0xff: nothing is greater; an empty bound would mean "everything".
    vec![u8::MAX; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_procedures_and_buckets_apart() {
        // "a" + bucket "b\0x" vs "a\0" ...: the lengths make every scope distinct.
        assert_ne!(bucket_prefix("ab", "c"), bucket_prefix("a", "bc"));
        assert!(!entry_key(&bucket_prefix("a", "b"), "c").starts_with(&bucket_prefix("a", "bc")));
        assert_eq!(next_prefix(b"ab"), b"ac");
        assert_eq!(next_prefix(&[1, 0xff]), vec![2]);
    }
}
