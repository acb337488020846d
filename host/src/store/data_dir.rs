//! The data dir: the default [`Store`] (module bytes and each name's versions,
//! on one machine); the compiled-code cache lives beside it for every store
//! ([`super::compiled`]). Written so that a crash at any point leaves the
//! previous state whole.
//!
//! ```text
//! DATA_DIR/procedures/NAME.json       the record of NAME: last version number, serving version, kept versions
//! DATA_DIR/modules/SHA256.wasm        module bytes, content-addressed (data-dir store only)
//! DATA_DIR/compiled/SHA256-KEY.cwasm  compiled code for engine compatibility KEY (every store)
//! ```
//!
//! Every file is written to a temporary name, synced and renamed into place,
//! and a record only ever names module files that are already complete, so a
//! reader sees the old version or the new one, never a mix.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::files::{create_and_clear, retain, write_atomic};
use super::{now_rfc3339, sha256_hex, History, Settings, Store, StoreError, StoredVersion};

/// The on-disk record of one procedure name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    /// The highest version ever given to this name; never reused, even after a delete.
    last_version: u64,
    /// The version serving now; `None` after a delete.
    #[serde(default)]
    serving: Option<u64>,
    /// The kept versions, newest first.
    #[serde(default)]
    versions: Vec<StoredVersion>,
    /// Records written before versions were kept held only the serving
    /// version, here; read as a history of that one version.
    #[serde(default, skip_serializing)]
    current: Option<StoredVersion>,
}

impl From<Record> for History {
    fn from(mut record: Record) -> History {
        if let Some(current) = record.current.take() {
            if record.versions.is_empty() {
                record.serving = Some(current.version);
                record.versions.push(current);
            }
        }
        History { last_version: record.last_version, serving: record.serving, versions: record.versions }
    }
}

impl From<&History> for Record {
    fn from(history: &History) -> Record {
        Record {
            last_version: history.last_version,
            serving: history.serving,
            versions: history.versions.clone(),
            current: None,
        }
    }
}

/// Reads a name's record file (any format this server ever wrote).
pub fn parse_record(bytes: &[u8]) -> serde_json::Result<History> {
    serde_json::from_slice::<Record>(bytes).map(History::from)
}

/// The data dir as the registry's store.
pub struct DataDir {
    root: PathBuf,
    /// Versions kept per name (`--keep-versions`).
    keep: usize,
}

impl DataDir {
    /// Opens (creating) the data dir and clears what an interrupted write left.
    pub fn open(root: &Path, keep: usize) -> anyhow::Result<Self> {
        for dir in ["procedures", "modules"] {
            create_and_clear(&root.join(dir))?;
        }
        Ok(DataDir { root: root.to_owned(), keep })
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("procedures").join(format!("{name}.json"))
    }

    fn module_path(&self, sha256: &str) -> PathBuf {
        self.root.join("modules").join(format!("{sha256}.wasm"))
    }

    fn names(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.root.join("procedures");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn save(&self, name: &str, history: &History) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(&Record::from(history))?;
        write_atomic(&self.record_path(name), &json)
    }

    /// Removes module files that no kept version names.
    fn collect_garbage(&self) -> anyhow::Result<()> {
        let kept = self.kept_modules()?;
        retain(&self.root.join("modules"), |stem| kept.contains(stem));
        Ok(())
    }
}

impl Store for DataDir {
    fn publish_with(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
        describe: &str,
        settings: &Settings,
    ) -> Result<StoredVersion, StoreError> {
        let mut history = self.history(name)?;
        // A module file already there is reused only if it is intact: a
        // deploy of the same bytes mends a damaged one.
        let path = self.module_path(sha256);
        if !fs::read(&path).is_ok_and(|stored| sha256_hex(&stored) == sha256) {
            write_atomic(&path, bytes)?;
        }
        let stored = StoredVersion {
            version: history.last_version + 1,
            sha256: sha256.to_owned(),
            size: bytes.len() as u64,
            deployed_at: now_rfc3339(),
            describe: describe.to_owned(),
            settings: settings.clone(),
        };
        let forgot = history.push(stored.clone(), self.keep);
        self.save(name, &history)?;
        // Only a forgotten version can leave a module file unused: the scan
        // of every record is skipped otherwise.
        if forgot {
            if let Err(e) = self.collect_garbage() {
                tracing::warn!("unused module files not removed: {e:#}");
            }
        }
        Ok(stored)
    }

    fn activate(&self, name: &str, version: u64) -> Result<StoredVersion, StoreError> {
        let mut history = self.history(name)?;
        let stored = history.kept(name, version)?.clone();
        history.serving = Some(version);
        self.save(name, &history)?;
        Ok(stored)
    }

