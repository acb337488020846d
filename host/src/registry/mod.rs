//! The deployed procedures: which version of each name serves calls, and how
//! a version gets there (compile, check, describe, store, swap), or back
//! (rollback), or away (remove).
//!
//! Calls read the table through an `ArcSwap`: one atomic load, no lock. A
//! change builds a new table and swaps it in whole, so calls already running
//! finish on the version they started with and every call that starts after
//! the swap sees the new one. Changes are serialised by a mutex that calls
//! never take. The truth about versions is in a [`Store`] (the data dir, or
//! PostgreSQL shared by replicas); compiled code is cached in the data dir.
//!
//! Calls go through [`Registry::call`] (`registry/dispatch.rs`), from a
//! request or from a procedure: a nested call goes sandbox -> registry ->
//! sandbox without climbing back to the protocol layer. A version's code
//! is loaded at its first call and may be unloaded past `--max-loaded-mib`
//! (`registry/code.rs`).

mod code;
mod dispatch;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::keys::Keys;
use crate::kv::Kv;
use crate::metrics::{NestedCalls, ProcStats};
pub use crate::sandbox::{CallContext, CallError};
use crate::sandbox::{Compiled, InvalidModule, Reuse, Sandbox, Serving};
use crate::store::compiled::CompiledCache;
use crate::store::data_dir::DataDir;
use crate::store::sha256_hex;
use crate::store::{Settings, Store, StoreError, StoredVersion};
use crate::vars::Vars;

/// What the admin API shows of a deployed version.
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    pub name: String,
    pub version: u64,
    pub sha256: String,
    pub size: u64,
    pub deployed_at: String,
    /// Full JSON-RPC method names, `module.method`.
    pub methods: Vec<String>,
    /// The hosts this version may send HTTP requests to, as granted at
    /// deploy (`allow-outbound`); empty: none.
    pub allowed_outbound: Vec<String>,
    /// Its instance reuse, as chosen at deploy (`reuse`, `reuse-idle-ms`,
    /// `reuse-memory-mib`); `calls` 1: a fresh instance per call.
    pub reuse: Reuse,
}

impl Metadata {
    /// What the deploy chose besides the code.
    fn settings(&self) -> Settings {
        Settings { allowed_outbound: self.allowed_outbound.clone(), reuse: self.reuse }
    }
}

/// What happened to a name, as [`Registry::changes`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new version serves (a deploy, here or on another replica, or by `--watch`).
    Deployed,
    /// A kept version serves again (`activate`: a rollback, or bringing
    /// back a removed procedure). A replica that follows the change from
    /// the shared registry tells it as `Deployed` when the version made to
    /// serve is the newest kept one.
    RolledBack,
    /// The name no longer serves.
    Removed,
}

/// One change of the serving table: `name`, what happened, and the version
/// serving now (`None` once removed).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub name: String,
    pub change: ChangeKind,
    pub procedure: Option<Metadata>,
}

/// Changes kept for receivers that have not read them yet: one that falls
/// further behind misses changes (`RecvError::Lagged`).
pub const CHANGES_KEPT: usize = 1024;

/// One kept version of a name, as `GET /procedures/{name}/versions` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct KeptVersion {
    #[serde(flatten)]
    pub metadata: Metadata,
    /// Whether this version serves calls now.
    pub serving: bool,
}

/// One serving version: what calls need and what the admin API shows.
struct Version {
    metadata: Metadata,
    /// Its methods, from `describe`: shared by the versions of one code.
    described: Arc<Described>,
    /// What its calls need besides the code.
    serving: Serving,
    /// Its code while loaded: `None` until its first call (or its deploy),
    /// and again once unloaded past `--max-loaded-mib` (`code.rs`).
    code: ArcSwapOption<Compiled>,
    /// When it was last called, in ms since the registry opened: the least
    /// recently called code is unloaded first.
    last_call: AtomicU64,
    stats: Arc<ProcStats>,
}

