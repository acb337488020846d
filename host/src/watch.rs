//! Watching files: [`FileWatcher`] reports changed paths once they have been
//! quiet for [`DEBOUNCE`] (an editor's save or a copy is often several
//! events, and a file being written must not be read half-way). `serve
//! --watch DIR` uses it here to keep every `DIR/*.wasm` deployed under its
//! file stem (a file that does not validate is logged while the previous
//! version keeps serving), with the settings its sidecar `DIR/NAME.toml`
//! names, the keys of a deploy's query (`allow-outbound =
//! ["https://api.example.com"]`, `reuse = 100`, `reuse-idle-ms`,
//! `reuse-memory-mib`; a change to it redeploys); `wasmrpc dev` uses it to
//! rebuild on a source change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::logtext::loggable;
use crate::registry::{Registry, RegistryError};
use crate::sandbox::Reuse;
use crate::store::Settings;

/// How long the watched files must stay quiet after a change before it is
/// reported.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches directories and reports debounced batches of changed paths. The
/// watching stops when it is dropped.
pub struct FileWatcher {
    _watcher: notify::RecommendedWatcher,
    changed: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
}

impl FileWatcher {
    /// Watches each `(dir, mode)`; paths for which `relevant` is false are
    /// ignored, and so is reading a file.
    pub fn new(
        dirs: &[(&Path, RecursiveMode)],
        relevant: impl Fn(&Path) -> bool + Send + 'static,
    ) -> anyhow::Result<Self> {
        let (tx, changed) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let written = matches!(event.kind, EventKind::Access(AccessKind::Close(AccessMode::Write)));
            if matches!(event.kind, EventKind::Access(_)) && !written {
                return;
            }
            for path in event.paths.into_iter().filter(|p| relevant(p)) {
                let _ = tx.send(path);
            }
        })
        .context("cannot start the file watcher")?;
        for (dir, mode) in dirs {
            watcher.watch(dir, *mode).with_context(|| format!("cannot watch {}", dir.display()))?;
        }
        Ok(FileWatcher { _watcher: watcher, changed })
    }

    /// Waits for a change, then until nothing has changed for [`DEBOUNCE`],
    /// and returns every path that changed meanwhile. `None` when the
    /// watcher stopped.
    pub async fn changes(&mut self) -> Option<HashSet<PathBuf>> {
        let mut paths = HashSet::from([self.changed.recv().await?]);
        loop {
            match tokio::time::timeout(DEBOUNCE, self.changed.recv()).await {
                Ok(Some(path)) => {
                    paths.insert(path);
                }
                Ok(None) => return None,
                Err(_quiet) => return Some(paths),
            }
        }
    }
}

/// Deploys what is in `dir` now and keeps it deployed as it changes.
pub fn spawn(registry: Arc<Registry>, dir: PathBuf) -> anyhow::Result<()> {
    // The directory itself, not the files: a file replaced by a rename is
    // seen too.
    let mut watcher = FileWatcher::new(&[(&dir, RecursiveMode::NonRecursive)], |p| {
        is_wasm(p) || p.extension().is_some_and(|e| e == "toml")
    })?;
    let initial: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_wasm(p))
        .collect();
    tokio::spawn(async move {
        for path in initial {
            sync(&registry, &path).await;
        }
        while let Some(paths) = watcher.changes().await {
            // A sidecar's change redeploys its module.
            let modules: HashSet<PathBuf> = paths.into_iter().map(|p| p.with_extension("wasm")).collect();
            for path in modules {
                sync(&registry, &path).await;
            }
        }
    });
    Ok(())
}

fn is_wasm(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}

/// Makes the procedure named after `path` match the file: deploy it, or
/// remove it if the file is gone.
async fn sync(registry: &Arc<Registry>, path: &Path) {
    let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
        return;
    };
    let shown = path.display();
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let settings = match sidecar(&path.with_extension("toml")).await {
                Ok(settings) => settings,
                Err(e) => {
                    return tracing::error!(procedure = name, "watch: not deploying {shown}: {}", loggable(&e));
                }
            };
            deploy(registry, name, bytes, settings, path).await;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match registry.remove(name).await {
            Ok(()) => tracing::info!(procedure = name, "watch: {shown} removed; undeployed"),
            Err(RegistryError::NotFound(_) | RegistryError::BadName(_)) => {}
            Err(e) => tracing::error!(procedure = name, "watch: cannot undeploy: {e}"),
        },
        Err(e) => tracing::error!(procedure = name, "watch: cannot read {shown}: {e}"),
    }
}

/// The sidecar of a watched module: `allow-outbound = [URL, ...]`,
/// `reuse = N`, `reuse-idle-ms = T`, `reuse-memory-mib = M` (the defaults
/// when the file is absent).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    #[serde(default, rename = "allow-outbound")]
    allow_outbound: Vec<String>,
    reuse: Option<i64>,
    #[serde(rename = "reuse-idle-ms")]
    reuse_idle_ms: Option<i64>,
    #[serde(rename = "reuse-memory-mib")]
    reuse_memory_mib: Option<i64>,
}

/// The settings `path` (a module's `NAME.toml`) names, or what is wrong with it.
async fn sidecar(path: &Path) -> Result<Settings, String> {
    let shown = path.display();
    let sidecar = match tokio::fs::read_to_string(path).await {
        Ok(text) => toml::from_str::<Sidecar>(&text).map_err(|e| {
            format!("{shown} is not a valid sidecar (allow-outbound = [\"https://host\", ...], reuse = N): {e}")
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Sidecar::default(),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    let numbers = [
        ("reuse", sidecar.reuse),
        ("reuse-idle-ms", sidecar.reuse_idle_ms),
        ("reuse-memory-mib", sidecar.reuse_memory_mib),
    ];
    let reuse = Reuse::from_pairs(numbers.iter().filter_map(|(key, n)| n.map(|n| (*key, n.to_string()))))
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(Settings { allowed_outbound: sidecar.allow_outbound, reuse })
}

async fn deploy(registry: &Arc<Registry>, name: &str, bytes: Vec<u8>, settings: Settings, path: &Path) {
    let shown = path.display();
    {
        match registry.deploy_with(name, bytes.into(), settings).await {
            Ok((meta, _)) => {
                tracing::info!(procedure = name, version = meta.version, "watch: deployed {shown}")
            }
            Err(e) => tracing::error!(procedure = name, "watch: not deploying {shown}: {}", loggable(&e.to_string())),
        }
    }
}
