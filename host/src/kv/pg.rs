//! The key-value backend of a cluster: tables in the shared PostgreSQL
//! registry (`migrations/0002_kv.sql`), so every replica reads what any
//! other wrote, on a connection pool of its own (key-value traffic cannot
//! starve deploys of the registry's connections, nor they it).
//!
//! Layout: `kv_data` maps (procedure, bucket, key) to the value; buckets
//! and keys are their UTF-8 bytes in `bytea` (a Rust string may hold NUL,
//! which `text` cannot; `bytea` orders bytewise, as listings promise).
//! `kv_buckets` keeps each bucket's key count and bytes and `kv_usage` each
//! procedure's bytes, changed in the transaction that changes the data.
//!
//! Writes: every write of a procedure first locks the procedure's
//! `kv_usage` row (`kv_lock`: `SELECT ... FOR UPDATE`, the row made if
//! absent) and reads the keys it touches in a statement of its own, so under
//! READ COMMITTED it sees every write committed before the lock was granted.
//! So a procedure's writes apply one at a time across every replica (no lost
//! increment, no swap deciding on a stale value, the quota and the counts
//! exact), other procedures' writes never wait for them, and reads take no
//! lock.
//!
//! - A call's single write (the usual case) is one statement,
//!   `kv_write_one`, committed on its own: the lock is held for the
//!   statement and its commit, never across a round trip to this process.
//!   An increment of a value that is not plain digits (whitespace, Unicode,
//!   19 digits or more, not a number) is left to the next way, which parses
//!   as `incremented` does.
//! - A list is one transaction: `kv_begin_write` locks and reads, `plan`
//!   applies the writes here in order with the embedded backend's rules,
//!   and `kv_finish_write` stores the final values and counts.
//!
//! The pool's sessions plan every statement for its own arguments
//! (`plan_cache_mode`, set by `PgStore::kv`): a generic plan cached while a
//! table was small would scan it for `key = ANY (...)` ever after.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use deadpool_postgres::{Object, Pool};

use super::{incremented, BucketInfo, KvError, Page, Start, Write, Written};
use crate::store::pg::PgTarget;

/// Connections per replica for key-value calls. A procedure's writes run one
/// at a time whatever the count; more connections serve more procedures at
/// once (8 and 16 measured the same on 2 cores). PostgreSQL's connection
/// limit is shared by every replica: each takes this, the registry's 4 and
/// a LISTEN connection.
pub(crate) const POOL_SIZE: usize = 8;
/// How long one key-value operation may take in all, waiting for a
/// connection included (the database's `kv_lock` gives up waiting for a
/// procedure's lock after 8 s).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Outcomes of a list of writes; the outer error is the storage's.
type Outcomes = Result<Vec<Result<Written, KvError>>, KvError>;

/// The key-value tables of the shared registry. Cheap to clone: clones share
/// the pool.
#[derive(Clone)]
pub struct PgKv {
    pool: Pool,
    /// Where the registry is, for error messages (without a password).
    target: Arc<str>,
}

/// The keys' final values, counts and answers of a list of writes, worked
/// out under the procedure's lock before anything is stored.
#[derive(Debug, Default)]
struct Plan {
    outcomes: Vec<Result<Written, KvError>>,
    /// Keys to set, with their values.
    set: Vec<(String, Vec<u8>)>,
    /// Keys to delete.
    deleted: Vec<String>,
    /// Change of the bucket's key count and bytes.
    keys: i64,
    bytes: i64,
    /// The procedure's bytes afterwards.
    used: u64,
}