/// A version's `describe` output, checked and parsed: the same for every
/// version of the same code, so parsed once and shared (10,000 procedures
/// of one component held a parsed copy each: about 20 KB apiece).
struct Described {
    /// The text it was parsed from.
    text: String,
    /// OpenRPC Method Objects, their names without the module prefix.
    objects: Vec<Value>,
    /// Method names (without the module prefix).
    methods: HashSet<String>,
}

/// Why a change or a lookup failed; the admin API maps each case to a status.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    BadName(String),
    /// An `allow-outbound` entry that is not `scheme://host[:port]`.
    #[error("{0}")]
    BadGrant(String),
    #[error("{0}")]
    Invalid(#[from] InvalidModule),
    /// No such procedure, or no such kept version; the message says which.
    #[error("{0}")]
    NotFound(String),
    /// Every call slot is taken, so `describe` could not run: retry later.
    #[error("{0}")]
    Overloaded(String),
    /// The store (a shared registry) cannot be reached: nothing changed.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

impl RegistryError {
    /// The refusal for a name that does not serve.
    pub fn not_deployed(name: &str) -> Self {
        RegistryError::NotFound(format!("no procedure named `{name}` is deployed"))
    }
}

impl From<StoreError> for RegistryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(m) => RegistryError::NotFound(m),
            StoreError::Unavailable(m) => RegistryError::Unavailable(m),
            StoreError::Internal(e) => RegistryError::Internal(e),
        }
    }
}

/// The deployed procedures and the sandbox they run in. The rest of the
/// server calls procedures through [`Registry::call`] and changes them through
/// [`Registry::deploy`], [`Registry::activate`] and [`Registry::remove`].
pub struct Registry {
    sandbox: Sandbox,
    /// Procedures' key-value state, kept by name across versions.
    kv: Kv,
    /// Procedures' configuration, kept by name across versions.
    vars: Vars,
    /// Caller keys: who may call which procedures (`crate::keys`).
    keys: Keys,
    store: Box<dyn Store>,
    cache: CompiledCache,
    /// The loaded code, by sha256: identical code is loaded once, shared by
    /// every procedure and version that serves it (each load maps and links
    /// the code anew: about 0.6-1 MB), and bounded.
    code: code::LoadedCode,
    /// When the registry opened: versions' `last_call` count from it.
    opened: Instant,
    /// Parsed `describe` outputs by sha256, shared by the versions of that
    /// code.
    described: Mutex<HashMap<String, Arc<Described>>>,
    live: ArcSwap<HashMap<String, Arc<Version>>>,
    /// Counters by name, kept across versions and deletes.
    stats: Mutex<HashMap<String, Arc<ProcStats>>>,
    /// Nested calls by caller and callee.
    nested: NestedCalls,
    deploy_lock: tokio::sync::Mutex<()>,
    /// Every change of the table, as it is installed ([`Registry::changes`]).
    changes: tokio::sync::broadcast::Sender<Arc<Change>>,
}

/// Checks a module name: `[a-z][a-z0-9_-]{0,62}`, not `rpc` or `wasmrpc`. The rule also keeps
/// names safe as file names (no `/`, `.`, `%`, NUL).
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 63;
    if !valid {
        let shown: String = name.chars().take(80).collect::<String>().escape_debug().to_string();
        return Err(RegistryError::BadName(format!(
            "invalid procedure name \"{shown}\": use 1 to 63 characters, a lowercase letter \
             first, then lowercase letters, digits, `_` or `-`"
        )));
    }
    if name == "rpc" {
        return Err(RegistryError::BadName(
            "the name `rpc` is reserved for the server's own methods (rpc.discover)".into(),
        ));
    }
    if name == "wasmrpc" {
        return Err(RegistryError::BadName(
            "the name `wasmrpc` is reserved for the server's own methods (wasmrpc.subscribe, wasmrpc.unsubscribe)"
                .into(),
        ));
    }
    Ok(())
}

