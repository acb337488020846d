//! Caller keys and rate limits: who may call which procedures over
//! JSON-RPC, and how often.
//!
//! A caller key has a name, the procedures it may call (names or globs:
//! `math`, `calc*`, `*`) and optionally its own rate. It is made by the
//! admin API (`POST /keys`, `admin/keys.rs`), shown once, and kept hashed
//! (SHA-256 of the key: a key is 256 random bits, so no slower hash is
//! needed) in the registry's store: the data dir (`files.rs`) or the shared
//! PostgreSQL (`pg.rs`). Every replica keeps the whole table in memory
//! ([`Keys`]); a request's key is looked up there by its hash, never in the
//! store. A change on one replica is recorded in the registry's change log
//! under [`CHANGE_NAME`], and the others reload their table when they
//! follow it (`replica.rs`: at the notification, or at the next poll,
//! within `REGISTRY_POLL`).
//!
//! On the request path ([`caller_key`], then [`admit`] and [`covers`] from
//! `rpc.rs`):
//!
//! - `Authorization: Bearer KEY` on `POST /rpc` (or the WebSocket upgrade)
//!   names the caller's key; a wrong key is HTTP 401, whatever the flags.
//!   With `--require-call-key` a request without one is 401 too. The
//!   server's admin token counts as a key to every procedure, without a
//!   rate (the admin may deploy code anyway).
//! - A call of a procedure the key does not cover is -32601 "Method not
//!   found", the very bytes a procedure that does not exist gets;
//!   `rpc.discover` lists only covered methods. Keys govern top-level calls
//!   only: a procedure's own calls (`client.call`) are not checked.
//! - Each call of a request takes a token from the key's bucket (its rate,
//!   else `--rate-limit`) or, without a key, from the client address's
//!   (`--rate-limit`); see [`limit`].
//!
//! With no key presented and no `--rate-limit`, the request path costs one
//! header lookup: nothing is locked, allocated or timed.

pub mod files;
pub mod limit;
pub mod pg;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::http_error::HttpResponse;
use crate::rpc;
use limit::{Limiter, Rate};

/// The name under which a change of keys is recorded in the shared
/// registry's change log: not a valid procedure name, so no procedure's.
pub const CHANGE_NAME: &str = "@keys";
/// What every key starts with, so a leaked one is recognised (by people
/// and secret scanners).
pub const KEY_PREFIX: &str = "wrpc_";
/// Random bytes in a key: 256 bits from the OS.
const KEY_BYTES: usize = 32;
/// Characters of a key shown by `GET /keys` to recognise it: the prefix
/// and 6 of its 43 random characters (36 of 256 bits).
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 6;
/// Longest key name and glob.
pub const MAX_NAME_BYTES: usize = 63;
/// Most globs one key may have.
pub const MAX_GLOBS: usize = 100;
/// Most keys a server keeps.
pub const MAX_KEYS: usize = 10_000;

/// A key as the store keeps it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub name: String,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// The key's first 11 characters (`wrpc_` and 6 more), for recognition.
    pub prefix: String,
    /// Procedure names or globs.
    pub procedures: Vec<String>,
    /// Its own rate; `None`: `--rate-limit`, if set.
    pub rate: Option<Rate>,
    /// RFC 3339, seconds.
    pub created_at: String,
}

impl Stored {
    /// What `GET /keys` shows of it (and `POST /keys`, with the key).
    pub fn shown(&self) -> Value {
        json!({
            "name": self.name,
            "prefix": self.prefix,
            "procedures": self.procedures,
            "rate": self.rate,
            "created_at": self.created_at,
        })
    }
}

/// A key in a replica's table: what it may call, and its bucket.
pub struct Key {
    pub stored: Stored,
    /// Its bucket: its own rate, else `--rate-limit`, else none.
    limiter: Option<Arc<Limiter>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("name", &self.stored.name).field("procedures", &self.stored.procedures).finish()
    }
}

impl Key {
    /// Whether the key may call `method` (`procedure.method` or `procedure`).
    pub fn covers(&self, method: &str) -> bool {
        let procedure = method.split_once('.').map_or(method, |(procedure, _)| procedure);
        self.stored.procedures.iter().any(|glob| glob_matches(glob, procedure))
    }
}

