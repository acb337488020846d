//! The deployed procedures: which version of each name serves calls, and how
//! a new version gets there (compile, check, describe, store, swap).
//!
//! Calls read the table through an `ArcSwap`: one atomic load, no lock. A
//! deploy builds a new table and swaps it in whole, so calls already running
//! finish on the version they started with and every call that starts after
//! the swap sees the new one. Deploys and deletes are serialised by a mutex
//! that calls never take.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::metrics::{NestedCalls, ProcStats};
pub use crate::sandbox::{BoxFuture, CallContext, CallError, Client, ErrorObject};
use crate::sandbox::{Compiled, InvalidModule, Loaded, Sandbox};
use crate::storage::{sha256_hex, Storage, StoredVersion};

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
}

/// One serving version: what calls need and what the admin API shows.
struct Version {
    metadata: Metadata,
    loaded: Loaded,
    /// OpenRPC Method Objects from `describe`, names prefixed with the module.
    method_objects: Vec<Value>,
    stats: Arc<ProcStats>,
}

/// Why a deploy or delete failed; the admin API maps each case to a status.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    Invalid(#[from] InvalidModule),
    #[error("no procedure named `{0}` is deployed")]
    NotFound(String),
    /// Every call slot is taken, so `describe` could not run: retry later.
    #[error("{0}")]
    Overloaded(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

/// The deployed procedures and the sandbox they run in. The rest of the
/// server calls procedures through [`Registry::call`] and changes them through
/// [`Registry::deploy`] and [`Registry::remove`].
pub struct Registry {
    sandbox: Sandbox,
    storage: Storage,
    live: ArcSwap<HashMap<String, Arc<Version>>>,
    /// Counters by name, kept across versions and deletes.
    stats: Mutex<HashMap<String, Arc<ProcStats>>>,
    /// Nested calls by caller and callee.
    nested: NestedCalls,
    deploy_lock: tokio::sync::Mutex<()>,
}

/// Checks a module name: `[a-z][a-z0-9_-]{0,62}`, not `rpc`. The rule also keeps
/// names safe as file names (no `/`, `.`, `%`, NUL).
pub fn check_name(name: &str) -> Result<(), DeployError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 63;
    if !valid {
        let shown: String = name.chars().take(80).collect::<String>().escape_debug().to_string();
        return Err(DeployError::BadName(format!(
            "invalid procedure name \"{shown}\": use 1 to 63 characters, a lowercase letter \
             first, then lowercase letters, digits, `_` or `-`"
        )));
    }
    if name == "rpc" {
        return Err(DeployError::BadName(
            "the name `rpc` is reserved for the server's own methods (rpc.discover)".into(),
        ));
    }
    Ok(())
}

impl Registry {
    /// Opens the data dir and loads every stored procedure, from the compiled
    /// cache where it matches, recompiling where it does not. Blocking.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let sandbox = Sandbox::new(config)?;
        let storage = Storage::open(&config.data_dir, sandbox.compatibility_key())?;
        let registry = Registry {
            sandbox,
            storage,
            live: ArcSwap::from_pointee(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            nested: NestedCalls::default(),
            deploy_lock: tokio::sync::Mutex::new(()),
        };
        let mut table = HashMap::new();
        for found in registry.storage.load_all()? {
            let name = found.name.clone();
            match registry.restore(found) {
                Ok(deployed) => {
                    table.insert(name, Arc::new(deployed));
                }
                Err(e) => tracing::error!(procedure = name, "skipping stored procedure: {e:#}"),
            }
        }
        registry.storage.collect_garbage(&shas_in_use(&table));
        registry.live.store(Arc::new(table));
        Ok(registry)
    }

    fn restore(&self, found: crate::storage::Found) -> anyhow::Result<Version> {
        let stored = found.record.current.clone().ok_or_else(|| anyhow::anyhow!("no version"))?;
        let (compiled, fresh) = self.compile(&stored.sha256, &found.bytes)?;
        if fresh {
            self.cache_compiled(&stored.sha256, &compiled);
        }
        self.assemble(&found.name, compiled, stored)
    }

