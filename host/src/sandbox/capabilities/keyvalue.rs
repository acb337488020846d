//! `wasi:keyvalue` (`store`, `atomics`, `batch`) at `0.2.0-draft2` and at
//! `0.2.0-draft`, both served by [`Kv`](crate::kv::Kv), the one backend:
//! a guest built for either reads what the other wrote. The WIT is the
//! published one (`wit/keyvalue/`). A bucket is the calling procedure's
//! (its name comes from the call, never from the guest); a refused
//! operation is `error::other` with a message saying why, never a trap.
//! A write waits for its commit, and a read from PostgreSQL for its
//! answer, with the call's slot lent to other calls (`sandbox/slots.rs`).
//!
//! Where the drafts differ: `draft` pages `list-keys` with a number (keys
//! to skip) and counts with `u64`; `draft2` pages with the last key seen,
//! counts with `s64`, and adds compare-and-swap (`cas`, `swap`).

use std::sync::Arc;

use wasmtime::component::{HasSelf, Resource, ResourceTableError};

use super::Capability;
use crate::kv::{self, KvError, Page, Start, Write, Written};
use crate::sandbox::call::Dispatcher;
use crate::sandbox::state::CallState;

mod draft {
    wasmtime::component::bindgen!({
        path: "../wit/keyvalue/draft",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": super::KvBucket },
        trappable_error_type: { "wasi:keyvalue/store.error" => super::Fault },
    });
}

mod draft2 {
    wasmtime::component::bindgen!({
        path: "../wit/keyvalue/draft2",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::KvBucket,
            "wasi:keyvalue/atomics.cas": super::KvCas,
        },
        trappable_error_type: { "wasi:keyvalue/store.error" => super::Fault },
    });
}

use draft::wasi::keyvalue as d1;
use draft2::wasi::keyvalue as d2;

pub(in crate::sandbox) const CAPABILITY: Capability = Capability {
    described: "`wasi:keyvalue` (store, atomics, batch; 0.2.0-draft2 and 0.2.0-draft)",
    serves,
    link: |linker| {
        draft::Imports::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
        draft2::Imports::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    },
};

fn serves(name: &str) -> bool {
    let Some((iface, version)) = name.strip_prefix("wasi:keyvalue/").and_then(|r| r.split_once('@')) else {
        return false;
    };
    matches!(iface, "store" | "atomics" | "batch") && matches!(version, "0.2.0-draft" | "0.2.0-draft2")
}

/// An open bucket: its name within the calling procedure.
#[allow(unreachable_pub, reason = "the bindings re-export it")]
pub struct KvBucket {
    name: String,
}

/// A compare-and-swap handle (`draft2`): the value seen when it was made.
#[allow(unreachable_pub, reason = "the bindings re-export it")]
pub struct KvCas {
    bucket: String,
    key: String,
    current: Option<Vec<u8>>,
}

/// An operation's failure: the guest's `error`, or a trap (a handle that
/// is not in the table: the guest broke the ABI).
#[allow(unreachable_pub, reason = "the bindings re-export it")]
pub enum Fault {
    Other(String),
    Trap(wasmtime::Error),
}

impl From<ResourceTableError> for Fault {
    fn from(e: ResourceTableError) -> Self {
        Fault::Trap(e.into())
    }
}

impl Fault {
    fn draft(self) -> wasmtime::Result<d1::store::Error> {
        match self {
            Fault::Other(m) => Ok(d1::store::Error::Other(m)),
            Fault::Trap(e) => Err(e),
        }
    }

    fn draft2(self) -> wasmtime::Result<d2::store::Error> {
        match self {
            Fault::Other(m) => Ok(d2::store::Error::Other(m)),
            Fault::Trap(e) => Err(e),
        }
    }
}

type Done<T> = Result<T, Fault>;

/// What both drafts do, once their types are taken apart.
impl CallState {
    /// The backend and this call's procedure, or why there is none.
    fn kv(&self) -> Done<(Arc<dyn Dispatcher>, Arc<str>)> {
        match &self.tree.dispatcher {
            Some(dispatcher) => Ok((dispatcher.clone(), self.procedure.clone())),
            None => Err(Fault::Other("key-value state cannot be used while `describe` runs (at deploy)".into())),
        }
    }

    fn fault(&self, e: KvError) -> Fault {
        Fault::Other(e.public_message(self.request_id))
    }

    fn open_bucket(&mut self, identifier: String) -> Done<Resource<KvBucket>> {
        kv::check_bucket(&identifier).map_err(|e| self.fault(e))?;
        Ok(self.table.push(KvBucket { name: identifier })?)
    }