/// Runs blocking store or compiler work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| anyhow::anyhow!("blocking task failed: {e}"))?
}

impl Registry {
    /// Opens the data dir as the store and loads every serving procedure.
    /// Blocking.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let store = DataDir::open(&config.data_dir, config.keep_versions)?;
        let kv = Kv::embedded(&config.data_dir, config.kv)?;
        let vars = Vars::files(&config.data_dir)?;
        let keys = Keys::files(config)?;
        Self::open_with(config, Box::new(store), kv, vars, keys)
    }

    /// The configuration of every procedure.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// The caller keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// How many distinct components are loaded (one per sha256 whose code
    /// is in memory, however many procedures share it), the bytes of their
    /// code, and how many loads calls have made (a version whose code was
    /// not in memory).
    pub fn loaded_code(&self) -> (usize, u64, u64) {
        self.code.figures()
    }

    /// How many instances are kept idle for versions that reuse them.
    pub fn idle_instances(&self) -> usize {
        self.sandbox.idle_instances()
    }

    /// The key-value state of every procedure.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Loads every procedure serving in `store`, from the compiled cache in
    /// the data dir where it matches, compiling where it does not. Blocking.
    pub fn open_with(config: &Config, store: Box<dyn Store>, kv: Kv, vars: Vars, keys: Keys) -> anyhow::Result<Self> {
        let sandbox = Sandbox::new(config)?;
        let cache = CompiledCache::open(&config.data_dir, sandbox.compatibility_key())?;
        let registry = Registry {
            sandbox,
            kv,
            vars,
            keys,
            store,
            cache,
            code: code::LoadedCode::new(config.max_loaded_bytes),
            opened: Instant::now(),
            described: Mutex::default(),
            live: ArcSwap::from_pointee(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            nested: NestedCalls::default(),
            deploy_lock: tokio::sync::Mutex::new(()),
            changes: tokio::sync::broadcast::Sender::new(CHANGES_KEPT),
        };
        let mut table = HashMap::new();
        // Code shared by many procedures is checked once.
        let mut checked = HashSet::new();
        for (name, stored) in registry.store.serving().map_err(RegistryError::from)? {
            let sha256 = stored.sha256.clone();
            let check = || if checked.contains(&sha256) { Ok(()) } else { registry.check_code(&sha256) };
            match check().and_then(|()| Ok(registry.assemble(&name, stored, None)?)) {
                Ok(version) => {
                    checked.insert(sha256);
                    table.insert(name, Arc::new(version));
                }
                // The store went away while loading: the whole load fails (a
                // replica retries it), or the procedure would stay missing
                // until its name changes again.
                Err(e @ RegistryError::Unavailable(_)) => return Err(e.into()),
                Err(e) => tracing::error!(procedure = name, "skipping stored procedure: {e:#}"),
            }
        }
        registry.live.store(Arc::new(table));
        registry.collect_garbage();
        Ok(registry)
    }

    /// A stored version made ready to serve ([`Registry::check_code`]),
    /// its code not loaded until its first call. Blocking.
    fn prepare(&self, name: &str, stored: StoredVersion) -> Result<Version, RegistryError> {
        self.check_code(&stored.sha256)?;
        Ok(self.assemble(name, stored, None)?)
    }

    /// Makes sure the code of `sha256` can be loaded at a call without
    /// compiling: it is loaded, or the compiled-code cache has a file that
    /// looks like compiled code (its header: no load, so a start with many
    /// procedures stays fast), or else it is compiled from the stored module
    /// now (checked against its hash) and cached. A version whose code
    /// fails here never serves. Blocking.
    fn check_code(&self, sha256: &str) -> Result<(), RegistryError> {
        if self.code.get(sha256).is_some() || Sandbox::looks_compiled(&self.cache.path(sha256)) {
            return Ok(());
        }
        self.load_code(sha256).map(drop)
    }

    /// The code of `sha256`: loaded already, else from the compiled cache,
    /// else compiled from the stored module (and cached). Blocking.
    fn load_code(&self, sha256: &str) -> Result<Compiled, RegistryError> {
        let (compiled, fresh) = self.compile(sha256, || Ok(self.store.module(sha256)?.into()))?;
        if fresh {
            self.cache_compiled(sha256, &compiled);
        }
        Ok(compiled)
    }

    /// Keeps `code` as `version`'s (and loaded for every version of its
    /// sha256), unloading the least recently called code past the bound.
    fn keep_code(&self, version: &Version, code: Compiled) -> Arc<Compiled> {
        let sha256 = &version.metadata.sha256;
        let (code, unloaded) = self.code.insert(sha256, code, || self.last_calls());
        if !unloaded.is_empty() {
            let unloaded: HashSet<&str> = unloaded.iter().map(String::as_str).collect();
            for other in self.live.load().values() {
                if unloaded.contains(other.metadata.sha256.as_str()) {
                    other.code.store(None);
                }
            }
        }
        let code = Arc::new(code);
        version.code.store(Some(code.clone()));
        code
    }

    /// The latest call of any serving version of each sha256.
    fn last_calls(&self) -> HashMap<String, u64> {
        let mut latest: HashMap<String, u64> = HashMap::new();
        for version in self.live.load().values() {
            let at = version.last_call.load(std::sync::atomic::Ordering::Relaxed);
            let entry = latest.entry(version.metadata.sha256.clone()).or_default();
            *entry = (*entry).max(at);
        }
        latest
    }

    /// The compiled form of the module `bytes()` (hash `sha256`): loaded
    /// already, or from the on-disk cache when this engine compiled it before
    /// (a version deployed earlier, a restart), else compiled and checked
    /// (`true`: not cached yet; callers cache it once the module is
    /// accepted). The bytes are asked for only to compile.
    /// CPU-heavy: call from a blocking thread.
    fn compile(
        &self,
        sha256: &str,
        bytes: impl FnOnce() -> Result<bytes::Bytes, RegistryError>,
    ) -> Result<(Compiled, bool), RegistryError> {
        if let Some(loaded) = self.code.get(sha256) {
            return Ok((loaded, false));
        }
        let cached = self.cache.path(sha256);
        if cached.exists() {
            match self.sandbox.load_compiled(&cached) {
                Ok(compiled) => return Ok((compiled, false)),
                Err(e) => tracing::warn!(sha256, "compiled cache unusable ({e:#}); recompiling"),
            }
        } else {
            tracing::info!(sha256, "compiling (no cached code)");
        }
        Ok((self.sandbox.compile(&bytes()?)?, true))
    }

    fn cache_compiled(&self, sha256: &str, compiled: &Compiled) {
        if let Err(e) = compiled.serialize().and_then(|code| self.cache.save(sha256, &code)) {
            tracing::warn!(sha256, "cannot cache compiled code: {e:#}");
        }
    }

    /// The version of `name` serving now.
    fn get(&self, name: &str) -> Option<Arc<Version>> {
        self.live.load().get(name).cloned()
    }

    /// The metadata of the version of `name` serving now.
    pub fn metadata(&self, name: &str) -> Option<Metadata> {
        self.get(name).map(|v| v.metadata.clone())
    }

    /// The metadata of every serving version, sorted by name.
    pub fn list(&self) -> Vec<Metadata> {
        let mut all: Vec<Metadata> = self.live.load().values().map(|v| v.metadata.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// How many procedures serve now.
    pub fn len(&self) -> usize {
        self.live.load().len()
    }

    /// Whether no procedure serves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OpenRPC Method Objects of every serving method, sorted by name
    /// (`module.method`).
    pub fn method_objects(&self) -> Vec<Value> {
        let table = self.live.load();
        let mut methods: Vec<Value> = table
            .iter()
            .flat_map(|(name, v)| {
                v.described.objects.iter().map(move |object| {
                    let mut object = object.clone();
                    let method = object["name"].as_str().unwrap_or_default();
                    object["name"] = Value::String(format!("{name}.{method}"));
                    object
                })
            })
            .collect();
        methods.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        methods
    }

    /// Every change of the serving table from now on (deploy, rollback,
    /// removal; made here, by `--watch`, or followed from a shared
    /// registry), in the order installed. A receiver more than
    /// [`CHANGES_KEPT`] changes behind misses some (`Lagged`).
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Nested calls by caller and callee, since start.
    pub fn nested_calls(&self) -> &NestedCalls {
        &self.nested
    }

    /// Counters of every name that was ever deployed since start.
    pub fn stats(&self) -> Vec<(String, Arc<ProcStats>)> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = stats.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Deploys `bytes` as `name`. Returns the metadata and whether the name is
    /// new (first deploy, or first since a delete). Bytes identical to the
    /// serving version change nothing.
    pub async fn deploy(self: &Arc<Self>, name: &str, bytes: bytes::Bytes) -> Result<(Metadata, bool), RegistryError> {
        self.deploy_with(name, bytes, Settings::default()).await
    }

    /// [`Registry::deploy`], the new version with `settings`: its grant of
    /// outbound HTTP (`scheme://host[:port]` entries, checked here:
    /// [`RegistryError::BadGrant`] says what is wrong) and its instance
    /// reuse. The same bytes with other settings are a new version.
    pub async fn deploy_with(
        self: &Arc<Self>,
        name: &str,
        bytes: bytes::Bytes,
        mut settings: Settings,
    ) -> Result<(Metadata, bool), RegistryError> {
        check_name(name)?;
        settings.allowed_outbound =
            crate::outbound::canonical_texts(&settings.allowed_outbound).map_err(RegistryError::BadGrant)?;
        let settings = settings;
        let sha256 = sha256_hex(&bytes);
        if let Some(unchanged) = self.unchanged(name, &sha256, &settings).await? {
            return Ok((unchanged, false));
        }
        let this = self.clone();
        let compile_bytes = bytes.clone();
        let compile_sha = sha256.clone();
        let (compiled, fresh) = blocking(move || this.compile(&compile_sha, || Ok(compile_bytes))).await?;
        let describe = self.sandbox.describe(name, &compiled, CallContext::new(0)).await.map_err(|e| match e {
            CallError::Overloaded(limit) => RegistryError::Overloaded(format!(
                "the server is overloaded: all {limit} call slots are busy, so the module's `describe` \
                     could not run to check it; nothing was deployed. Retry later, or raise --max-concurrent-calls"
            )),
            e => RegistryError::Invalid(InvalidModule(format!("calling `describe` failed: {e}"))),
        })?;
        parse_describe(&describe)?;

        let _guard = self.deploy_lock.lock().await;
        // These bytes may have been deployed here while this deploy waited
        // for the lock. The table alone cannot say they still serve: on a
        // replica of a shared store it lags behind a change another replica
        // made until it syncs, and "unchanged" from a stale table would
        // acknowledge bytes the store no longer serves (an acknowledged
        // deploy that never serves). The store must agree.
        if let Some(current) =
            self.get(name).filter(|d| d.metadata.sha256 == sha256 && d.metadata.settings() == settings)
        {
            let (this, owned_name, number) = (self.clone(), name.to_owned(), current.metadata.version);
            if blocking(move || Ok(this.store.history(&owned_name)?.serving == Some(number))).await? {
                return Ok((current.metadata.clone(), false));
            }
        }
        let created = self.get(name).is_none();
        let this = self.clone();
        let owned_name = name.to_owned();
        let version = blocking(move || {
            if fresh {
                this.cache_compiled(&sha256, &compiled);
            }
            let stored = this.store.publish_with(&owned_name, &sha256, &bytes, &describe, &settings)?;
            Ok(this.assemble(&owned_name, stored, Some(compiled))?)
        })
        .await?;
        let metadata = version.metadata.clone();
        self.install(name, Some(version), ChangeKind::Deployed).await;
        tracing::info!(procedure = name, version = metadata.version, "deployed");
        Ok((metadata, created))
    }

    /// The metadata of the version serving `name` if it is made of the
    /// module `sha256`: then a deploy of those bytes changes nothing. Asks
    /// the store, not only this server's table: a replica that has not yet
    /// caught up with a change made elsewhere must not answer "unchanged"
    /// for bytes the shared registry no longer serves (it catches up first).
    async fn unchanged(
        self: &Arc<Self>,
        name: &str,
        sha256: &str,
        settings: &Settings,
    ) -> Result<Option<Metadata>, RegistryError> {
        let this = self.clone();
        let owned_name = name.to_owned();
        let history = blocking(move || Ok(this.store.history(&owned_name)?)).await?;
        let Some(serving) = history.serving_version().filter(|v| v.sha256 == sha256 && v.settings == *settings) else {
            return Ok(None);
        };
        if self.get(name).is_none_or(|v| v.metadata.version != serving.version) {
            // Catching up can fail where a deploy mends (the stored module
            // is damaged): then these bytes deploy as a new version.
            if let Err(e) = self.sync(name).await {
                tracing::warn!(procedure = name, "cannot serve the stored version ({e:#}); deploying anew");
                return Ok(None);
            }
        }
        Ok(self
            .get(name)
            .filter(|v| v.metadata.sha256 == sha256 && v.metadata.settings() == *settings)
            .map(|v| v.metadata.clone()))
    }

    /// Makes kept version `version` of `name` serve again (a rollback, or
    /// bringing back a removed procedure), under its own number. Calls in
    /// flight finish on the version they started with.
    pub async fn activate(self: &Arc<Self>, name: &str, version: u64) -> Result<Metadata, RegistryError> {
        check_name(name)?;
        let _guard = self.deploy_lock.lock().await;
        if let Some(current) = self.get(name).filter(|v| v.metadata.version == version) {
            return Ok(current.metadata.clone());
        }
        let this = self.clone();
        let owned_name = name.to_owned();
        let ready = blocking(move || {
            let stored = this.store.history(&owned_name)?.kept(&owned_name, version)?.clone();
            // Compile before the store switches, so a version that cannot
            // load here never becomes the one the store says serves.
            let prepared = this.prepare(&owned_name, stored)?;
            this.store.activate(&owned_name, version)?;
            Ok(prepared)
        })
        .await?;
        let metadata = ready.metadata.clone();
        self.install(name, Some(ready), ChangeKind::RolledBack).await;
        tracing::info!(procedure = name, version, "activated");
        Ok(metadata)
    }

    /// Undeploys `name`; its version counter and kept versions stay.
    pub async fn remove(self: &Arc<Self>, name: &str) -> Result<(), RegistryError> {
        check_name(name)?;
        let _guard = self.deploy_lock.lock().await;
        if self.get(name).is_none() {
            return Err(RegistryError::not_deployed(name));
        }
        let this = self.clone();
        let owned_name = name.to_owned();
        blocking(move || Ok(this.store.unpublish(&owned_name)?)).await?;
        self.install(name, None, ChangeKind::Removed).await;
        tracing::info!(procedure = name, "removed");
        Ok(())
    }

    /// The kept versions of `name`, newest first, with the one serving marked.
    pub async fn versions(self: &Arc<Self>, name: &str) -> Result<Vec<KeptVersion>, RegistryError> {
        check_name(name)?;
        let this = self.clone();
        let owned_name = name.to_owned();
        let history = blocking(move || Ok(this.store.history(&owned_name)?)).await?;
        if history.versions.is_empty() {
            return Err(RegistryError::NotFound(format!("no procedure named `{name}` was ever deployed")));
        }
        history
            .versions
            .into_iter()
            .map(|stored| {
                let serving = history.serving == Some(stored.version);
                let method_objects = parse_describe(&stored.describe)?;
                Ok(KeptVersion { metadata: metadata(name, stored, &method_objects), serving })
            })
            .collect()
    }

    /// Brings the table in line with the store for `name`: the version the
    /// store says serves, or none. A replica sharing a store calls it when
    /// another replica changed `name`.
    pub async fn sync(self: &Arc<Self>, name: &str) -> Result<(), RegistryError> {
        let _guard = self.deploy_lock.lock().await;
        let this = self.clone();
        let owned_name = name.to_owned();
        let live = self.get(name).map(|v| (v.metadata.version, v.metadata.sha256.clone()));
        let ready = blocking(move || {
            let history = this.store.history(&owned_name)?;
            match history.serving_version() {
                Some(s) if live.as_ref() == Some(&(s.version, s.sha256.clone())) => Ok(None),
                Some(stored) => {
                    let newest = history.versions.first().map(|v| v.version) == Some(stored.version);
                    let kind = if newest { ChangeKind::Deployed } else { ChangeKind::RolledBack };
                    Ok(Some((Some(this.prepare(&owned_name, stored.clone())?), kind)))
                }
                None if live.is_none() => Ok(None),
                None => Ok(Some((None, ChangeKind::Removed))),
            }
        })
        .await?;
        if let Some((version, kind)) = ready {
            let number = version.as_ref().map(|v| v.metadata.version);
            self.install(name, version, kind).await;
            tracing::info!(procedure = name, version = number, "synced from the store");
        }
        Ok(())
    }

    /// Swaps `version` in as `name` (or removes `name`), tells
    /// [`Registry::changes`] (`kind`), then drops compiled code that no kept
    /// version uses. Callers hold `deploy_lock`, so changes are told in the
    /// order they are installed.
    async fn install(self: &Arc<Self>, name: &str, version: Option<Version>, kind: ChangeKind) {
        let mut table = HashMap::clone(&self.live.load());
        let procedure = version.as_ref().map(|v| v.metadata.clone());
        let replaced = match version {
            Some(version) => table.insert(name.to_owned(), Arc::new(version)),
            None => table.remove(name),
        };
        self.live.store(Arc::new(table));
        // No receiver (no WebSocket connection): nothing to tell.
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(Arc::new(Change { name: name.to_owned(), change: kind, procedure }));
        }
        // Only a name that had a version can leave code unused (the one it
        // served, or one its store forgot): a first deploy of a name skips
        // the scan of every kept version, which a server of thousands of
        // procedures would otherwise pay at each deploy.
        if replaced.is_some() {
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.collect_garbage()).await;
        }
    }

    /// Drops compiled code that neither a kept version nor a serving one
    /// uses, and loaded code no serving version uses. Blocking.
    fn collect_garbage(&self) {
        let serving: HashSet<String> = self.live.load().values().map(|v| v.metadata.sha256.clone()).collect();
        self.code.retain(|sha256| serving.contains(sha256));
        self.described.lock().unwrap_or_else(|p| p.into_inner()).retain(|sha256, _| serving.contains(sha256));
        match self.store.kept_modules() {
            Ok(mut in_use) => {
                in_use.extend(self.live.load().values().map(|v| v.metadata.sha256.clone()));
                self.cache.retain(&in_use);
            }
            Err(e) => tracing::warn!("compiled-code cache not cleaned: {e:#}"),
        }
    }

    /// The version `stored` of `name`, with its code if at hand.
    fn assemble(&self, name: &str, stored: StoredVersion, code: Option<Compiled>) -> anyhow::Result<Version> {
        let described = self.described(&stored)?;
        let metadata = metadata(name, stored, &described.objects);
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_owned()).or_default().clone();
        let grant = crate::outbound::Grant::parse(&metadata.allowed_outbound).map_err(anyhow::Error::msg)?;
        let outbound = crate::sandbox::Outbound { grant, limits: self.sandbox.outbound_limits(), stats: stats.clone() };
        let serving = Serving::new(name, outbound, metadata.reuse);
        let version =
            Version { metadata, described, serving, code: ArcSwapOption::empty(), last_call: AtomicU64::new(0), stats };
        if let Some(code) = code {
            self.keep_code(&version, code);
        }
        Ok(version)
    }

    /// The parsed `describe` of `stored`: the one of its code, if parsed
    /// from the same text already.
    fn described(&self, stored: &StoredVersion) -> Result<Arc<Described>, InvalidModule> {
        let mut all = self.described.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(described) = all.get(&stored.sha256).filter(|d| d.text == stored.describe) {
            return Ok(described.clone());
        }
        let objects = parse_describe(&stored.describe)?;
        let methods = objects.iter().map(|m| m["name"].as_str().unwrap_or_default().to_owned()).collect();
        let described = Arc::new(Described { text: stored.describe.clone(), objects, methods });
        all.insert(stored.sha256.clone(), described.clone());
        Ok(described)
    }
}