    /// The compiled form of the module `bytes` (hash `sha256`): loaded from
    /// the on-disk cache when this engine compiled it before (a version
    /// deployed earlier, a restart), else compiled and checked (`true`: not
    /// cached yet; callers cache it once the module is accepted).
    /// CPU-heavy: call from a blocking thread.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<(Compiled, bool), DeployError> {
        let cached = self.storage.compiled_path(sha256);
        if cached.exists() {
            match self.sandbox.load_compiled(&cached) {
                Ok(compiled) => return Ok((compiled, false)),
                Err(e) => tracing::warn!(sha256, "compiled cache unusable ({e:#}); recompiling"),
            }
        } else {
            tracing::info!(sha256, "compiling (no cached code)");
        }
        Ok((self.sandbox.compile(bytes)?, true))
    }

    fn cache_compiled(&self, sha256: &str, compiled: &Compiled) {
        if let Err(e) = compiled.serialize().and_then(|code| self.storage.save_compiled(sha256, &code)) {
            tracing::warn!(sha256, "cannot cache compiled code: {e:#}");
        }
    }

    /// The version of `name` serving now.
    fn get(&self, name: &str) -> Option<Arc<Version>> {
        self.live.load().get(name).cloned()
    }

    /// Calls `method` of procedure `module` with `params` (JSON text) in a
    /// fresh instance of the version serving now, and checks that the result
    /// is JSON. Records the call in the procedure's counters. The guest's own
    /// calls come back here (through `rpc`'s [`Client`]
    /// implementation), as nested calls of `ctx`'s tree.
    pub async fn call(
        self: &Arc<Self>,
        module: &str,
        method: &str,
        params: &str,
        ctx: CallContext,
    ) -> Result<String, CallError> {
        let version =
            self.get(module).filter(|v| v.loaded.methods.contains(method)).ok_or(CallError::MethodNotFound)?;
        if let Some(caller) = ctx.caller() {
            self.nested.record(caller, module);
        }
        let started = Instant::now();
        let client = self.clone();
        let outcome =
            self.sandbox.call(&version.loaded, method, params, ctx, &version.stats, client).await.and_then(|json| {
                match serde_json::from_str::<serde::de::IgnoredAny>(&json) {
                    Ok(_) => Ok(json),
                    Err(e) => Err(CallError::InvalidOutput(e.to_string())),
                }
            });
        version.stats.record(started.elapsed(), outcome.as_ref().err().map(CallError::code));
        outcome
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
        let mut methods: Vec<Value> = table.values().flat_map(|v| v.method_objects.iter().cloned()).collect();
        methods.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        methods
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
    pub async fn deploy(self: &Arc<Self>, name: &str, bytes: bytes::Bytes) -> Result<(Metadata, bool), DeployError> {
        check_name(name)?;
        let sha256 = sha256_hex(&bytes);
        if let Some(current) = self.get(name).filter(|d| d.metadata.sha256 == sha256) {
            return Ok((current.metadata.clone(), false));
        }
        let this = self.clone();
        let compile_bytes = bytes.clone();
        let compile_sha = sha256.clone();
        let (compiled, fresh) = tokio::task::spawn_blocking(move || this.compile(&compile_sha, &compile_bytes))
            .await
            .map_err(|e| anyhow::anyhow!("compiler task failed: {e}"))??;
        let describe = self.sandbox.describe(name, &compiled, CallContext::new(0)).await.map_err(|e| match e {
            CallError::Overloaded(limit) => DeployError::Overloaded(format!(
                "the server is overloaded: all {limit} call slots are busy, so the module's `describe` \
                     could not run to check it; nothing was deployed. Retry later, or raise --max-concurrent-calls"
            )),
            e => DeployError::Invalid(InvalidModule(format!("calling `describe` failed: {e}"))),
        })?;
        parse_describe(&describe)?;

        let _guard = self.deploy_lock.lock().await;
        if let Some(current) = self.get(name).filter(|d| d.metadata.sha256 == sha256) {
            return Ok((current.metadata.clone(), false));
        }
        let this = self.clone();
        let owned_name = name.to_owned();
        let (deployed, created) = tokio::task::spawn_blocking(move || {
            this.store_version(&owned_name, compiled, fresh, &bytes, sha256, describe)
        })
        .await
        .map_err(|e| anyhow::anyhow!("storage task failed: {e}"))??;
        let metadata = deployed.metadata.clone();
        // The replaced version's files stay (until it is two versions old):
        // flipping back to it, as a developer undoing an edit does, then
        // loads its compiled code instead of compiling again.
        let previous = self.get(name).map(|d| d.metadata.sha256.clone());
        self.swap(previous, |table| {
            table.insert(name.to_owned(), Arc::new(deployed));
        });
        tracing::info!(procedure = name, version = metadata.version, "deployed");
        Ok((metadata, created))
    }

    fn store_version(
        &self,
        name: &str,
        compiled: Compiled,
        fresh: bool,
        bytes: &[u8],
        sha256: String,
        describe: String,
    ) -> Result<(Version, bool), DeployError> {
        if fresh {
            self.cache_compiled(&sha256, &compiled);
        }
        let mut record = self.storage.record(name)?;
        let created = record.current.is_none();
        let stored = StoredVersion {
            version: record.last_version + 1,
            sha256,
            size: bytes.len() as u64,
            deployed_at: now_rfc3339(),
            describe,
        };
        record.last_version = stored.version;
        record.current = Some(stored.clone());
        self.storage.save(name, &record, bytes)?;
        Ok((self.assemble(name, compiled, stored)?, created))
    }

    /// Undeploys `name`; its version counter is kept.
    pub async fn remove(&self, name: &str) -> Result<(), DeployError> {
        check_name(name)?;
        let _guard = self.deploy_lock.lock().await;
        if self.get(name).is_none() {
            return Err(DeployError::NotFound(name.to_owned()));
        }
        let mut record = self.storage.record(name)?;
        record.current = None;
        self.storage.save_record(name, &record)?;
        self.swap(None, |table| {
            table.remove(name);
        });
        tracing::info!(procedure = name, "removed");
        Ok(())
    }

    /// Replaces the table with an edited copy, then drops files no version
    /// uses (but those of `keep`). Callers hold `deploy_lock`.
    fn swap(&self, keep: Option<String>, edit: impl FnOnce(&mut HashMap<String, Arc<Version>>)) {
        let mut table = HashMap::clone(&self.live.load());
        edit(&mut table);
        let mut in_use = shas_in_use(&table);
        in_use.extend(keep);
        self.live.store(Arc::new(table));
        self.storage.collect_garbage(&in_use);
    }

    fn assemble(&self, name: &str, compiled: Compiled, stored: StoredVersion) -> anyhow::Result<Version> {
        let method_objects = parse_describe(&stored.describe)?;
        let mut methods = Vec::new();
        let mut prefixed = Vec::new();
        for mut object in method_objects {
            let method = object["name"].as_str().unwrap_or_default().to_owned();
            let full = format!("{name}.{method}");
            object["name"] = Value::String(full.clone());
            prefixed.push(object);
            methods.push((method, full));
        }
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_owned()).or_default().clone();
        Ok(Version {
            metadata: Metadata {
                name: name.to_owned(),
                version: stored.version,
                sha256: stored.sha256,
                size: stored.size,
                deployed_at: stored.deployed_at,
                methods: methods.iter().map(|(_, full)| full.clone()).collect(),
            },
            loaded: compiled.into_loaded(name, methods.into_iter().map(|(m, _)| m).collect::<HashSet<_>>()),
            method_objects: prefixed,
            stats,
        })
    }
}

fn shas_in_use(table: &HashMap<String, Arc<Version>>) -> HashSet<String> {
    table.values().map(|d| d.metadata.sha256.clone()).collect()
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["math", "a", "get_data", "x-1", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Math", "1abc", "..", "a/b", "%2e%2e", "a\0", "rpc", "a.b", &"a".repeat(64)] {
            assert!(matches!(check_name(bad), Err(DeployError::BadName(_))), "{bad:?}");
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
        let t = now_rfc3339();
        assert!(time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok(), "{t}");
    }
}
