//! Configuration in the shared PostgreSQL registry: the table `proc_config`
//! (`migrations/0003_config.sql`), one row per key, on the registry's own
//! pool (configuration is read once per name and replica, then cached). A
//! change is one transaction under the registry's write lock, recorded in
//! the change log that replicas follow (`replica.rs`), so each drops the
//! name from its cache when the notification arrives (or, were it lost, at
//! its next poll of the log, within `REGISTRY_POLL`).

use std::future::Future;
use std::time::Duration;

use super::{Change, Entry, ProcConfig, VarsError};
use crate::store::pg::PgStore;
use crate::store::StoreError;

/// How long one read or change may take in all.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The table of one shared registry.
pub(super) struct PgVars {
    store: PgStore,
}

impl PgVars {
    pub(super) fn new(store: PgStore) -> PgVars {
        PgVars { store }
    }

    /// Runs `work` within [`TIMEOUT`].
    async fn timed<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, VarsError> {
        match tokio::time::timeout(TIMEOUT, work).await {
            Ok(done) => done.map_err(VarsError::from),
            Err(_) => Err(VarsError::Unavailable(format!(
                "the shared registry did not answer within {TIMEOUT:?}: nothing was changed; retry when it is back"
            ))),
        }
    }

    async fn read_in(&self, client: &impl tokio_postgres::GenericClient, name: &str) -> Result<ProcConfig, StoreError> {
        let rows = client
            .query("SELECT key, value, secret FROM proc_config WHERE name = $1", &[&name])
            .await
            .map_err(self.store.err())?;
        let mut config = ProcConfig::default();
        for row in &rows {
            let key: String = row.try_get(0).map_err(self.store.err())?;
            let value: String = row.try_get(1).map_err(self.store.err())?;
            let secret: bool = row.try_get(2).map_err(self.store.err())?;
            config.entries.insert(key, Entry { value, secret });
        }
        Ok(config)
    }

    pub(super) async fn read(&self, name: &str) -> Result<ProcConfig, VarsError> {
        self.timed(async {
            let client = self.store.client().await?;
            self.read_in(&**client, name).await
        })
        .await
    }

    /// Applies `changes`, all or none, and answers the new configuration.
    pub(super) async fn change(&self, name: &str, changes: &[Change]) -> Result<ProcConfig, VarsError> {
        let mut refused = None;
        let done = self
            .timed(async {
                let mut client = self.store.client().await?;
                let tx = client.transaction().await.map_err(self.store.err())?;
                self.store.begin_change(&tx).await?;
                let next = match self.read_in(&*tx, name).await?.merged(name, changes) {
                    Ok(next) => next,
                    Err(e) => {
                        refused = Some(e);
                        return Ok(None);
                    }
                };
                for change in changes {
                    match &change.set {
                        Some(Entry { value, secret }) => tx
                            .execute(
                                "INSERT INTO proc_config (name, key, value, secret) VALUES ($1, $2, $3, $4)
                                 ON CONFLICT (name, key) DO UPDATE SET value = $3, secret = $4",
                                &[&name, &change.key, value, secret],
                            )
                            .await
                            .map_err(self.store.err())?,
                        None => tx
                            .execute("DELETE FROM proc_config WHERE name = $1 AND key = $2", &[&name, &change.key])
                            .await
                            .map_err(self.store.err())?,
                    };
                }
                self.store.record_change(&tx, name).await?;
                tx.commit().await.map_err(self.store.err())?;
                Ok(Some(next))
            })
            .await?;
        match (done, refused) {
            (Some(next), _) => Ok(next),
            (None, Some(refused)) => Err(refused),
            (None, None) => Err(VarsError::Storage(anyhow::anyhow!("a configuration change went missing"))),
        }
    }
}
