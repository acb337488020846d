//! Durable key-value state for procedures: buckets of keys and values that
//! outlive the call, kept by the server through `wasi:keyvalue`
//! (`@0.2.0-draft2`'s `store`, `atomics` and `batch` interfaces).
//!
//! This module owns the typed API over those imports ([`Bucket`]), the
//! JSON encoding of typed values, the compare-and-swap retry loop of
//! [`Bucket::update`], and [`KvError`] with its conversion to a JSON-RPC
//! error (code [`Error::KEY_VALUE`], -32010).
//!
//! ```no_run
//! use wasmrpc_guest::{kv, procedure, Error};
//!
//! /// Counts the calls, across calls and restarts.
//! #[procedure]
//! fn hit() -> Result<i64, Error> {
//!     Ok(kv::open_default()?.increment("hits", 1)?)
//! }
//! # wasmrpc_guest::export!(hit);
//! ```
//!
//! What the server guarantees:
//!
//! * A bucket belongs to the procedure (by its deployed name) that opened
//!   it: `open("default")` in `notes` and in `todo` are two buckets. Any name
//!   up to 256 bytes will do; the data outlives versions and redeploys.
//! * By default keys are at most 256 bytes and values at most 1 MiB
//!   (`--kv-max-key-bytes`, `--kv-max-value-kib`), and a procedure keeps at
//!   most 64 MiB of keys and values (`--kv-quota-mib`). Past a limit the
//!   operation fails with a [`KvError::Other`] whose message names it.
//! * Values are bytes: [`Bucket::get`] and [`Bucket::set`] store any serde
//!   type as JSON text, [`Bucket::get_bytes`] and [`Bucket::set_bytes`] the
//!   bytes as they are. Counters ([`Bucket::increment`]) are decimal text
//!   (`"12800"`), so `get::<i64>` reads them too.
//! * A write is durable when it returns. [`Bucket::increment`] and
//!   [`Bucket::update`] are atomic among concurrent calls; the batch
//!   operations are not atomic as a whole.
//! * Keys list in byte order, at most 1000 a page (`--kv-page-keys`).
//!
//! Outside a Wasm build (a procedure's native unit tests) there is no
//! server: [`Bucket::open`] fails.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::Error;

#[cfg(target_arch = "wasm32")]
use crate::bindings::wasi::keyvalue::{atomics, batch, store};

/// The bucket of [`open_default`].
pub const DEFAULT_BUCKET: &str = "default";

/// How many times [`Bucket::update`] tries before it gives up with
/// [`KvError::Contended`]. Each losing attempt waited for a commit, and a
/// commit takes one of every contender's writes, so with `n` calls updating
/// one key at once each attempt wins with a chance of about `1/n`: 10,000
/// attempts make a give-up all but impossible below hundreds of contenders
/// (the call's time limit comes first). A key that many calls change at
/// once is better served by [`Bucket::increment`], which never retries.
pub const MAX_UPDATE_ATTEMPTS: u32 = 10_000;

/// A key of `get-many` and its bytes, `None` when absent.
type Found = (String, Option<Vec<u8>>);

/// Most keys the server takes in one `get-many`, `set-many` or
/// `delete-many`: the batch methods send longer lists in several calls.
const BATCH_KEYS: usize = 1000;

/// Opens the bucket named `"default"`, [`Bucket::open`]`(DEFAULT_BUCKET)`.
pub fn open_default() -> Result<Bucket, KvError> {
    Bucket::open(DEFAULT_BUCKET)
}

