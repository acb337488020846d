//! Procedures' configuration (`wasi:config/store`): variables and secrets
//! set per procedure *name* through the admin API (`admin/config.rs`), read
//! by the guest through one `get` (`sandbox/capabilities/config.rs`). Kept
//! in the data dir (`files.rs`: one file per name, mode 0600) or in the
//! shared PostgreSQL registry (`pg.rs`: a table, every replica sees it).
//!
//! A key is a variable or a secret, never both; the guest cannot tell them
//! apart. A secret's value is never shown: not by `GET
//! /procedures/{name}/config` (names only), not in an error or a log line
//! (messages name keys, never values), not by `Debug`.
//!
//! Calls read a name's configuration from a cache of `Arc<ProcConfig>`: one
//! lock and one clone of an `Arc`, at the guest's first `get` of the call;
//! a call that never calls `get` touches nothing here. A change (the admin
//! API's PUT or DELETE) writes the backend, then replaces the cache entry,
//! so calls that start after it is answered see it. Other replicas learn
//! of a change through the registry's change log (`replica.rs` calls
//! [`Vars::forget`] for each changed name), then load the name again at its
//! next `get`.

pub mod files;
pub mod pg;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Largest value of a variable or a secret: 64 KiB.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Most bytes of keys and values one procedure name may have: 1 MiB.
pub const MAX_TOTAL_BYTES: usize = 1 << 20;

/// One key's value and whether it is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub secret: bool,
}

/// A procedure name's configuration: every key, in byte order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProcConfig {
    pub entries: BTreeMap<String, Entry>,
}

impl fmt::Debug for ProcConfig {
    /// Keys, and values of variables only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, entry) in &self.entries {
            if entry.secret {
                map.entry(key, &"(secret)");
            } else {
                map.entry(key, &entry.value);
            }
        }
        map.finish()
    }
}

impl ProcConfig {
    /// What `GET /procedures/{name}/config` answers: the variables with
    /// their values, the secrets by name only.
    pub fn shown(&self) -> Value {
        let variables: serde_json::Map<String, Value> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.secret)
            .map(|(k, e)| (k.clone(), Value::String(e.value.clone())))
            .collect();
        let secrets: Vec<&str> = self.entries.iter().filter(|(_, e)| e.secret).map(|(k, _)| k.as_str()).collect();
        json!({ "variables": variables, "secrets": secrets })
    }

    /// The value of `key`, variable or secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// Bytes of keys and values: what [`MAX_TOTAL_BYTES`] counts.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(k, e)| k.len() + e.value.len()).sum()
    }

    /// This configuration with `changes` applied, checked against the total.
    pub fn merged(&self, name: &str, changes: &[Change]) -> Result<ProcConfig, VarsError> {
        let mut next = self.clone();
        for change in changes {
            match &change.set {
                Some(entry) => next.entries.insert(change.key.clone(), entry.clone()),
                None => next.entries.remove(&change.key),
            };
        }
        let bytes = next.bytes();
        if bytes > MAX_TOTAL_BYTES {
            return Err(VarsError::TooLarge(format!(
                "procedure `{name}` would have {bytes} bytes of configuration (keys and values), past the \
                 limit of {MAX_TOTAL_BYTES} bytes (1 MiB)"
            )));
        }
        Ok(next)
    }
}

/// One key's change: set (to a variable or a secret) or unset.
#[derive(Clone)]
pub struct Change {
    pub key: String,
    /// `None`: unset.
    pub set: Option<Entry>,
}

impl fmt::Debug for Change {
    /// The key and what is done to it, never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.set {
            Some(Entry { secret: true, .. }) => "set secret",
            Some(_) => "set variable",
            None => "unset",
        };
        write!(f, "{what} {:?}", self.key)
    }
}

/// Why a configuration operation failed. Messages name keys, never values.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    /// The request is malformed or breaks a rule (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Past a size limit (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The shared registry cannot be reached (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The backend failed (disk, database).
    #[error("configuration storage failed: {0:#}")]
    Storage(anyhow::Error),
}

impl From<crate::store::StoreError> for VarsError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(m) => VarsError::Unavailable(m),
            crate::store::StoreError::NotFound(m) => VarsError::Invalid(m),
            crate::store::StoreError::Internal(e) => VarsError::Storage(e),
        }
    }
}