    fn unpublish(&self, name: &str) -> Result<(), StoreError> {
        let mut history = self.history(name)?;
        if history.serving.take().is_none() {
            return Err(StoreError::NotFound(format!("no procedure named `{name}` is deployed")));
        }
        self.save(name, &history)?;
        Ok(())
    }

    fn history(&self, name: &str) -> Result<History, StoreError> {
        let path = self.record_path(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(parse_record(&bytes).with_context(|| format!("{} is not a valid record", path.display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", path.display())).into()),
        }
    }

    /// Damaged records are reported in the log and skipped.
    fn serving(&self) -> Result<Vec<(String, StoredVersion)>, StoreError> {
        let mut serving = Vec::new();
        for name in self.names()? {
            match self.history(&name) {
                Ok(history) => serving.extend(history.serving_version().cloned().map(|v| (name, v))),
                Err(e) => tracing::error!(procedure = name, "skipping damaged procedure: {e:#}"),
            }
        }
        Ok(serving)
    }

    fn module(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.module_path(sha256);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(anyhow::anyhow!("{} is corrupt: its sha256 is {actual}", path.display()).into());
        }
        Ok(bytes)
    }

    fn kept_modules(&self) -> Result<HashSet<String>, StoreError> {
        let mut kept = HashSet::new();
        for name in self.names()? {
            // A damaged record keeps nothing, but must not make every other
            // name's modules look unused: then nothing is collected.
            let history = self.history(&name)?;
            kept.extend(history.versions.into_iter().map(|v| v.sha256));
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::super::files::file_names as files;
    use super::*;

    fn publish(store: &DataDir, name: &str, bytes: &[u8]) -> StoredVersion {
        store.publish(name, &sha256_hex(bytes), bytes, "{\"methods\":[]}").unwrap()
    }

    #[test]
    fn versions_are_numbered_kept_and_survive_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(dir.path(), 2).unwrap();
        assert_eq!(store.history("math").unwrap(), History::default());
        assert_eq!(publish(&store, "math", b"one").version, 1);
        assert_eq!(publish(&store, "math", b"two").version, 2);
        assert_eq!(publish(&store, "math", b"three").version, 3);
        let history = store.history("math").unwrap();
        assert_eq!(history.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(history.serving, Some(3));
        // Version 1 is no longer kept, and neither are its bytes.
        assert!(matches!(store.activate("math", 1), Err(StoreError::NotFound(_))));
        assert_eq!(files(&dir.path().join("modules")).len(), 2);
        assert_eq!(store.activate("math", 2).unwrap().sha256, sha256_hex(b"two"));
        assert_eq!(store.serving().unwrap()[0].1.version, 2);
        assert_eq!(store.module(&sha256_hex(b"two")).unwrap(), b"two");
        store.unpublish("math").unwrap();
        assert!(store.serving().unwrap().is_empty());
        assert!(matches!(store.unpublish("math"), Err(StoreError::NotFound(_))));
        // The counter and the kept versions outlive the delete.
        assert_eq!(store.activate("math", 3).unwrap().version, 3);
        assert_eq!(publish(&store, "math", b"four").version, 4);
    }

    #[test]
    fn a_record_from_before_versions_were_kept_reads_as_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(dir.path(), 10).unwrap();
        let old = r#"{"last_version":3,"current":{"version":3,"sha256":"ab","size":4,
            "deployed_at":"2026-01-01T00:00:00Z","describe":"{}"}}"#;
        fs::write(dir.path().join("procedures/a.json"), old).unwrap();
        let history = store.history("a").unwrap();
        assert_eq!((history.last_version, history.serving, history.versions.len()), (3, Some(3), 1));
        let deleted = r#"{"last_version":5,"current":null}"#;
        fs::write(dir.path().join("procedures/b.json"), deleted).unwrap();
        assert_eq!(store.history("b").unwrap(), History { last_version: 5, serving: None, versions: vec![] });
    }

    #[test]
    fn corrupt_module_is_refused_and_temporaries_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = DataDir::open(dir.path(), 10).unwrap();
        let stored = publish(&store, "a", b"good");
        fs::write(dir.path().join("modules").join(format!("{}.wasm", stored.sha256)), b"bad!").unwrap();
        fs::write(dir.path().join("modules/.tmp-1-x.wasm"), b"partial").unwrap();
        fs::write(dir.path().join("procedures/b.json"), b"{ truncated").unwrap();
        let store = DataDir::open(dir.path(), 10).unwrap();
        assert!(store.module(&stored.sha256).is_err());
        // The damaged record is skipped; the intact one still serves.
        assert_eq!(store.serving().unwrap().len(), 1);
        assert!(!dir.path().join("modules/.tmp-1-x.wasm").exists());
        // Publishing the same bytes again mends the damaged file.
        assert_eq!(publish(&store, "a", b"good").version, 2);
        assert_eq!(store.module(&stored.sha256).unwrap(), b"good");
    }
}
