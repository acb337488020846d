//! Caller keys in the data dir: `keys.json`, every key's name, hash,
//! procedures, rate and creation time (never a key), written atomically
//! as a file of mode 0600 (`store::write_atomic_private`). No keys, no
//! file.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{KeysError, Stored};

/// The file of the data dir that holds the keys.
pub const FILE: &str = "keys.json";

/// The file's content.
#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    keys: Vec<Stored>,
}

/// The keys file of one data dir.
pub(super) struct Files {
    path: PathBuf,
}

impl Files {
    pub(super) fn new(data_dir: &Path) -> Files {
        Files { path: data_dir.join(FILE) }
    }

    /// Every key. Blocking.
    pub(super) fn read_blocking(&self) -> anyhow::Result<Vec<Stored>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", self.path.display()))),
        };
        let on_disk: OnDisk = serde_json::from_slice(&bytes).with_context(|| {
            format!("{} is damaged: fix or remove it (its keys are lost then)", self.path.display())
        })?;
        Ok(on_disk.keys)
    }

    pub(super) async fn read(&self) -> Result<Vec<Stored>, KeysError> {
        let files = Files { path: self.path.clone() };
        blocking(move || files.read_blocking()).await
    }

    /// Replaces the file with `keys` (removes it when there are none).
    pub(super) async fn write(&self, mut keys: Vec<Stored>) -> Result<(), KeysError> {
        let path = self.path.clone();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        blocking(move || {
            if keys.is_empty() {
                return match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(anyhow::Error::new(e).context(format!("removing {}", path.display())))
                    }
                    _ => Ok(()),
                };
            }
            let bytes = serde_json::to_vec_pretty(&OnDisk { keys }).context("encoding the keys")?;
            crate::store::write_atomic_private(&path, &bytes)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, KeysError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| KeysError::Storage(anyhow::anyhow!("blocking task failed: {e}")))?
        .map_err(KeysError::Storage)
}