/// One bucket of this procedure's key-value state.
///
/// Open it at the start of a call (opening is cheap); it closes when
/// dropped.
///
/// ```no_run
/// use wasmrpc_guest::kv::{Bucket, KvError};
///
/// fn rename(user: &str, name: &str) -> Result<Option<String>, KvError> {
///     let users = Bucket::open("users")?;
///     let old: Option<String> = users.get(user)?;
///     users.set(user, name)?;
///     Ok(old)
/// }
/// ```
pub struct Bucket {
    name: String,
    #[cfg(target_arch = "wasm32")]
    inner: store::Bucket,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Bucket {
    /// Opens this procedure's bucket `name` (any name of at most 256
    /// bytes: the server keeps each procedure's buckets apart).
    pub fn open(name: &str) -> Result<Bucket, KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            let inner = store::open(name).map_err(|e| KvError::from_wit("open", name, None, e))?;
            Ok(Bucket { name: name.to_owned(), inner })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Err(KvError::Other {
                operation: "open",
                key: None,
                message: format!("cannot open bucket {name:?}: key-value state needs the wasmrpc server"),
            })
        }
    }

    /// The bucket's name, as opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key` read as JSON into a `T`, or `None` when the key
    /// is absent. A value that is not a `T` is a [`KvError::Deserialize`].
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, KvError> {
        self.get_bytes(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Sets `key` to `value` as JSON text, replacing any value before.
    ///
    /// `value` may be unsized: `bucket.set("name", "Ada")` stores `"Ada"`.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), KvError> {
        self.set_bytes(key, &encode(key, value)?)
    }

    /// The bytes of `key`, or `None` when it is absent.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner.get(key).map_err(|e| self.error("get", Some(key), e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(key)
        }
    }

    /// Sets `key` to `value`, bytes as they are.
    pub fn set_bytes(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner.set(key, value).map_err(|e| self.error("set", Some(key), e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable((key, value))
        }
    }

    /// Deletes `key`; deleting an absent key is no error.
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner.delete(key).map_err(|e| self.error("delete", Some(key), e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(key)
        }
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner.exists(key).map_err(|e| self.error("exists", Some(key), e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(key)
        }
    }

    /// One page of keys (in byte order, at most 1000 by default) and the
    /// cursor of the next page, `None` after the last one. Start with
    /// `cursor: None`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmrpc_guest::kv::KvError> {
    /// let bucket = wasmrpc_guest::kv::open_default()?;
    /// let (first, next) = bucket.keys(None)?;
    /// if let Some(cursor) = next {
    ///     let (second, _) = bucket.keys(Some(&cursor))?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys(&self, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner
                .list_keys(cursor)
                .map(|page| (page.keys, page.cursor))
                .map_err(|e| self.error("list-keys", None, e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(cursor)
        }
    }

    /// Every key of the bucket, in byte order, fetched a page at a time as
    /// the iterator goes. A failed page is the last item.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmrpc_guest::kv::KvError> {
    /// let bucket = wasmrpc_guest::kv::open_default()?;
    /// let sessions = bucket.all_keys().filter(|k| k.as_ref().map_or(true, |k| k.starts_with("session:")));
    /// let sessions: Vec<String> = sessions.collect::<Result<_, _>>()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn all_keys(&self) -> Keys<'_> {
        Keys { bucket: self, page: Vec::new().into_iter(), cursor: None, done: false }
    }

    /// Adds `delta` (which may be negative) to the counter `key`, atomically,
    /// and returns its new value. An absent key counts from 0.
    ///
    /// The counter is decimal text: a key holding anything else, or a sum
    /// past 64 bits, is an error, and `get::<i64>(key)` reads it.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            atomics::increment(&self.inner, key, delta).map_err(|e| self.error("increment", Some(key), e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable((key, delta))
        }
    }

    /// Replaces the value of `key` with `f(old)` atomically, and returns the
    /// new value: `old` is the value as JSON (`None` when absent).
    ///
    /// A compare-and-swap loop: when another call changed the key between
    /// the read and the write, `f` runs again on the newer value (so it
    /// should have no other effects), at most [`MAX_UPDATE_ATTEMPTS`]
    /// times; then [`KvError::Contended`].
    ///
    /// ```no_run
    /// use wasmrpc_guest::kv;
    ///
    /// # fn main() -> Result<(), kv::KvError> {
    /// // Keep the last 10 visitors.
    /// let recent = kv::open_default()?.update("recent", |old: Option<Vec<String>>| {
    ///     let mut names = old.unwrap_or_default();
    ///     names.push("Ada".to_owned());
    ///     let excess = names.len().saturating_sub(10);
    ///     names.drain(..excess);
    ///     names
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<T, F>(&self, key: &str, mut f: F) -> Result<T, KvError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> T,
    {
        #[cfg(target_arch = "wasm32")]
        {
            let mut cas = atomics::Cas::new(&self.inner, key).map_err(|e| self.error("cas", Some(key), e))?;
            for _ in 0..MAX_UPDATE_ATTEMPTS {
                let old = cas.current().map_err(|e| self.error("cas", Some(key), e))?;
                let new = f(old.map(|bytes| decode(key, &bytes)).transpose()?);
                match atomics::swap(cas, &encode(key, &new)?) {
                    Ok(()) => return Ok(new),
                    Err(atomics::CasError::CasFailed(newer)) => cas = newer,
                    Err(atomics::CasError::StoreError(e)) => return Err(self.error("swap", Some(key), e)),
                }
            }
            Err(KvError::Contended { key: key.to_owned(), attempts: MAX_UPDATE_ATTEMPTS })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable((key, &mut f))
        }
    }

    /// The values of `keys` read as JSON, in the order asked, each `None`
    /// when absent. Not atomic: a key written meanwhile may be read before
    /// or after the write.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmrpc_guest::kv::KvError> {
    /// let bucket = wasmrpc_guest::kv::open_default()?;
    /// for (key, price) in bucket.get_many::<f64>(["price:apple", "price:pear"])? {
    ///     println!("{key}: {price:?}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_many<T: DeserializeOwned>(
        &self,
        keys: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Vec<(String, Option<T>)>, KvError> {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_KEYS) {
            for (key, bytes) in self.get_many_bytes(chunk)? {
                let value = bytes.map(|bytes| decode(&key, &bytes)).transpose()?;
                values.push((key, value));
            }
        }
        Ok(values)
    }

    /// Sets each key to its value as JSON text. Not atomic: a failure may
    /// leave some of the keys set.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), wasmrpc_guest::kv::KvError> {
    /// let bucket = wasmrpc_guest::kv::open_default()?;
    /// bucket.set_many([("price:apple", 1.25), ("price:pear", 0.8)])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_many<K: Into<String>, V: Serialize>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), KvError> {
        let entries = entries
            .into_iter()
            .map(|(key, value)| {
                let key = key.into();
                let value = encode(&key, &value)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, KvError>>()?;
        entries.chunks(BATCH_KEYS).try_for_each(|chunk| self.set_many_bytes(chunk))
    }

    /// Deletes each of `keys` (absent ones are no error). Not atomic.
    pub fn delete_many(&self, keys: impl IntoIterator<Item = impl Into<String>>) -> Result<(), KvError> {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        keys.chunks(BATCH_KEYS).try_for_each(|chunk| self.delete_many_chunk(chunk))
    }

    fn get_many_bytes(&self, keys: &[String]) -> Result<Vec<Found>, KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            batch::get_many(&self.inner, keys).map_err(|e| self.error("get-many", None, e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(keys)
        }
    }

    fn set_many_bytes(&self, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            batch::set_many(&self.inner, entries).map_err(|e| self.error("set-many", None, e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(entries)
        }
    }

    fn delete_many_chunk(&self, keys: &[String]) -> Result<(), KvError> {
        #[cfg(target_arch = "wasm32")]
        {
            batch::delete_many(&self.inner, keys).map_err(|e| self.error("delete-many", None, e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.unreachable(keys)
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn error(&self, operation: &'static str, key: Option<&str>, e: store::Error) -> KvError {
        KvError::from_wit(operation, &self.name, key, e)
    }

    /// Natively no `Bucket` exists ([`Bucket::open`] fails), so no method
    /// gets here.
    #[cfg(not(target_arch = "wasm32"))]
    fn unreachable<T>(&self, _: impl Sized) -> T {
        unreachable!("bucket {:?} opened outside Wasm", self.name)
    }
}

/// The iterator of [`Bucket::all_keys`]: every key, a page fetched at a time.
#[derive(Debug)]
pub struct Keys<'a> {
    bucket: &'a Bucket,
    page: std::vec::IntoIter<String>,
    cursor: Option<String>,
    done: bool,
}

impl Iterator for Keys<'_> {
    type Item = Result<String, KvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match self.bucket.keys(self.cursor.as_deref()) {
                Ok((keys, cursor)) => {
                    self.done = cursor.is_none();
                    self.cursor = cursor;
                    self.page = keys.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Why a key-value operation failed.
///
/// `?` in a `#[procedure]` returning `Result<T, wasmrpc_guest::Error>`
/// answers it as a JSON-RPC error with code [`Error::KEY_VALUE`] (-32010),
/// this error's `Display` text as the message (`key-value: set "big": value
/// of 1048577 bytes is too large: ...`), and `data` with the `kind` (the
/// variant: `"no-such-store"`, `"access-denied"`, `"other"`, `"serialize"`,
/// `"deserialize"`, `"contended"`) and, where there is one, the `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvError {
    /// `no-such-store`: the server does not recognise the bucket.
    NoSuchStore {
        /// The bucket's name.
        bucket: String,
    },
    /// `access-denied`: the procedure may not use the bucket.
    AccessDenied {
        /// The bucket's name.
        bucket: String,
    },
    /// `other(message)`: the server refused or failed the operation: a key,
    /// value or batch over its limit, the quota, an `increment` of a value
    /// that is not a counter, a storage failure.
    Other {
        /// The `wasi:keyvalue` function that failed (`"set"`, `"list-keys"`, ...).
        operation: &'static str,
        /// The key it was given, if one.
        key: Option<String>,
        /// The server's message.
        message: String,
    },
    /// A value could not be written as JSON (a map with non-string keys, a
    /// `Serialize` impl that failed).
    Serialize {
        /// The key being written.
        key: String,
        /// serde_json's message.
        message: String,
    },
    /// A stored value is not JSON of the type asked for.
    Deserialize {
        /// The key read.
        key: String,
        /// serde_json's message.
        message: String,
    },
    /// [`Bucket::update`] lost the race [`MAX_UPDATE_ATTEMPTS`] times:
    /// other calls kept changing the key.
    Contended {
        /// The key updated.
        key: String,
        /// How many times it tried.
        attempts: u32,
    },
}

impl KvError {
    /// The `data.kind` of the JSON-RPC error: the variant's name in
    /// kebab-case, as the WIT names its errors.
    pub fn kind(&self) -> &'static str {
        match self {
            KvError::NoSuchStore { .. } => "no-such-store",
            KvError::AccessDenied { .. } => "access-denied",
            KvError::Other { .. } => "other",
            KvError::Serialize { .. } => "serialize",
            KvError::Deserialize { .. } => "deserialize",
            KvError::Contended { .. } => "contended",
        }
    }

    /// The key the failed operation was about, if one.
    pub fn key(&self) -> Option<&str> {
        match self {
            KvError::NoSuchStore { .. } | KvError::AccessDenied { .. } => None,
            KvError::Other { key, .. } => key.as_deref(),
            KvError::Serialize { key, .. } | KvError::Deserialize { key, .. } | KvError::Contended { key, .. } => {
                Some(key)
            }
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn from_wit(operation: &'static str, bucket: &str, key: Option<&str>, e: store::Error) -> KvError {
        match e {
            store::Error::NoSuchStore => KvError::NoSuchStore { bucket: bucket.to_owned() },
            store::Error::AccessDenied => KvError::AccessDenied { bucket: bucket.to_owned() },
            store::Error::Other(message) => KvError::Other { operation, key: key.map(str::to_owned), message },
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NoSuchStore { bucket } => write!(f, "key-value: no bucket {bucket:?} (no-such-store)"),
            KvError::AccessDenied { bucket } => {
                write!(f, "key-value: access to bucket {bucket:?} denied (access-denied)")
            }
            KvError::Other { operation, key: Some(key), message } => {
                write!(f, "key-value: {operation} {key:?}: {message}")
            }
            KvError::Other { operation, key: None, message } => write!(f, "key-value: {operation}: {message}"),
            KvError::Serialize { key, message } => {
                write!(f, "key-value: cannot write the value of {key:?} as JSON: {message}")
            }
            KvError::Deserialize { key, message } => {
                write!(f, "key-value: the value of {key:?} is not the JSON expected: {message}")
            }
            KvError::Contended { key, attempts } => write!(
                f,
                "key-value: update of {key:?} gave up after {attempts} attempts: other calls kept changing it"
            ),
        }
    }
}

impl std::error::Error for KvError {}

impl From<KvError> for Error {
    fn from(err: KvError) -> Error {
        let data = match err.key() {
            Some(key) => json!({ "kind": err.kind(), "key": key }),
            None => json!({ "kind": err.kind() }),
        };
        Error::new(Error::KEY_VALUE, err.to_string()).with_data(data)
    }
}

/// The JSON text of `value`, to store under `key`.
fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, KvError> {
    serde_json::to_vec(value).map_err(|e| KvError::Serialize { key: key.to_owned(), message: e.to_string() })
}

/// The value of `key`, read as JSON.
fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, KvError> {
    serde_json::from_slice(bytes).map_err(|e| KvError::Deserialize { key: key.to_owned(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn typed_values_are_json_text() {
        assert_eq!(encode("k", &42).unwrap(), b"42");
        assert_eq!(encode("k", "Ada").unwrap(), b"\"Ada\"");
        assert_eq!(encode("k", &json!({"text": "hi"})).unwrap(), br#"{"text":"hi"}"#);
        assert_eq!(decode::<Vec<i32>>("k", b"[1,2]").unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_counter_reads_as_a_number() {
        // The server keeps counters as decimal text.
        assert_eq!(decode::<i64>("hits", b"12800").unwrap(), 12800);
        assert_eq!(decode::<i64>("hits", b"-3").unwrap(), -3);
    }

    #[test]
    fn values_that_are_not_json_fail_naming_the_key() {
        let err = decode::<i64>("greeting", b"hello").unwrap_err();
        assert_eq!(err.kind(), "deserialize");
        assert_eq!(err.key(), Some("greeting"));
        assert!(
            err.to_string().starts_with(r#"key-value: the value of "greeting" is not the JSON expected: "#),
            "{err}"
        );

        let err = decode::<String>("n", b"1").unwrap_err();
        assert!(matches!(err, KvError::Deserialize { .. }));
    }

    #[test]
    fn values_that_cannot_be_json_fail_naming_the_key() {
        let map: BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into();
        let err = encode("grid", &map).unwrap_err();
        assert_eq!(err.kind(), "serialize");
        assert!(err.to_string().starts_with(r#"key-value: cannot write the value of "grid" as JSON: "#), "{err}");
    }

    #[test]
    fn server_errors_become_key_value_rpc_errors() {
        let err = KvError::Other {
            operation: "set",
            key: Some("big".to_owned()),
            message: "value of 1048577 bytes is too large: values are at most 1048576 bytes (1 MiB)".to_owned(),
        };
        let rpc = Error::from(err);
        assert_eq!(rpc.code, Error::KEY_VALUE);
        assert_eq!(rpc.code, -32010);
        assert_eq!(
            rpc.message,
            r#"key-value: set "big": value of 1048577 bytes is too large: values are at most 1048576 bytes (1 MiB)"#
        );
        assert_eq!(rpc.data, Some(json!({"kind": "other", "key": "big"})));

        let rpc = Error::from(KvError::Other {
            operation: "list-keys",
            key: None,
            message: "not a valid cursor: x".to_owned(),
        });
        assert_eq!(rpc.message, "key-value: list-keys: not a valid cursor: x");
        assert_eq!(rpc.data, Some(json!({"kind": "other"})));
    }

    #[test]
    fn store_errors_name_the_bucket() {
        let rpc = Error::from(KvError::NoSuchStore { bucket: "b".to_owned() });
        assert_eq!((rpc.code, rpc.message.as_str()), (-32010, r#"key-value: no bucket "b" (no-such-store)"#));
        assert_eq!(rpc.data, Some(json!({"kind": "no-such-store"})));
        let rpc = Error::from(KvError::AccessDenied { bucket: "b".to_owned() });
        assert_eq!(rpc.message, r#"key-value: access to bucket "b" denied (access-denied)"#);
        let rpc = Error::from(KvError::Contended { key: "k".to_owned(), attempts: MAX_UPDATE_ATTEMPTS });
        assert_eq!(
            rpc.message,
            r#"key-value: update of "k" gave up after 10000 attempts: other calls kept changing it"#
        );
        assert_eq!(rpc.data, Some(json!({"kind": "contended", "key": "k"})));
    }

    #[test]
    fn question_mark_in_a_procedure_converts() {
        fn procedure() -> Result<i64, Error> {
            Ok(open_default()?.increment("hits", 1)?)
        }
        // Natively there is no server: opening fails, as a -32010 error.
        let err = procedure().unwrap_err();
        assert_eq!(err.code, Error::KEY_VALUE);
        assert!(err.message.contains("needs the wasmrpc server"), "{}", err.message);
    }
}