/// Checks a key: 1 to [`MAX_KEY_BYTES`] bytes of `a-z`, `0-9`, `_`, `.`, `-`.
pub fn check_key(key: &str) -> Result<(), VarsError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(VarsError::Invalid(format!(
            "invalid configuration key {}: use 1 to {MAX_KEY_BYTES} characters of a-z, 0-9, `_`, `.` and `-`",
            crate::logtext::quoted(key)
        )))
    }
}

/// The changes a `PUT /procedures/{name}/config` body asks for:
/// `{"variables": {KEY: VALUE|null}, "secrets": {KEY: VALUE|null}}`, either
/// part optional; `null` unsets the key (whichever kind it is). Errors name
/// the key, never the value.
pub fn parse_changes(body: &[u8]) -> Result<Vec<Change>, VarsError> {
    // serde_json's syntax errors give a line and a column, never the text.
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| VarsError::Invalid(format!("the body is not JSON ({e}): send {}", example())))?;
    let Value::Object(parts) = body else {
        return Err(VarsError::Invalid(format!("the body must be a JSON object: {}", example())));
    };
    let mut changes: Vec<Change> = Vec::new();
    for (part, keys) in parts {
        let secret = match part.as_str() {
            "variables" => false,
            "secrets" => true,
            _ => {
                return Err(VarsError::Invalid(format!(
                    "unknown field {}: the body has `variables` and `secrets`, {}",
                    crate::logtext::quoted(&part),
                    example()
                )))
            }
        };
        let Value::Object(keys) = keys else {
            return Err(VarsError::Invalid(format!("`{part}` must be an object of keys and string values")));
        };
        for (key, value) in keys {
            check_key(&key)?;
            if changes.iter().any(|c| c.key == key) {
                return Err(VarsError::Invalid(format!(
                    "key {} is both in `variables` and in `secrets`: a key is one or the other",
                    crate::logtext::quoted(&key)
                )));
            }
            let set = match value {
                Value::Null => None,
                Value::String(value) if value.len() > MAX_VALUE_BYTES => {
                    return Err(VarsError::TooLarge(format!(
                        "the value of {} is {} bytes: values are at most {MAX_VALUE_BYTES} bytes (64 KiB)",
                        crate::logtext::quoted(&key),
                        value.len()
                    )))
                }
                Value::String(value) => Some(Entry { value, secret }),
                _ => {
                    return Err(VarsError::Invalid(format!(
                        "the value of {} in `{part}` is not a string: values are strings (null unsets the key)",
                        crate::logtext::quoted(&key)
                    )))
                }
            };
            changes.push(Change { key, set });
        }
    }
    Ok(changes)
}

fn example() -> &'static str {
    r#"{"variables": {"KEY": "VALUE"}, "secrets": {"KEY": "VALUE"}} (null unsets a key)"#
}

enum Backend {
    Files(files::Files),
    /// Boxed: a store is much larger than a path.
    Postgres(Box<pg::PgVars>),
}

/// The cached configurations, and the count of invalidations: a load that
/// started before one may have read the old state and must not be cached.
#[derive(Default)]
struct Cache {
    names: HashMap<String, Arc<ProcConfig>>,
    epoch: u64,
}

/// Every procedure name's configuration, on one backend.
pub struct Vars {
    backend: Backend,
    cache: Mutex<Cache>,
    /// Changes through this process one at a time (the data dir's
    /// read-modify-write; PostgreSQL also locks in the database).
    changing: tokio::sync::Mutex<()>,
}

impl Vars {
    /// The files in `data_dir/config/`, the directory made if absent. Blocking.
    pub fn files(data_dir: &std::path::Path) -> anyhow::Result<Vars> {
        Ok(Vars::with(Backend::Files(files::Files::open(data_dir)?)))
    }

    /// The table in the shared registry.
    pub fn postgres(store: crate::store::pg::PgStore) -> Vars {
        Vars::with(Backend::Postgres(Box::new(pg::PgVars::new(store))))
    }