/// Applies `writes` in order to `current` (every key they touch, `None`:
/// absent) and `used` bytes, as the embedded backend does: a swap that finds
/// another value and an increment of a non-number are answered and change
/// nothing; a write that grows the procedure past `quota` is refused.
fn plan<'w>(
    procedure: &str,
    writes: &'w [Write],
    mut current: HashMap<&'w str, Option<Vec<u8>>>,
    used: u64,
    quota: u64,
) -> Plan {
    let original = current.clone();
    let mut plan = Plan { used, ..Plan::default() };
    for write in writes {
        let key = write.key();
        let old = current.get(key).cloned().flatten();
        let (new, answer) = match write {
            Write::Set { value, .. } => (Some(value.clone()), Written::Done),
            Write::Delete { .. } => (None, Written::Done),
            Write::Increment { delta, .. } => match incremented(key, old.as_deref(), *delta) {
                Ok(n) => (Some(n.to_string().into_bytes()), Written::Counter(n)),
                Err(e) => {
                    plan.outcomes.push(Err(e));
                    continue;
                }
            },
            Write::Swap { expected, value, .. } => {
                if *expected != old {
                    plan.outcomes.push(Ok(Written::SwapFailed(old)));
                    continue;
                }
                (Some(value.clone()), Written::Done)
            }
        };
        let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, |v| (key.len() + v.len()) as u64);
        let (old_size, new_size) = (size(&old), size(&new));
        let would = plan.used.saturating_sub(old_size).saturating_add(new_size);
        if new_size > old_size && would > quota {
            plan.outcomes.push(Err(KvError::Quota { procedure: procedure.to_owned(), would, quota_mib: quota >> 20 }));
            continue;
        }
        plan.keys += i64::from(new.is_some()) - i64::from(old.is_some());
        plan.bytes += new_size as i64 - old_size as i64;
        plan.used = would;
        current.insert(key, new);
        plan.outcomes.push(Ok(answer));
    }
    let mut changed: Vec<(&str, Option<Vec<u8>>)> =
        current.into_iter().filter(|(key, value)| original.get(key) != Some(value)).collect();
    changed.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in changed {
        match value {
            Some(value) => plan.set.push((key.to_owned(), value)),
            None => plan.deleted.push(key.to_owned()),
        }
    }
    plan
}

/// The smallest byte string greater than every string starting with
/// `prefix` (`None`: there is none, or `prefix` is empty: no upper bound).
fn next_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// The listing query for a start bound (exclusive or not), an upper bound
/// (or none), with values or without: `$3` is the start, `$4` the upper
/// bound if any, then the limit and the offset. Each is a statement of its
/// own so both bounds are index conditions.
fn list_query(exclusive: bool, upper: bool, values: bool) -> String {
    let value = if values { "value" } else { "NULL::bytea" };
    let from = if exclusive { ">" } else { ">=" };
    let (to, next) = if upper { (" AND key < $4", 5) } else { ("", 4) };
    format!(
        "SELECT key, {value} FROM kv_data WHERE procedure = $1 AND bucket = $2 AND key {from} $3{to} \
         ORDER BY key LIMIT ${next} OFFSET ${}",
        next + 1
    )
}

