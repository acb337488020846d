//! `serve --watch DIR`: keeps every `DIR/*.wasm` deployed under its file stem.
//! Changes are debounced (a file must be quiet for [`DEBOUNCE`] before it is
//! read), so a file being written is not loaded half-way; and a file that
//! does not validate is logged while the previous version keeps serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::Watcher as _;

use crate::registry::{DeployError, Registry};

/// How long a file must stay unchanged before it is (re)deployed.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Deploys what is in `dir` now and starts watching it.
pub fn spawn(registry: Arc<Registry>, dir: PathBuf) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .context("cannot start the file watcher")?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    let initial: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_wasm(p))
        .collect();
    tokio::spawn(async move {
        let _watcher = watcher; // watching stops when this is dropped
        for path in initial {
            sync(&registry, &path).await;
        }
        let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
        loop {
            let wait = tokio::time::sleep(DEBOUNCE / 2);
            tokio::select! {
                path = rx.recv() => match path {
                    Some(path) if is_wasm(&path) => { pending.insert(path, Instant::now()); }
                    Some(_) => {}
                    None => return,
                },
                () = wait => {
                    let ready: Vec<PathBuf> = pending
                        .iter()
                        .filter(|(_, at)| at.elapsed() >= DEBOUNCE)
                        .map(|(p, _)| p.clone())
                        .collect();
                    for path in ready {
                        pending.remove(&path);
                        sync(&registry, &path).await;
                    }
                }
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
        Ok(bytes) => match registry.deploy(name, bytes.into()).await {
            Ok((meta, _)) => {
                tracing::info!(procedure = name, version = meta.version, "watch: deployed {shown}")
            }
            Err(e) => tracing::error!(procedure = name, "watch: not deploying {shown}: {e}"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match registry.remove(name).await {
            Ok(()) => tracing::info!(procedure = name, "watch: {shown} removed; undeployed"),
            Err(DeployError::NotFound(_) | DeployError::BadName(_)) => {}
            Err(e) => tracing::error!(procedure = name, "watch: cannot undeploy: {e}"),
        },
        Err(e) => tracing::error!(procedure = name, "watch: cannot read {shown}: {e}"),
    }
}