    fn bucket_name(&self, bucket: &Resource<KvBucket>) -> Done<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }

    async fn read(&mut self, bucket: &Resource<KvBucket>, keys: &[&str]) -> Done<Vec<Option<Vec<u8>>>> {
        let name = self.bucket_name(bucket)?;
        let (dispatcher, procedure) = self.kv()?;
        let kv = dispatcher.kv();
        waiting(&dispatcher, kv.reads_wait(), kv.get_many(&procedure, &name, keys)).await.map_err(|e| self.fault(e))
    }

    async fn read_one(&mut self, bucket: &Resource<KvBucket>, key: &str) -> Done<Option<Vec<u8>>> {
        Ok(self.read(bucket, &[key]).await?.pop().flatten())
    }

    /// Applies `writes`, waiting for their commit with the slot lent.
    async fn write_in(&mut self, bucket: &str, writes: Vec<Write>) -> Done<Vec<Result<Written, KvError>>> {
        let (dispatcher, procedure) = self.kv()?;
        waiting(&dispatcher, true, dispatcher.kv().write(&procedure, bucket, writes)).await.map_err(|e| self.fault(e))
    }

    async fn write(&mut self, bucket: &Resource<KvBucket>, writes: Vec<Write>) -> Done<Vec<Written>> {
        let name = self.bucket_name(bucket)?;
        let outcomes = self.write_in(&name, writes).await?;
        outcomes.into_iter().map(|o| o.map_err(|e| self.fault(e))).collect()
    }

    async fn write_one(&mut self, bucket: &Resource<KvBucket>, write: Write) -> Done<Written> {
        let name = self.bucket_name(bucket)?;
        self.write_one_in(&name, write).await
    }

    /// One write to bucket `bucket`, waiting for its commit with the slot lent.
    async fn write_one_in(&mut self, bucket: &str, write: Write) -> Done<Written> {
        let (dispatcher, procedure) = self.kv()?;
        waiting(&dispatcher, true, dispatcher.kv().write_one(&procedure, bucket, write))
            .await
            .map_err(|e| self.fault(e))
    }

    async fn increment(&mut self, bucket: &Resource<KvBucket>, key: String, delta: i64) -> Done<i64> {
        match self.write_one(bucket, Write::Increment { key, delta }).await? {
            Written::Counter(n) => Ok(n),
            _ => Err(Fault::Other("an increment answered no count".into())),
        }
    }

    async fn list(&mut self, bucket: &Resource<KvBucket>, start: Start) -> Done<Page> {
        let name = self.bucket_name(bucket)?;
        let (dispatcher, procedure) = self.kv()?;
        let kv = dispatcher.kv();
        let work = kv.list(&procedure, &name, "", &start, kv.limits().page_keys, false);
        waiting(&dispatcher, kv.reads_wait(), work).await.map_err(|e| self.fault(e))
    }

    fn keys_of(page: Page) -> Vec<String> {
        page.entries.into_iter().map(|(k, _)| k).collect()
    }
}

/// Runs a storage operation; one that `waits` (a commit, another machine)
/// runs with the call's slot lent to other calls.
async fn waiting<T>(dispatcher: &Arc<dyn Dispatcher>, waits: bool, work: impl std::future::Future<Output = T>) -> T {
    if waits {
        dispatcher.slots().lend_while(work).await
    } else {
        work.await
    }
}

fn sets(key_values: Vec<(String, Vec<u8>)>) -> Vec<Write> {
    key_values.into_iter().map(|(key, value)| Write::Set { key, value }).collect()
}

fn deletes(keys: Vec<String>) -> Vec<Write> {
    keys.into_iter().map(|key| Write::Delete { key }).collect()
}

fn refs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

/// The `bucket` methods both drafts declare alike (`list-keys` differs:
/// its cursor), for each draft's `HostBucket`.
macro_rules! bucket_methods {
    () => {
        async fn get(&mut self, bucket: Resource<KvBucket>, key: String) -> Done<Option<Vec<u8>>> {
            self.read_one(&bucket, &key).await
        }

        async fn set(&mut self, bucket: Resource<KvBucket>, key: String, value: Vec<u8>) -> Done<()> {
            self.write_one(&bucket, Write::Set { key, value }).await.map(drop)
        }

        async fn delete(&mut self, bucket: Resource<KvBucket>, key: String) -> Done<()> {
            self.write_one(&bucket, Write::Delete { key }).await.map(drop)
        }

        async fn exists(&mut self, bucket: Resource<KvBucket>, key: String) -> Done<bool> {
            Ok(self.read_one(&bucket, &key).await?.is_some())
        }

        async fn drop(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
            self.table.delete(bucket)?;
            Ok(())
        }
    };
}

/// The `batch` writes both drafts declare alike (`get-many` differs: its
/// answer's shape).
macro_rules! batch_writes {
    () => {
        async fn set_many(&mut self, bucket: Resource<KvBucket>, key_values: Vec<(String, Vec<u8>)>) -> Done<()> {
            self.write(&bucket, sets(key_values)).await.map(drop)
        }

        async fn delete_many(&mut self, bucket: Resource<KvBucket>, keys: Vec<String>) -> Done<()> {
            self.write(&bucket, deletes(keys)).await.map(drop)
        }
    };
}