/// A key read back: written from a Rust string.
fn key_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl PgKv {
    /// The key-value tables of the registry at `target`, on `pool`
    /// ([`crate::store::pg::PgStore::kv`] makes both).
    pub(crate) fn new(pool: Pool, target: &PgTarget) -> PgKv {
        PgKv { pool, target: target.to_string().into() }
    }

    /// Runs `work` within [`TIMEOUT`].
    async fn within<T>(&self, what: &str, work: impl Future<Output = Result<T, KvError>>) -> Result<T, KvError> {
        tokio::time::timeout(TIMEOUT, work).await.unwrap_or_else(|_| {
            Err(KvError::Storage(anyhow!(
                "{what}: no answer from the shared registry {} within {TIMEOUT:?}",
                self.target
            )))
        })
    }

    async fn client(&self) -> Result<Object, KvError> {
        self.pool
            .get()
            .await
            .map_err(|e| KvError::Storage(anyhow!("no connection to the shared registry {}: {e}", self.target)))
    }

    fn db(&self) -> impl Fn(tokio_postgres::Error) -> KvError + '_ {
        |e| {
            KvError::Storage(
                anyhow::Error::new(e).context(format!("the key-value tables of the shared registry {}", self.target)),
            )
        }
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> KvError {
        KvError::Storage(anyhow!("the key-value tables of the shared registry {} are damaged: {what}", self.target))
    }

    pub(super) async fn get_many(
        &self,
        procedure: &str,
        bucket: &str,
        keys: &[&str],
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.within("reading keys", async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT key, value FROM kv_data WHERE procedure = $1 AND bucket = $2 AND key = ANY ($3)",
                )
                .await
                .map_err(self.db())?;
            let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let rows = client.query(&statement, &[&procedure, &bucket.as_bytes(), &wanted]).await.map_err(self.db())?;
            let mut found = HashMap::with_capacity(rows.len());
            for row in &rows {
                let key: Vec<u8> = row.try_get(0).map_err(self.db())?;
                let value: Vec<u8> = row.try_get(1).map_err(self.db())?;
                found.insert(key, value);
            }
            Ok(keys.iter().map(|k| found.get(k.as_bytes()).cloned()).collect())
        })
        .await
    }

    pub(super) async fn write(&self, procedure: &str, bucket: &str, writes: Vec<Write>, quota: u64) -> Outcomes {
        self.within("writing keys", async {
            let mut client = self.client().await?;
            if let [write] = writes.as_slice() {
                if let Some(outcome) = self.write_one(&client, procedure, bucket, write, quota).await? {
                    return Ok(vec![outcome]);
                }
            }
            let begin = client
                .prepare_cached("SELECT o_used, o_key, o_value FROM kv_begin_write($1, $2, $3)")
                .await
                .map_err(self.db())?;
            let finish = client
                .prepare_cached("SELECT kv_finish_write($1, $2, $3, $4, $5, $6, $7, $8)")
                .await
                .map_err(self.db())?;
            let mut current: HashMap<&str, Option<Vec<u8>>> = writes.iter().map(|w| (w.key(), None)).collect();
            let keys: Vec<&[u8]> = current.keys().map(|k| k.as_bytes()).collect();
            let tx = client.transaction().await.map_err(self.db())?;
            let rows = tx.query(&begin, &[&procedure, &bucket.as_bytes(), &keys]).await.map_err(self.db())?;
            let mut used = None;
            for row in &rows {
                let key: Option<Vec<u8>> = row.try_get(1).map_err(self.db())?;
                match key {
                    None => used = row.try_get::<_, Option<i64>>(0).map_err(self.db())?,
                    Some(key) => {
                        let value: Option<Vec<u8>> = row.try_get(2).map_err(self.db())?;
                        let key = std::str::from_utf8(&key).map_err(|_| self.corrupt("a key is not UTF-8"))?;
                        if let Some(slot) = current.get_mut(key) {
                            *slot = value;
                        }
                    }
                }
            }
            let used = used.ok_or_else(|| self.corrupt(format!("no usage row for `{procedure}`")))?;
            let used = u64::try_from(used).map_err(|_| self.corrupt(format!("`{procedure}` uses {used} bytes")))?;
            let plan = plan(procedure, &writes, current, used, quota);
            if !(plan.set.is_empty() && plan.deleted.is_empty()) {
                let set_keys: Vec<&[u8]> = plan.set.iter().map(|(k, _)| k.as_bytes()).collect();
                let set_values: Vec<&[u8]> = plan.set.iter().map(|(_, v)| v.as_slice()).collect();
                let deleted: Vec<&[u8]> = plan.deleted.iter().map(|k| k.as_bytes()).collect();
                let used = i64::try_from(plan.used).map_err(|_| self.corrupt("usage past 2^63 bytes"))?;
                tx.execute(
                    &finish,
                    &[&procedure, &bucket.as_bytes(), &set_keys, &set_values, &deleted, &plan.keys, &plan.bytes, &used],
                )
                .await
                .map_err(self.db())?;
            }
            tx.commit().await.map_err(self.db())?;
            Ok(plan.outcomes)
        })
        .await
    }

    /// One write in one statement (`kv_write_one`), or `None` when the
    /// database leaves it to [`plan`] (an increment of a value that is not
    /// plain digits).
    async fn write_one(
        &self,
        client: &Object,
        procedure: &str,
        bucket: &str,
        write: &Write,
        quota: u64,
    ) -> Result<Option<Result<Written, KvError>>, KvError> {
        let statement = client
            .prepare_cached(
                "SELECT o_status, o_counter, o_value, o_would FROM kv_write_one($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await
            .map_err(self.db())?;
        let (op, value, expected, delta): (u8, Option<&[u8]>, Option<&[u8]>, i64) = match write {
            Write::Set { value, .. } => (b's', Some(value), None, 0),
            Write::Delete { .. } => (b'd', None, None, 0),
            Write::Increment { delta, .. } => (b'i', None, None, *delta),
            Write::Swap { expected, value, .. } => (b'w', Some(value), expected.as_deref(), 0),
        };
        let key = write.key();
        let quota_bytes = i64::try_from(quota).unwrap_or(i64::MAX);
        let row = client
            .query_one(
                &statement,
                &[
                    &procedure,
                    &bucket.as_bytes(),
                    &(op as i8),
                    &key.as_bytes(),
                    &value,
                    &expected,
                    &delta,
                    &quota_bytes,
                ],
            )
            .await
            .map_err(self.db())?;
        let status: &str = row.try_get(0).map_err(self.db())?;
        Ok(Some(match status {
            "done" => Ok(Written::Done),
            "counter" => {
                let n: Option<i64> = row.try_get(1).map_err(self.db())?;
                Ok(Written::Counter(n.ok_or_else(|| self.corrupt("kv_write_one answered no counter"))?))
            }
            "swap_failed" => Ok(Written::SwapFailed(row.try_get(2).map_err(self.db())?)),
            "quota" => {
                let would: Option<i64> = row.try_get(3).map_err(self.db())?;
                let would = would.and_then(|w| u64::try_from(w).ok()).unwrap_or(u64::MAX);
                Err(KvError::Quota { procedure: procedure.to_owned(), would, quota_mib: quota >> 20 })
            }
            "overflow" => Err(KvError::Overflow(key.to_owned())),
            "defer" => return Ok(None),
            other => return Err(self.corrupt(format!("kv_write_one answered {other:?}"))),
        }))
    }

    pub(super) async fn list(
        &self,
        procedure: &str,
        bucket: &str,
        prefix: &str,
        start: &Start,
        limit: usize,
        values: bool,
    ) -> Result<Page, KvError> {
        self.within("listing keys", async {
            let (from, exclusive, skip) = match start {
                Start::After(key) if key.as_str() >= prefix => (key.as_str(), true, 0),
                Start::Skip(n) => (prefix, false, *n),
                _ => (prefix, false, 0),
            };
            let upper = next_prefix(prefix.as_bytes());
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
            let skip = i64::try_from(skip).unwrap_or(i64::MAX);
            let client = self.client().await?;
            let statement =
                client.prepare_cached(&list_query(exclusive, upper.is_some(), values)).await.map_err(self.db())?;
            let (procedure, bucket, from) = (&procedure, &bucket.as_bytes(), &from.as_bytes());
            let rows = match &upper {
                Some(upper) => {
                    client.query(&statement, &[procedure, bucket, from, &upper.as_slice(), &fetch, &skip]).await
                }
                None => client.query(&statement, &[procedure, bucket, from, &fetch, &skip]).await,
            }
            .map_err(self.db())?;
            let mut page = Page { entries: Vec::with_capacity(rows.len().min(limit)), more: rows.len() > limit };
            for row in rows.iter().take(limit) {
                let key: Vec<u8> = row.try_get(0).map_err(self.db())?;
                let value: Option<Vec<u8>> = row.try_get(1).map_err(self.db())?;
                page.entries.push((key_text(&key), value));
            }
            Ok(page)
        })
        .await
    }

    pub(super) async fn buckets(&self, procedure: &str) -> Result<Vec<BucketInfo>, KvError> {
        self.within("listing buckets", async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT bucket, keys, bytes FROM kv_buckets WHERE procedure = $1 ORDER BY bucket")
                .await
                .map_err(self.db())?;
            let rows = client.query(&statement, &[&procedure]).await.map_err(self.db())?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let bucket: Vec<u8> = row.try_get(0).map_err(self.db())?;
                let keys: i64 = row.try_get(1).map_err(self.db())?;
                let bytes: i64 = row.try_get(2).map_err(self.db())?;
                let count = |n: i64| u64::try_from(n).map_err(|_| self.corrupt(format!("a bucket counts {n}")));
                out.push(BucketInfo { bucket: key_text(&bucket), keys: count(keys)?, bytes: count(bytes)? });
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn erase(&self, procedure: &str) -> Result<u64, KvError> {
        self.within("erasing keys", async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(self.db())?;
            // The procedure's lock: no write of it is half-way meanwhile.
            tx.execute("SELECT kv_lock($1)", &[&procedure]).await.map_err(self.db())?;
            let removed =
                tx.execute("DELETE FROM kv_data WHERE procedure = $1", &[&procedure]).await.map_err(self.db())?;
            tx.execute("DELETE FROM kv_buckets WHERE procedure = $1", &[&procedure]).await.map_err(self.db())?;
            tx.execute("DELETE FROM kv_usage WHERE procedure = $1", &[&procedure]).await.map_err(self.db())?;
            tx.commit().await.map_err(self.db())?;
            Ok(removed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state<'a>(entries: &[(&'a str, Option<&str>)]) -> HashMap<&'a str, Option<Vec<u8>>> {
        entries.iter().map(|(k, v)| (*k, v.map(|v| v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn a_plan_applies_writes_in_order_like_the_embedded_backend() {
        let writes = vec![
            Write::Increment { key: "n".into(), delta: 5 },
            Write::Increment { key: "n".into(), delta: 5 },
            Write::Swap { key: "s".into(), expected: None, value: b"x".to_vec() },
            Write::Swap { key: "s".into(), expected: None, value: b"y".to_vec() },
            Write::Set { key: "gone".into(), value: b"v".to_vec() },
            Write::Delete { key: "gone".into() },
            Write::Delete { key: "old".into() },
            Write::Increment { key: "text".into(), delta: 1 },
        ];
        let current =
            state(&[("n", Some("9")), ("s", None), ("gone", None), ("old", Some("abc")), ("text", Some("x"))]);
        // n: 1 + 1, old: 3 + 3, text: 4 + 1.
        let used = 13;
        let plan = plan("p", &writes, current, used, 1 << 20);
        let expected: Vec<Result<Written, KvError>> = vec![
            Ok(Written::Counter(14)),
            Ok(Written::Counter(19)),
            Ok(Written::Done),
            Ok(Written::SwapFailed(Some(b"x".to_vec()))),
            Ok(Written::Done),
            Ok(Written::Done),
            Ok(Written::Done),
            Err(KvError::NotAnInteger("text".into())),
        ];
        assert_eq!(format!("{:?}", plan.outcomes), format!("{expected:?}"));
        // Only final values are stored; "gone" was absent and is again.
        assert_eq!(plan.set, [("n".to_owned(), b"19".to_vec()), ("s".to_owned(), b"x".to_vec())]);
        assert_eq!(plan.deleted, ["old"]);
        // s comes, old goes; n: +1 byte, s: +2, old: -6.
        assert_eq!((plan.keys, plan.bytes, plan.used), (0, -3, 10));
    }

    #[test]
    fn a_plan_refuses_growth_past_the_quota_but_not_shrinking() {
        let quota = 10;
        let writes = vec![
            Write::Set { key: "a".into(), value: vec![0; 9] },
            Write::Set { key: "b".into(), value: vec![] },
            Write::Set { key: "a".into(), value: vec![0; 12] },
            Write::Set { key: "a".into(), value: vec![0; 2] },
            Write::Set { key: "b".into(), value: vec![0; 6] },
        ];
        let plan = plan("p", &writes, state(&[("a", None), ("b", None)]), 0, quota);
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(plan.outcomes[1], Err(KvError::Quota { would: 11, .. })), "{:?}", plan.outcomes[1]);
        assert!(matches!(plan.outcomes[2], Err(KvError::Quota { would: 13, .. })));
        assert!(plan.outcomes[3].is_ok());
        assert!(plan.outcomes[4].is_ok());
        assert_eq!((plan.keys, plan.bytes, plan.used), (2, 10, 10));
        // Over the quota already (it was lowered): shrinking still works.
        let plan = plan_over("p", 100);
        assert!(matches!(plan.outcomes[..], [Ok(Written::Done)]), "{:?}", plan.outcomes);
        assert_eq!(plan.used, 95);
    }

    fn plan_over(procedure: &str, used: u64) -> Plan {
        plan(procedure, &[Write::Delete { key: "abcd".into() }], state(&[("abcd", Some("x"))]), used, 10)
    }

    #[test]
    fn list_queries_bound_the_index_scan() {
        assert_eq!(next_prefix(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(next_prefix(&[1, 0xff]), Some(vec![2]));
        assert_eq!(next_prefix(&[0xff]), None);
        assert_eq!(next_prefix(b""), None);
        assert_eq!(
            list_query(true, true, false),
            "SELECT key, NULL::bytea FROM kv_data WHERE procedure = $1 AND bucket = $2 AND key > $3 AND key < $4 \
             ORDER BY key LIMIT $5 OFFSET $6"
        );
        assert!(list_query(false, false, true).ends_with("key >= $3 ORDER BY key LIMIT $4 OFFSET $5"));
    }
}
