//! The data dir: deployed modules, their version counters and the compiled-code
//! cache, written so that a crash at any point leaves the previous state whole.
//!
//! ```text
//! DATA_DIR/procedures/NAME.json       the record of NAME: last version number, serving version
//! DATA_DIR/modules/SHA256.wasm        module bytes, content-addressed
//! DATA_DIR/compiled/SHA256-KEY.cwasm  compiled code for engine compatibility KEY
//! ```
//!
//! Every file is written to a temporary name, synced and renamed into place,
//! and a record only ever names a module file that is already complete, so a
//! reader sees the old version or the new one, never a mix.

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The on-disk record of one procedure name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The highest version ever given to this name; never reused, even after a delete.
    pub last_version: u64,
    /// The version serving now; `None` after a delete.
    pub current: Option<StoredVersion>,
}

/// One deployed version as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredVersion {
    pub version: u64,
    pub sha256: String,
    pub size: u64,
    /// RFC 3339.
    pub deployed_at: String,
    /// The module's `describe` output, kept so a restart need not run it again.
    pub describe: String,
}

pub struct Storage {
    root: PathBuf,
    compatibility_key: String,
}

/// A procedure found at start-up, its module bytes checked against its hash.
pub struct Found {
    pub name: String,
    pub record: Record,
    pub bytes: Vec<u8>,
}

impl Storage {
    /// Opens (creating) the data dir and clears what an interrupted write left.
    pub fn open(root: &Path, compatibility_key: String) -> anyhow::Result<Self> {
        for dir in ["procedures", "modules", "compiled"] {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if is_temporary(&path) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(Storage { root: root.to_owned(), compatibility_key })
    }

    /// Every stored procedure with a serving version whose module is intact.
    /// Damaged entries are reported in the log and skipped.
    pub fn load_all(&self) -> anyhow::Result<Vec<Found>> {
        let mut found = Vec::new();
        let mut names: Vec<PathBuf> = fs::read_dir(self.root.join("procedures"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        for path in names {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            match self.load_one(&name) {
                Ok(Some(f)) => found.push(f),
                Ok(None) => {}
                Err(e) => tracing::error!(procedure = name, "skipping damaged procedure: {e:#}"),
            }
        }
        Ok(found)
    }

    fn load_one(&self, name: &str) -> anyhow::Result<Option<Found>> {
        let record = self.record(name)?;
        let Some(current) = &record.current else {
            return Ok(None);
        };
        let path = self.module_path(&current.sha256);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let actual = sha256_hex(&bytes);
        if actual != current.sha256 {
            bail!("{} is corrupt: its sha256 is {actual}", path.display());
        }
        Ok(Some(Found { name: name.to_owned(), record, bytes }))
    }

    /// The record of `name` (empty if it was never deployed).
    pub fn record(&self, name: &str) -> anyhow::Result<Record> {
        let path = self.record_path(name);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid record", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Stores the module bytes (if not already there), then the record that names them.
    pub fn save(&self, name: &str, record: &Record, bytes: &[u8]) -> anyhow::Result<()> {
        if let Some(current) = &record.current {
            let path = self.module_path(&current.sha256);
            if !path.exists() {
                write_atomic(&path, bytes)?;
            }
        }
        self.save_record(name, record)
    }

    pub fn save_record(&self, name: &str, record: &Record) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(record)?;
        write_atomic(&self.record_path(name), &json)
    }

    /// Where the compiled form of module `sha256` lives for this engine.
    pub fn compiled_path(&self, sha256: &str) -> PathBuf {
        self.root.join("compiled").join(format!("{sha256}-{}.cwasm", self.compatibility_key))
    }

    pub fn save_compiled(&self, sha256: &str, code: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.compiled_path(sha256), code)
    }

    /// Removes module files and compiled code that no serving version uses.
    pub fn collect_garbage(&self, in_use: &HashSet<String>) {
        for dir in ["modules", "compiled"] {
            let Ok(entries) = fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let sha = stem.split('-').next().unwrap_or(stem);
                let stale_engine = dir == "compiled" && !stem.ends_with(&self.compatibility_key);
                if (!in_use.contains(sha) || stale_engine) && !is_temporary(&path) {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("procedures").join(format!("{name}.json"))
    }

    fn module_path(&self, sha256: &str) -> PathBuf {
        self.root.join("modules").join(format!("{sha256}.wasm"))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

const TEMP_PREFIX: &str = ".tmp-";

fn is_temporary(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TEMP_PREFIX))
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all
/// of the new: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().context("path has no parent directory")?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{file_name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_versions_survive_delete() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "k".into()).unwrap();
        assert_eq!(storage.record("math").unwrap().last_version, 0);
        let bytes = b"module bytes";
        let record = Record {
            last_version: 1,
            current: Some(StoredVersion {
                version: 1,
                sha256: sha256_hex(bytes),
                size: bytes.len() as u64,
                deployed_at: "2026-01-01T00:00:00Z".into(),
                describe: "{\"methods\":[]}".into(),
            }),
        };
        storage.save("math", &record, bytes).unwrap();
        let found = storage.load_all().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bytes, bytes);
        storage.save_record("math", &Record { last_version: 1, current: None }).unwrap();
        assert!(storage.load_all().unwrap().is_empty());
        assert_eq!(storage.record("math").unwrap().last_version, 1);
    }

    #[test]
    fn corrupt_module_is_skipped_and_temporaries_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "k".into()).unwrap();
        let bytes = b"good";
        let sha = sha256_hex(bytes);
        let record = Record {
            last_version: 3,
            current: Some(StoredVersion {
                version: 3,
                sha256: sha.clone(),
                size: 4,
                deployed_at: "2026-01-01T00:00:00Z".into(),
                describe: "{}".into(),
            }),
        };
        storage.save("a", &record, bytes).unwrap();
        fs::write(dir.path().join("modules").join(format!("{sha}.wasm")), b"bad!").unwrap();
        fs::write(dir.path().join("modules/.tmp-1-x.wasm"), b"partial").unwrap();
        fs::write(dir.path().join("procedures/b.json"), b"{ truncated").unwrap();
        let storage = Storage::open(dir.path(), "k".into()).unwrap();
        assert!(storage.load_all().unwrap().is_empty());
        assert!(!dir.path().join("modules/.tmp-1-x.wasm").exists());
    }
}