/// Whether `name` matches `glob`, where `*` stands for any characters
/// (none included) and every other character for itself.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.as_bytes(), name.as_bytes());
    let (mut g, mut n) = (0, 0);
    // Where the last `*` was, and where its match in `name` ends now.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` take one more character.
                Some((sg, sn)) => {
                    star = Some((sg, sn + 1));
                    g = sg + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A bad name, glob or rate (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// A key of that name exists (HTTP 409).
    #[error("{0}")]
    Exists(String),
    /// No key of that name (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The shared registry cannot be reached (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The backend failed (disk, database).
    #[error("key storage failed: {0:#}")]
    Storage(anyhow::Error),
}

impl From<crate::store::StoreError> for KeysError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(m) => KeysError::Unavailable(m),
            crate::store::StoreError::NotFound(m) => KeysError::NotFound(m),
            crate::store::StoreError::Internal(e) => KeysError::Storage(e),
        }
    }
}

/// Checks a key name: 1 to 63 characters of a-z, 0-9, `_`, `-`, `.`, a
/// letter or digit first.
pub fn check_name(name: &str) -> Result<(), KeysError> {
    let valid = name.len() <= MAX_NAME_BYTES
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(KeysError::Invalid(format!(
            "invalid key name {}: use 1 to {MAX_NAME_BYTES} characters of a-z, 0-9, `_`, `-` and `.`, \
             a letter or digit first",
            crate::logtext::quoted(name)
        )))
    }
}

/// Checks a procedure glob: 1 to 63 characters of what procedure names
/// are made of (a-z, 0-9, `_`, `-`) and `*`.
fn check_glob(glob: &str) -> Result<(), KeysError> {
    let valid = !glob.is_empty()
        && glob.len() <= MAX_NAME_BYTES
        && glob.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*'));
    if valid {
        Ok(())
    } else {
        Err(KeysError::Invalid(format!(
            "invalid procedure glob {}: a procedure name (`math`) or a pattern with `*` (`calc*`, `*`), \
             1 to {MAX_NAME_BYTES} characters of a-z, 0-9, `_`, `-` and `*`; a key covers whole procedures, \
             not single methods",
            crate::logtext::quoted(glob)
        )))
    }
}

/// What `POST /keys` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub name: String,
    pub procedures: Vec<String>,
    pub rate: Option<Rate>,
}

const EXAMPLE: &str =
    r#"{"name": "billing", "procedures": ["math", "calc*"], "rate": {"per_second": 10, "burst": 20}} (rate optional)"#;

/// Parses and checks a `POST /keys` body.
pub fn parse_new(body: &[u8]) -> Result<NewKey, KeysError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RateBody {
        per_second: u32,
        burst: Option<u32>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        procedures: Vec<String>,
        rate: Option<RateBody>,
    }
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| KeysError::Invalid(format!("the body is not a key request ({e}): send {EXAMPLE}")))?;
    check_name(&body.name)?;
    if body.procedures.is_empty() {
        return Err(KeysError::Invalid(
            "`procedures` is empty: name the procedures the key may call (`[\"*\"]` for all)".into(),
        ));
    }
    if body.procedures.len() > MAX_GLOBS {
        return Err(KeysError::Invalid(format!("a key has at most {MAX_GLOBS} procedure globs")));
    }
    for glob in &body.procedures {
        check_glob(glob)?;
    }
    let rate = body
        .rate
        .map(|r| Rate::new(r.per_second, r.burst))
        .transpose()
        .map_err(|e| KeysError::Invalid(format!("bad `rate`: {e}")))?;
    Ok(NewKey { name: body.name, procedures: body.procedures, rate })
}