// ---- wasi:keyvalue@0.2.0-draft2 ----

impl d2::store::Host for CallState {
    async fn open(&mut self, identifier: String) -> Done<Resource<KvBucket>> {
        self.open_bucket(identifier)
    }

    fn convert_error(&mut self, err: Fault) -> wasmtime::Result<d2::store::Error> {
        err.draft2()
    }
}

impl d2::store::HostBucket for CallState {
    bucket_methods!();

    async fn list_keys(&mut self, bucket: Resource<KvBucket>, cursor: Option<String>) -> Done<d2::store::KeyResponse> {
        let page = self.list(&bucket, cursor.map_or(Start::First, Start::After)).await?;
        let more = page.more;
        let keys = CallState::keys_of(page);
        let cursor = if more { keys.last().cloned() } else { None };
        Ok(d2::store::KeyResponse { keys, cursor })
    }
}

impl d2::atomics::Host for CallState {
    async fn increment(&mut self, bucket: Resource<KvBucket>, key: String, delta: i64) -> Done<i64> {
        CallState::increment(self, &bucket, key, delta).await
    }

    async fn swap(
        &mut self,
        cas: Resource<KvCas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), d2::atomics::CasError>> {
        let KvCas { bucket, key, current } = self.table.delete(cas)?;
        let write = Write::Swap { key: key.clone(), expected: current, value };
        match self.write_one_in(&bucket, write).await {
            Ok(Written::SwapFailed(now)) => {
                let retry = self.table.push(KvCas { bucket, key, current: now })?;
                Ok(Err(d2::atomics::CasError::CasFailed(retry)))
            }
            Ok(_) => Ok(Ok(())),
            Err(fault) => Ok(Err(d2::atomics::CasError::StoreError(fault.draft2()?))),
        }
    }
}

impl d2::atomics::HostCas for CallState {
    async fn new(&mut self, bucket: Resource<KvBucket>, key: String) -> Done<Resource<KvCas>> {
        let current = self.read_one(&bucket, &key).await?;
        let name = self.bucket_name(&bucket)?;
        Ok(self.table.push(KvCas { bucket: name, key, current })?)
    }

    async fn current(&mut self, cas: Resource<KvCas>) -> Done<Option<Vec<u8>>> {
        Ok(self.table.get(&cas)?.current.clone())
    }

    async fn drop(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl d2::batch::Host for CallState {
    async fn get_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Done<Vec<(String, Option<Vec<u8>>)>> {
        let values = self.read(&bucket, &refs(&keys)).await?;
        Ok(keys.into_iter().zip(values).collect())
    }

    batch_writes!();
}

// ---- wasi:keyvalue@0.2.0-draft ----

impl d1::store::Host for CallState {
    async fn open(&mut self, identifier: String) -> Done<Resource<KvBucket>> {
        self.open_bucket(identifier)
    }

    fn convert_error(&mut self, err: Fault) -> wasmtime::Result<d1::store::Error> {
        err.draft()
    }
}

impl d1::store::HostBucket for CallState {
    bucket_methods!();

    async fn list_keys(&mut self, bucket: Resource<KvBucket>, cursor: Option<u64>) -> Done<d1::store::KeyResponse> {
        let skip = cursor.unwrap_or(0);
        let page = self.list(&bucket, Start::Skip(skip)).await?;
        let more = page.more;
        let keys = CallState::keys_of(page);
        let cursor = more.then(|| skip + keys.len() as u64);
        Ok(d1::store::KeyResponse { keys, cursor })
    }
}

impl d1::atomics::Host for CallState {
    async fn increment(&mut self, bucket: Resource<KvBucket>, key: String, delta: u64) -> Done<u64> {
        let delta = i64::try_from(delta)
            .map_err(|_| Fault::Other(format!("an increment of {delta} is past the largest count, {}", i64::MAX)))?;
        let count = CallState::increment(self, &bucket, key, delta).await?;
        // A draft2 guest may have counted below zero.
        u64::try_from(count).map_err(|_| Fault::Other(format!("the count is {count}, below zero: not a u64")))
    }
}

impl d1::batch::Host for CallState {
    async fn get_many(
        &mut self,
        bucket: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> Done<Vec<Option<(String, Vec<u8>)>>> {
        let values = self.read(&bucket, &refs(&keys)).await?;
        Ok(keys.into_iter().zip(values).map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    batch_writes!();
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn serves_both_drafts_and_nothing_else() {
        for name in ["store", "atomics", "batch"] {
            assert!(serves(&format!("wasi:keyvalue/{name}@0.2.0-draft")));
            assert!(serves(&format!("wasi:keyvalue/{name}@0.2.0-draft2")));
        }
        assert!(!serves("wasi:keyvalue/watcher@0.2.0-draft2"));
        assert!(!serves("wasi:keyvalue/store@0.2.0-draft3"));
        assert!(!serves("wasi:keyvalue/store"));
        assert!(!serves("wasi:http/outgoing-handler@0.2.0"));
    }
}