    fn with(backend: Backend) -> Vars {
        Vars { backend, cache: Mutex::default(), changing: tokio::sync::Mutex::new(()) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `name`'s configuration if it is cached: what a call reads first.
    pub fn cached(&self, name: &str) -> Option<Arc<ProcConfig>> {
        self.cache().names.get(name).cloned()
    }

    /// Whether a load waits on another machine (PostgreSQL): a call lends
    /// its slot meanwhile.
    pub fn loads_wait(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// `name`'s configuration, from the cache or the backend (then cached).
    pub async fn get(&self, name: &str) -> Result<Arc<ProcConfig>, VarsError> {
        if let Some(config) = self.cached(name) {
            return Ok(config);
        }
        let epoch = self.cache().epoch;
        let config = Arc::new(self.read(name).await?);
        let mut cache = self.cache();
        if cache.epoch == epoch {
            cache.names.insert(name.to_owned(), config.clone());
        }
        Ok(config)
    }

    async fn read(&self, name: &str) -> Result<ProcConfig, VarsError> {
        match &self.backend {
            Backend::Files(files) => files.read(name).await,
            Backend::Postgres(db) => db.read(name).await,
        }
    }

    /// Applies `changes` to `name`'s configuration, all or none; answers
    /// the new configuration, which calls starting from now see.
    pub async fn change(&self, name: &str, changes: Vec<Change>) -> Result<Arc<ProcConfig>, VarsError> {
        let _one_at_a_time = self.changing.lock().await;
        let next = match &self.backend {
            Backend::Files(files) => {
                let next = files.read(name).await?.merged(name, &changes)?;
                files.write(name, &next).await?;
                next
            }
            Backend::Postgres(db) => db.change(name, &changes).await?,
        };
        let next = Arc::new(next);
        let mut cache = self.cache();
        cache.epoch += 1;
        cache.names.insert(name.to_owned(), next.clone());
        tracing::info!(procedure = name, keys = next.entries.len(), "configuration changed");
        Ok(next)
    }

    /// Removes every key of `name`.
    pub async fn erase(&self, name: &str) -> Result<Arc<ProcConfig>, VarsError> {
        let current = self.read(name).await?;
        let changes = current.entries.into_keys().map(|key| Change { key, set: None }).collect();
        self.change(name, changes).await
    }

    /// Drops `name` from the cache (another replica changed it): the next
    /// `get` loads it again.
    pub fn forget(&self, name: &str) {
        let mut cache = self.cache();
        cache.epoch += 1;
        cache.names.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for good in ["a", "db.url", "api_key-2", &"k".repeat(128)] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "a b", "é", "a/b", &"k".repeat(129)] {
            let err = check_key(bad).unwrap_err().to_string();
            assert!(err.contains("a-z, 0-9"), "{err}");
        }
    }

    #[test]
    fn a_body_is_parsed_and_errors_never_show_values() {
        let changes = parse_changes(br#"{"variables": {"a": "1", "b": null}, "secrets": {"c": "hunter2"}}"#).unwrap();
        assert_eq!(format!("{changes:?}"), r#"[set secret "c", set variable "a", unset "b"]"#);
        for bad in [
            &br#"{"secrets": {"c": 12345678}}"#[..],
            br#"{"secrets": {"c": ["hunter2"]}}"#,
            br#"{"secrets": {"c": "hunter2"}, "variables": {"c": "hunter2"}}"#,
            br#"{"secrets": "hunter2"}"#,
            br#"{"secrets": {"c": "hunter2"#,
            br#"{"secret": {"c": "hunter2"}}"#,
        ] {
            let err = parse_changes(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && !err.contains("12345678"), "{err}");
        }
        let big = format!(r#"{{"secrets": {{"c": "{}"}}}}"#, "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(matches!(parse_changes(big.as_bytes()), Err(VarsError::TooLarge(_))));
    }

    #[test]
    fn merging_replaces_kinds_and_checks_the_total() {
        let set = |key: &str, value: &str, secret| Change {
            key: key.into(),
            set: Some(Entry { value: value.into(), secret }),
        };
        let config = ProcConfig::default().merged("p", &[set("a", "1", false), set("b", "2", true)]).unwrap();
        assert_eq!(config.shown(), json!({"variables": {"a": "1"}, "secrets": ["b"]}));
        assert_eq!(format!("{config:?}"), r#"{"a": "1", "b": "(secret)"}"#);
        let config = config.merged("p", &[set("b", "3", false), Change { key: "a".into(), set: None }]).unwrap();
        assert_eq!(config.shown(), json!({"variables": {"b": "3"}, "secrets": []}));
        let value = "x".repeat(MAX_VALUE_BYTES);
        let many: Vec<Change> = (0..16).map(|i| set(&format!("k{i}"), &value, true)).collect();
        assert!(matches!(config.merged("p", &many), Err(VarsError::TooLarge(_))));
    }
}