/// A fresh key: [`KEY_PREFIX`] and 256 bits from the OS, base64url.
fn fresh_key() -> Result<String, KeysError> {
    use base64::Engine as _;
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| KeysError::Storage(anyhow::anyhow!("the OS random number generator failed: {e}")))?;
    Ok(format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

fn hash(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

enum Backend {
    Files(files::Files),
    /// Boxed: a store is much larger than a path.
    Postgres(Box<pg::PgKeys>),
}

/// The keys in memory, by the hash of the key.
#[derive(Default)]
struct Table {
    by_hash: HashMap<[u8; 32], Arc<Key>>,
}

/// Every caller key, on one backend, and the table calls read.
pub struct Keys {
    backend: Backend,
    table: ArcSwap<Table>,
    /// `--rate-limit`: the rate of keys without their own.
    default_rate: Option<Rate>,
    /// Who presents the admin token: every procedure, no rate.
    admin: Arc<Key>,
    /// Changes through this process one at a time.
    changing: tokio::sync::Mutex<()>,
}

impl Keys {
    /// The keys in the data dir's `keys.json`. Blocking.
    pub fn files(config: &Config) -> anyhow::Result<Keys> {
        let files = files::Files::new(&config.data_dir);
        let stored = files.read_blocking()?;
        let keys = Keys::with(Backend::Files(files), config);
        keys.install(stored);
        Ok(keys)
    }

    /// The table in the shared registry, read now.
    pub async fn postgres(store: crate::store::pg::PgStore, config: &Config) -> Result<Keys, KeysError> {
        let db = pg::PgKeys::new(store);
        let stored = db.read_all().await?;
        let keys = Keys::with(Backend::Postgres(Box::new(db)), config);
        keys.install(stored);
        Ok(keys)
    }

    fn with(backend: Backend, config: &Config) -> Keys {
        let admin = Stored {
            name: "(admin token)".into(),
            sha256: String::new(),
            prefix: String::new(),
            procedures: vec!["*".into()],
            rate: None,
            created_at: String::new(),
        };
        Keys {
            backend,
            table: ArcSwap::default(),
            default_rate: config.rate_limit,
            admin: Arc::new(Key { stored: admin, limiter: None }),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Makes `stored` the table; a key that was there keeps its bucket.
    fn install(&self, stored: Vec<Stored>) {
        let old = self.table.load();
        let mut by_hash = HashMap::with_capacity(stored.len());
        for stored in stored {
            let Some(hash) = decode_hash(&stored.sha256) else {
                tracing::error!(key = stored.name, "a caller key's hash is damaged; the key is ignored");
                continue;
            };
            let rate = stored.rate.or(self.default_rate);
            let limiter = match old.by_hash.get(&hash).and_then(|k| k.limiter.clone()) {
                Some(limiter) if Some(limiter.rate) == rate => Some(limiter),
                _ => rate.map(|rate| Arc::new(Limiter::new(rate))),
            };
            by_hash.insert(hash, Arc::new(Key { stored, limiter }));
        }
        self.table.store(Arc::new(Table { by_hash }));
    }

    fn current(&self) -> Vec<Stored> {
        self.table.load().by_hash.values().map(|k| k.stored.clone()).collect()
    }

    /// Every key, by name.
    pub fn list(&self) -> Vec<Stored> {
        let mut all = self.current();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The key presented as `key`, if it is one.
    pub fn find(&self, key: &[u8]) -> Option<Arc<Key>> {
        self.table.load().by_hash.get(&hash(key)).cloned()
    }

    /// Whether `key` (found earlier) is still a key: not removed since (the
    /// admin token's always is). A WebSocket connection asks at each message.
    pub fn holds(&self, key: &Arc<Key>) -> bool {
        Arc::ptr_eq(key, &self.admin)
            || decode_hash(&key.stored.sha256).is_some_and(|h| self.table.load().by_hash.contains_key(&h))
    }

    /// Makes a key; answers it as stored and the key itself (shown once).
    pub async fn create(&self, new: NewKey) -> Result<(Stored, String), KeysError> {
        let _one_at_a_time = self.changing.lock().await;
        let key = fresh_key()?;
        let stored = Stored {
            name: new.name,
            sha256: crate::store::sha256_hex(key.as_bytes()),
            prefix: key[..SHOWN_CHARS].to_owned(),
            procedures: new.procedures,
            rate: new.rate,
            created_at: crate::store::now_rfc3339(),
        };
        let name = stored.name.clone();
        let exists = || KeysError::Exists(format!("a key named `{name}` exists: remove it first"));
        let mut all = self.current();
        if all.len() >= MAX_KEYS {
            return Err(KeysError::Invalid(format!("this server has {MAX_KEYS} keys, the most it keeps")));
        }
        let stored = match &self.backend {
            Backend::Files(files) => {
                if all.iter().any(|k| k.name == stored.name) {
                    return Err(exists());
                }
                all.push(stored.clone());
                files.write(all.clone()).await?;
                stored
            }
            Backend::Postgres(db) => {
                // The database refuses a name taken on any replica; other
                // replicas' changes reach this table through the change log.
                let stored = db.create(stored).await?.ok_or_else(exists)?;
                all.retain(|k| k.name != stored.name);
                all.push(stored.clone());
                stored
            }
        };
        self.install(all);
        tracing::info!(key = stored.name, procedures = ?stored.procedures, "caller key created");
        Ok((stored, key))
    }

    /// Removes the key named `name`.
    pub async fn remove(&self, name: &str) -> Result<(), KeysError> {
        let _one_at_a_time = self.changing.lock().await;
        let missing = || KeysError::NotFound(format!("no key named `{name}`"));
        let mut all = self.current();
        match &self.backend {
            Backend::Files(files) => {
                let before = all.len();
                all.retain(|k| k.name != name);
                if all.len() == before {
                    return Err(missing());
                }
                files.write(all.clone()).await?;
            }
            Backend::Postgres(db) => {
                if !db.remove(name).await? {
                    return Err(missing());
                }
                all.retain(|k| k.name != name);
            }
        }
        self.install(all);
        tracing::info!(key = name, "caller key removed");
        Ok(())
    }

    /// Reads the table again from the store (another replica changed it).
    pub async fn reload(&self) -> Result<(), KeysError> {
        // Locked before reading: a create or remove of this replica's
        // between the read and the install would be undone until the next change.
        let _one_at_a_time = self.changing.lock().await;
        let all = match &self.backend {
            Backend::Files(files) => files.read().await?,
            Backend::Postgres(db) => db.read_all().await?,
        };
        self.install(all);
        Ok(())
    }
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Why a request's key was refused: answered 401 with a JSON-RPC body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub String);

impl Unauthorized {
    /// HTTP 401 with `WWW-Authenticate: Bearer` and the JSON-RPC error
    /// -32600 "Invalid Request", whose `data` says what was wrong.
    pub fn response(&self) -> HttpResponse {
        let mut response = crate::server::invalid_request(StatusCode::UNAUTHORIZED, self.0.clone());
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// The key a JSON-RPC request presents (`Authorization: Bearer KEY`):
/// `None` without one (refused with `--require-call-key`); a wrong one is
/// refused. The admin token is a key to every procedure, without a rate.
pub fn caller_key(app: &crate::server::App, headers: &HeaderMap) -> Result<Option<Arc<Key>>, Unauthorized> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        if app.config.require_call_key {
            crate::metrics::count(&crate::metrics::PUBLIC.missing_key, 1);
            return Err(Unauthorized(
                "missing caller key: this server requires `Authorization: Bearer KEY` on JSON-RPC requests \
                 (keys are made with `wasmrpc keys create`)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let Some(presented) = header.as_bytes().strip_prefix(b"Bearer ") else {
        crate::metrics::count(&crate::metrics::PUBLIC.wrong_key, 1);
        return Err(Unauthorized("the Authorization header must be `Bearer KEY`".into()));
    };
    let keys = app.registry.keys();
    if let Some(key) = keys.find(presented) {
        return Ok(Some(key));
    }
    if app
        .config
        .admin_token
        .as_deref()
        .is_some_and(|token| crate::admin::constant_time_eq(presented, token.as_bytes()))
    {
        return Ok(Some(keys.admin.clone()));
    }
    crate::metrics::count(&crate::metrics::PUBLIC.wrong_key, 1);
    Err(Unauthorized("wrong caller key: no such key (it may have been removed)".into()))
}

/// Whether the caller may call `method`: any caller without a key; with
/// one, the procedures it covers.
#[inline]
pub fn covers(caller: &rpc::Caller, method: &str) -> bool {
    caller.key.as_ref().is_none_or(|key| key.covers(method))
}

/// A request some of whose calls were refused by a rate limit.
#[derive(Debug, Clone)]
pub struct Limited {
    /// How many of its first calls may run.
    pub granted: usize,
    /// How long until the next call would be let through.
    pub retry_after: Duration,
    /// -32005's `data`: `{"limit": "10 calls per second, burst 20",
    /// "per": "key"|"address", "retry_after_ms": N}`.
    pub data: Value,
}

/// Takes a token for each of a request's `calls` from the caller's bucket:
/// `None` when every call may run (always, without a key's or address's
/// limit: then nothing is locked or timed).
#[inline]
pub fn admit(endpoint: &rpc::Endpoint, caller: &rpc::Caller, calls: usize) -> Option<Limited> {
    let n = u32::try_from(calls).unwrap_or(u32::MAX);
    let (rate, per, taken) = match &caller.key {
        Some(key) => {
            let limiter = key.limiter.as_ref()?;
            (limiter.rate, "key", limiter.take(n))
        }
        None => {
            let addresses = endpoint.rate_limit.as_ref()?;
            (addresses.rate, "address", addresses.take(caller.addr?, n))
        }
    };
    if taken.granted >= n {
        return None;
    }
    let counter =
        if per == "key" { &crate::metrics::PUBLIC.limited_by_key } else { &crate::metrics::PUBLIC.limited_by_address };
    crate::metrics::count(counter, u64::from(n - taken.granted));
    let retry_after_ms = u64::try_from(taken.retry_after.as_millis()).unwrap_or(u64::MAX).max(1);
    Some(Limited {
        granted: taken.granted as usize,
        retry_after: taken.retry_after,
        data: json!({"limit": rate.to_string(), "per": per, "retry_after_ms": retry_after_ms}),
    })
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_header(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let cases = [
            ("math", "math", true),
            ("math", "maths", false),
            ("math", "mat", false),
            ("*", "anything", true),
            ("*", "", true),
            ("calc*", "calc", true),
            ("calc*", "calculator", true),
            ("calc*", "xcalc", false),
            ("*-v2", "billing-v2", true),
            ("*-v2", "billing-v3", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*b", "abab", true),
            ("**", "x", true),
        ];
        for (glob, name, expected) in cases {
            assert_eq!(glob_matches(glob, name), expected, "{glob} ~ {name}");
        }
    }

    #[test]
    fn a_key_covers_methods_by_their_procedure() {
        let key = Key {
            stored: Stored {
                name: "k".into(),
                sha256: String::new(),
                prefix: String::new(),
                procedures: vec!["math".into(), "calc*".into()],
                rate: None,
                created_at: String::new(),
            },
            limiter: None,
        };
        assert!(key.covers("math.add"));
        assert!(key.covers("math"));
        assert!(key.covers("calculator.mul"));
        assert!(!key.covers("mathx.add"));
        assert!(!key.covers("echo.echo"));
    }

    #[test]
    fn requests_are_checked_with_a_clear_message() {
        let new = parse_new(br#"{"name": "billing", "procedures": ["math", "calc*"]}"#).unwrap();
        assert_eq!(new.rate, None);
        let new = parse_new(br#"{"name": "b.2", "procedures": ["*"], "rate": {"per_second": 5}}"#).unwrap();
        assert_eq!(new.rate, Some(Rate { per_second: 5, burst: 5 }));
        let refused = |body: &str, expected: &str| {
            let err = parse_new(body.as_bytes()).unwrap_err();
            assert!(matches!(err, KeysError::Invalid(_)), "{err:?}");
            assert!(err.to_string().contains(expected), "{body}: {err}");
        };
        refused(r#"{"name": "Billing", "procedures": ["*"]}"#, "invalid key name \"Billing\"");
        refused(r#"{"name": "", "procedures": ["*"]}"#, "invalid key name");
        refused(r#"{"name": "a/b", "procedures": ["*"]}"#, "invalid key name");
        refused(r#"{"name": "b", "procedures": []}"#, "`procedures` is empty");
        refused(r#"{"name": "b", "procedures": ["math.add"]}"#, "invalid procedure glob \"math.add\"");
        refused(r#"{"name": "b", "procedures": ["a?"]}"#, "invalid procedure glob");
        refused(r#"{"name": "b", "procedures": ["*"], "rate": {"per_second": 0}}"#, "bad `rate`");
        refused(r#"{"name": "b", "procedures": ["*"], "rate": {"per_second": 1, "burst": 0}}"#, "burst");
        refused(r#"{"name": "b", "procedures": ["*"], "rate": 10}"#, "send {");
        refused(r#"{"name": "b", "procedure": ["*"]}"#, "unknown field");
        refused("nope", "not a key request");
    }

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let (a, b) = (fresh_key().unwrap(), fresh_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43, "{a}");
        assert_eq!(decode_hash(&crate::store::sha256_hex(a.as_bytes())), Some(hash(a.as_bytes())));
        assert_eq!(decode_hash("zz"), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_header(Duration::from_millis(1)), "1");
        assert_eq!(retry_after_header(Duration::from_millis(1000)), "1");
        assert_eq!(retry_after_header(Duration::from_millis(1001)), "2");
        assert_eq!(retry_after_header(Duration::ZERO), "1");
    }
}
