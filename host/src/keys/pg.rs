//! Caller keys in the shared PostgreSQL registry: the table `caller_keys`
//! (`migrations/0006_keys.sql`), on the registry's own pool. Keys are read
//! whole (at start, after a change, and when another replica's change
//! arrives through the change log), never per request. A change is one
//! transaction under the registry's write lock, recorded in the change log
//! under [`super::CHANGE_NAME`].

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::limit::Rate;
use super::{KeysError, Stored, CHANGE_NAME};
use crate::store::pg::PgStore;
use crate::store::StoreError;

/// How long one read or change may take in all.
const TIMEOUT: Duration = Duration::from_secs(10);

const COLUMNS: &str = "name, sha256, prefix, procedures, per_second, burst, created_at";

/// The table of one shared registry.
pub(super) struct PgKeys {
    store: PgStore,
}

impl PgKeys {
    pub(super) fn new(store: PgStore) -> PgKeys {
        PgKeys { store }
    }

    /// Runs `work` within [`TIMEOUT`].
    async fn timed<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, KeysError> {
        match tokio::time::timeout(TIMEOUT, work).await {
            Ok(done) => done.map_err(KeysError::from),
            Err(_) => Err(KeysError::Unavailable(format!(
                "the shared registry did not answer within {TIMEOUT:?}: nothing was changed; retry when it is back"
            ))),
        }
    }

    fn stored(&self, row: &tokio_postgres::Row) -> Result<Stored, StoreError> {
        let err = self.store.err();
        let per_second: Option<i32> = row.try_get(4).map_err(&err)?;
        let burst: Option<i32> = row.try_get(5).map_err(&err)?;
        let rate = match (per_second, burst) {
            (Some(per_second), Some(burst)) => Some(Rate {
                per_second: u32::try_from(per_second).context("per_second out of range")?,
                burst: u32::try_from(burst).context("burst out of range")?,
            }),
            _ => None,
        };
        let created_at: OffsetDateTime = row.try_get(6).map_err(&err)?;
        Ok(Stored {
            name: row.try_get(0).map_err(&err)?,
            sha256: row.try_get(1).map_err(&err)?,
            prefix: row.try_get(2).map_err(&err)?,
            procedures: row.try_get(3).map_err(&err)?,
            rate,
            created_at: created_at.format(&Rfc3339).context("formatting created_at")?,
        })
    }

    /// Every key.
    pub(super) async fn read_all(&self) -> Result<Vec<Stored>, KeysError> {
        self.timed(async {
            let client = self.store.client().await?;
            let rows = client
                .query(&format!("SELECT {COLUMNS} FROM caller_keys ORDER BY name"), &[])
                .await
                .map_err(self.store.err())?;
            rows.iter().map(|row| self.stored(row)).collect()
        })
        .await
    }

    /// Adds `key`; `None` if a key of its name exists.
    pub(super) async fn create(&self, key: Stored) -> Result<Option<Stored>, KeysError> {
        self.timed(async {
            let mut client = self.store.client().await?;
            let tx = client.transaction().await.map_err(self.store.err())?;
            self.store.begin_change(&tx).await?;
            let rate = |f: fn(&Rate) -> u32| key.rate.as_ref().map(|r| i32::try_from(f(r)).unwrap_or(i32::MAX));
            let (per_second, burst) = (rate(|r| r.per_second), rate(|r| r.burst));
            let row = tx
                .query_opt(
                    &format!(
                        "INSERT INTO caller_keys ({COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, date_trunc('second', now()))
                         ON CONFLICT (name) DO NOTHING
                         RETURNING {COLUMNS}"
                    ),
                    &[&key.name, &key.sha256, &key.prefix, &key.procedures, &per_second, &burst],
                )
                .await
                .map_err(self.store.err())?;
            let Some(row) = row else {
                return Ok(None);
            };
            let stored = self.stored(&row)?;
            self.store.record_change(&tx, CHANGE_NAME).await?;
            tx.commit().await.map_err(self.store.err())?;
            Ok(Some(stored))
        })
        .await
    }

    /// Removes the key named `name`; whether there was one.
    pub(super) async fn remove(&self, name: &str) -> Result<bool, KeysError> {
        self.timed(async {
            let mut client = self.store.client().await?;
            let tx = client.transaction().await.map_err(self.store.err())?;
            self.store.begin_change(&tx).await?;
            let removed =
                tx.execute("DELETE FROM caller_keys WHERE name = $1", &[&name]).await.map_err(self.store.err())?;
            if removed == 0 {
                return Ok(false);
            }
            self.store.record_change(&tx, CHANGE_NAME).await?;
            tx.commit().await.map_err(self.store.err())?;
            Ok(true)
        })
        .await
    }
}
