//! One replica of a fleet that shares a PostgreSQL registry
//! ([`crate::store::pg`]): opening the registry at start, retrying while
//! PostgreSQL cannot be reached, and following the changes other replicas
//! make.
//!
//! Following: a dedicated connection LISTENs on the change channel, but a
//! notification is only a wake-up. On one, on every (re)connect and every
//! [`REGISTRY_POLL`], the replica reads the change log after the last change
//! it applied and brings each changed name in line ([`Registry::sync`]:
//! compile into its own cache, swap; and drop its cached configuration,
//! [`crate::vars`]; a change of caller keys reloads [`crate::keys`]), so a
//! notification lost while the
//! connection was down is never a lost deploy. While PostgreSQL is down the
//! replica serves what it has; deploys answer 503 (the store says
//! `Unavailable`), and it catches up once PostgreSQL is back.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use crate::config::{Config, REGISTRY_MAX_BACKOFF, REGISTRY_POLL};
use crate::keys::{Keys, KeysError};
use crate::kv::Kv;
use crate::registry::{Registry, RegistryError};
use crate::store::pg::{PgStore, PgTarget};
use crate::store::StoreError;
use crate::vars::Vars;

/// The first wait before trying the registry again.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Connects to `target` (creating or migrating its schema), loads every
/// procedure serving there, and starts following its changes. Retries with
/// backoff while PostgreSQL cannot be reached, telling `report` why it is
/// not ready yet; fails at once on what retrying cannot fix (a wrong
/// password, no such database).
pub async fn open(config: &Config, target: &PgTarget, report: impl Fn(String)) -> anyhow::Result<Arc<Registry>> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match try_open(config, target).await {
            Ok((registry, store, cursor)) => {
                tracing::info!(registry = %target, change = cursor, "loaded the shared registry");
                tokio::spawn(follow(registry.clone(), store, cursor));
                return Ok(registry);
            }
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!("not ready: {why}; retrying in {backoff:?}");
                report(why);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REGISTRY_MAX_BACKOFF);
            }
            Err(StoreError::NotFound(why)) => return Err(anyhow!(why)),
            Err(StoreError::Internal(e)) => return Err(e),
        }
    }
}

async fn try_open(config: &Config, target: &PgTarget) -> Result<(Arc<Registry>, PgStore, i64), StoreError> {
    let store = PgStore::connect(target, config.keep_versions).await?;
    // The cursor is read before the procedures: a change committed in
    // between is applied again (a no-op), never skipped.
    let cursor = store.last_change().await?;
    let (config, boxed) = (config.clone(), Box::new(store.clone()));
    let kv = Kv::postgres(store.kv(), config.kv);
    let vars = Vars::postgres(store.clone());
    let keys = Keys::postgres(store.clone(), &config).await.map_err(|e| match e {
        KeysError::Unavailable(why) => StoreError::Unavailable(why),
        e => StoreError::Internal(e.into()),
    })?;
    let registry = tokio::task::spawn_blocking(move || Registry::open_with(&config, boxed, kv, vars, keys))
        .await
        .map_err(|e| anyhow!("loading the registry failed: {e}"))?
        .map_err(|e| match e.downcast::<RegistryError>() {
            Ok(RegistryError::Unavailable(why)) => StoreError::Unavailable(why),
            Ok(other) => StoreError::Internal(other.into()),
            Err(e) => StoreError::Internal(e),
        })?;
    Ok((Arc::new(registry), store, cursor))
}

/// Applies every change after `cursor` to `registry`, for ever: see the
/// module doc.
async fn follow(registry: Arc<Registry>, store: PgStore, mut cursor: i64) {
    let mut backoff = FIRST_BACKOFF;
    // Why the registry is down, logged once per outage.
    let mut down: Option<String> = None;
    loop {
        let mut listener = match store.listen().await {
            Ok(listener) => listener,
            Err(e) => {
                lost(&mut down, e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REGISTRY_MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        if down.take().is_some() {
            tracing::info!("the shared registry is reachable again: catching up");
        }
        loop {
            if let Err(e) = catch_up(&registry, &store, &mut cursor).await {
                lost(&mut down, e);
                break;
            }
            tokio::select! {
                woken = listener.next() => if !woken {
                    lost(&mut down, StoreError::Unavailable("the notification connection was closed".into()));
                    break;
                },
                () = tokio::time::sleep(REGISTRY_POLL) => {}
            }
        }
    }
}

/// Logs the start of an outage (once) or an unexpected failure.
fn lost(down: &mut Option<String>, err: StoreError) {
    match err {
        StoreError::Unavailable(why) => {
            if down.is_none() {
                tracing::warn!("{why}; serving the procedures this replica has, deploys answer 503 until it is back");
            }
            *down = Some(why);
        }
        e => tracing::error!("following the shared registry failed: {e:#}; retrying"),
    }
}

/// Reads the changes after `cursor` and syncs each changed name once,
/// advancing `cursor` past what was applied. A name that cannot be applied
/// here for another reason than the registry being down (a module this
/// replica cannot compile) is logged and passed over, so it does not hold
/// up every later change.
async fn catch_up(registry: &Arc<Registry>, store: &PgStore, cursor: &mut i64) -> Result<(), StoreError> {
    loop {
        let changes = store.changes_since(*cursor).await?;
        let Some(&(last, _)) = changes.last() else {
            return Ok(());
        };
        // A sync reads the name's state now: several changes need one.
        let mut names: Vec<String> = Vec::new();
        for (_, name) in changes {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in names {
            if name == crate::keys::CHANGE_NAME {
                match registry.keys().reload().await {
                    Ok(()) => {}
                    Err(KeysError::Unavailable(why)) => return Err(StoreError::Unavailable(why)),
                    Err(e) => tracing::error!("cannot read the caller keys from the shared registry: {e}"),
                }
                continue;
            }
            // A change may be of the name's configuration: read it again.
            registry.vars().forget(&name);
            match registry.sync(&name).await {
                Ok(()) => {}
                Err(RegistryError::Unavailable(why)) => return Err(StoreError::Unavailable(why)),
                Err(e) => tracing::error!(
                    procedure = name,
                    "cannot apply a change from the shared registry: {e}; this replica keeps what it had"
                ),
            }
        }
        *cursor = last;
    }
}