/// The metadata of `stored` as version of `name`, its methods from its
/// checked `describe` output.
fn metadata(name: &str, stored: StoredVersion, method_objects: &[Value]) -> Metadata {
    Metadata {
        name: name.to_owned(),
        version: stored.version,
        sha256: stored.sha256,
        size: stored.size,
        deployed_at: stored.deployed_at,
        allowed_outbound: stored.settings.allowed_outbound,
        reuse: stored.settings.reuse,
        methods: method_objects.iter().map(|m| format!("{name}.{}", m["name"].as_str().unwrap_or_default())).collect(),
    }
}

/// Longest method name a procedure may declare: names appear in log lines,
/// metrics labels and generated client code, so they stay short and printable.
const MAX_METHOD_NAME_BYTES: usize = 128;

/// Checks `describe` output: `{"methods": [{"name": "...", ...}, ...]}`.
fn parse_describe(text: &str) -> Result<Vec<Value>, InvalidModule> {
    let bad = |why: &str| {
        InvalidModule(format!("`describe` returned {why}; expected {{\"methods\": [{{\"name\": ...}}, ...]}}"))
    };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(&format!("invalid JSON ({e})")))?;
    let Some(Value::Array(methods)) = value.get("methods") else {
        return Err(bad("no `methods` array"));
    };
    let mut seen = HashSet::new();
    for m in methods {
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            return Err(bad("a method without a string `name`"));
        };
        if name.len() > MAX_METHOD_NAME_BYTES || name.chars().any(char::is_control) {
            let shown = crate::logtext::loggable(name.get(..64).unwrap_or("(not shown)"));
            return Err(bad(&format!(
                "a method name longer than {MAX_METHOD_NAME_BYTES} bytes or with control characters (\"{shown}...\")"
            )));
        }
        if name.is_empty() || name.starts_with("rpc.") || !seen.insert(name) {
            return Err(bad(&format!("an empty, reserved or repeated method name \"{name}\"")));
        }
    }
    Ok(methods.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["math", "a", "get_data", "x-1", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Math", "1abc", "..", "a/b", "%2e%2e", "a\0", "rpc", "wasmrpc", "a.b", &"a".repeat(64)] {
            assert!(matches!(check_name(bad), Err(RegistryError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn describe_must_list_named_methods() {
        assert_eq!(parse_describe(r#"{"methods":[{"name":"add"}]}"#).unwrap().len(), 1);
        let long = format!(r#"{{"methods":[{{"name":"{}"}}]}}"#, "a".repeat(MAX_METHOD_NAME_BYTES + 1));
        for bad in [
            "nope",
            "{}",
            r#"{"methods":[{}]}"#,
            r#"{"methods":[{"name":"a"},{"name":"a"}]}"#,
            r#"{"methods":[{"name":""}]}"#,
            r#"{"methods":[{"name":"rpc.discover"}]}"#,
            r#"{"methods":[{"name":"a
b"}]}"#,
            &long,
        ] {
            assert!(parse_describe(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = crate::store::now_rfc3339();
        assert!(time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok(), "{t}");
    }
}
