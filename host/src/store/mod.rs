//! Where the registry's truth is kept, behind one trait: the module bytes by
//! sha256 and each procedure name's versions (numbered 1, 2, ... per name and
//! never reused), of which at most one serves.
//!
//! Two stores implement [`Store`]: the data dir ([`data_dir::DataDir`],
//! the default, one machine) and PostgreSQL (shared by replicas). Everything
//! above the store is the same for both (`registry`: checking a module,
//! compiling it into the local compiled-code cache, the hot swap), so a
//! version deployed, rolled back or removed through either behaves alike.
//!
//! The methods block (file or network I/O): the registry calls them from a
//! blocking thread. Each change is one atomic step of the store: a reader
//! sees a name's history before the change or after it, never a mix.
//!
//! ```text
//! store/mod.rs       the trait, a name's history, hashes and timestamps
//! store/data_dir.rs  the data dir as the store (one machine)
//! store/pg.rs        PostgreSQL as the store (replicas)
//! store/compiled.rs  the compiled-code cache, in the data dir for every store
//! store/files.rs     atomic file writes
//! ```

pub mod compiled;
pub mod data_dir;
mod files;
pub mod pg;

pub use files::{write_atomic, write_atomic_private};

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sandbox::Reuse;

/// One version of a name as stored: all that is needed to serve it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    pub version: u64,
    pub sha256: String,
    pub size: u64,
    /// RFC 3339, seconds.
    pub deployed_at: String,
    /// The module's `describe` output, kept so serving it again need not run it.
    pub describe: String,
    /// What its deploy chose besides the code.
    #[serde(flatten)]
    pub settings: Settings,
}

/// What a deploy chooses for a version besides its code (the query of
/// `PUT /procedures/{name}`): kept with the version, so a rollback restores
/// it, and part of what makes a deploy "unchanged".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The hosts this version may send HTTP requests to (`allow-outbound`,
    /// canonical `scheme://host[:port]` entries); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound: Vec<String>,
    /// Its instance reuse (`reuse`, `reuse-idle-ms`, `reuse-memory-mib`).
    #[serde(default, skip_serializing_if = "Reuse::is_fresh")]
    pub reuse: Reuse,
}

/// What a store knows of one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The highest version ever given to the name (0: never deployed).
    pub last_version: u64,
    /// The version serving now; `None` if never deployed or removed.
    pub serving: Option<u64>,
    /// The kept versions, newest first: at most the store's `keep` newest,
    /// and always the serving one.
    pub versions: Vec<StoredVersion>,
}

impl History {
    /// The serving version's record.
    pub fn serving_version(&self) -> Option<&StoredVersion> {
        let serving = self.serving?;
        self.versions.iter().find(|v| v.version == serving)
    }

    /// Kept version `version` of `name`, or the refusal that says why it
    /// cannot serve (never deployed, unknown, or no longer kept).
    pub fn kept(&self, name: &str, version: u64) -> Result<&StoredVersion, StoreError> {
        if let Some(stored) = self.versions.iter().find(|v| v.version == version) {
            return Ok(stored);
        }
        if self.versions.is_empty() {
            return Err(StoreError::NotFound(format!("no procedure named `{name}` was ever deployed")));
        }
        let kept: Vec<String> = self.versions.iter().map(|v| v.version.to_string()).collect();
        Err(StoreError::NotFound(format!(
            "`{name}` has no version {version}: it is unknown or no longer kept (kept: {}; \
             see GET /procedures/{name}/versions)",
            kept.join(", ")
        )))
    }

    /// Adds `stored` (numbered `last_version + 1`) as the serving version and
    /// forgets versions beyond the `keep` newest; returns whether any was
    /// forgotten (then modules may have become unused). The rule every store
    /// follows: the data dir applies it here, PostgreSQL in the same
    /// transaction as the new version (`store::pg`).
    pub fn push(&mut self, stored: StoredVersion, keep: usize) -> bool {
        debug_assert_eq!(stored.version, self.last_version + 1);
        self.last_version = stored.version;
        self.serving = Some(stored.version);
        self.versions.insert(0, stored);
        let before = self.versions.len();
        self.versions.truncate(keep.max(1));
        self.versions.len() < before
    }
}

/// Why a store refused or failed; the admin API maps each case to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name does not serve, or the version is unknown or no longer kept.
    #[error("{0}")]
    NotFound(String),
    /// The store cannot be reached now (a shared registry that is down):
    /// nothing changed; retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The registry's source of truth. Calls are serialised per process by the
/// registry; a store shared between processes makes each change atomic
/// itself (and numbers versions uniquely across all of them).
pub trait Store: Send + Sync {
    /// Stores `bytes` (hash `sha256`, if not stored yet) and a new version of
    /// `name` made of them, numbered one above the highest the name ever had,
    /// and makes it serve; versions beyond the `keep` newest are forgotten.
    /// The version has the default settings (no outbound HTTP, fresh instances).
    fn publish(&self, name: &str, sha256: &str, bytes: &[u8], describe: &str) -> Result<StoredVersion, StoreError> {
        self.publish_with(name, sha256, bytes, describe, &Settings::default())
    }

    /// [`Store::publish`], the version with `settings` (whose grant holds
    /// canonical entries of [`crate::outbound::Grant`]).
    fn publish_with(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
        describe: &str,
        settings: &Settings,
    ) -> Result<StoredVersion, StoreError>;

    /// Makes kept version `version` of `name` serve again, under its own
    /// number. [`StoreError::NotFound`] if it is unknown or no longer kept.
    fn activate(&self, name: &str, version: u64) -> Result<StoredVersion, StoreError>;

    /// Stops serving `name`; its history and counter are kept, so a later
    /// publish continues the numbering and [`Store::activate`] can bring a
    /// kept version back. [`StoreError::NotFound`] if it does not serve.
    fn unpublish(&self, name: &str) -> Result<(), StoreError>;

    /// The history of `name` (empty if never deployed).
    fn history(&self, name: &str) -> Result<History, StoreError>;

    /// Every serving version, by name, sorted by name.
    fn serving(&self) -> Result<Vec<(String, StoredVersion)>, StoreError>;

    /// The module bytes of `sha256`, checked against the hash.
    fn module(&self, sha256: &str) -> Result<Vec<u8>, StoreError>;

    /// The hashes of every kept version of every name: compiled code for
    /// other modules may be dropped from the local cache.
    fn kept_modules(&self) -> Result<HashSet<String>, StoreError>;
}

/// The module hash: lowercase hex of its sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Now, as RFC 3339 in whole seconds (a version's `deployed_at`).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
