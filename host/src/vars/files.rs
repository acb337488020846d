//! Configuration in the data dir: `config/NAME.json` per procedure name,
//! `{"variables": {...}, "secrets": {...}}`, in a directory of mode 0700
//! and written atomically as a file of mode 0600 from its creation
//! (`store::write_atomic_private`), so only the server's user can read a
//! secret. A name without configuration has no file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Entry, ProcConfig, VarsError};

/// The directory of the data dir that holds the files.
pub const DIR: &str = "config";

/// A file's content.
#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

/// The files of one data dir.
pub(super) struct Files {
    dir: PathBuf,
}

impl Files {
    /// Makes `data_dir/config/` (mode 0700) if absent. Blocking.
    pub(super) fn open(data_dir: &Path) -> anyhow::Result<Files> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = data_dir.join(DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Files { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        // Procedure names are checked (`registry::check_name`): safe as file names.
        self.dir.join(format!("{name}.json"))
    }

    pub(super) async fn read(&self, name: &str) -> Result<ProcConfig, VarsError> {
        let path = self.path(name);
        blocking(move || {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProcConfig::default()),
                Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
            };
            // The error says where, never what: the file holds secrets.
            let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("{} is damaged (line {}, column {})", path.display(), e.line(), e.column())
            })?;
            let variables = on_disk.variables.into_iter().map(|(k, value)| (k, Entry { value, secret: false }));
            let secrets = on_disk.secrets.into_iter().map(|(k, value)| (k, Entry { value, secret: true }));
            Ok(ProcConfig { entries: variables.chain(secrets).collect() })
        })
        .await
    }

    /// Replaces `name`'s file with `config` (removes it when empty).
    pub(super) async fn write(&self, name: &str, config: &ProcConfig) -> Result<(), VarsError> {
        let path = self.path(name);
        let mut on_disk = OnDisk::default();
        for (key, entry) in &config.entries {
            let part = if entry.secret { &mut on_disk.secrets } else { &mut on_disk.variables };
            part.insert(key.clone(), entry.value.clone());
        }
        let empty = config.entries.is_empty();
        blocking(move || {
            if empty {
                return match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(anyhow::Error::new(e).context(format!("removing {}", path.display())))
                    }
                    _ => Ok(()),
                };
            }
            let bytes = serde_json::to_vec_pretty(&on_disk).context("encoding the configuration")?;
            crate::store::write_atomic_private(&path, &bytes)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, VarsError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| VarsError::Storage(anyhow::anyhow!("blocking task failed: {e}")))?
        .map_err(VarsError::Storage)
}
