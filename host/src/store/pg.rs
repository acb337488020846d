//! The PostgreSQL store: the registry that replicas share
//! (`serve --registry postgres://USER@HOST:PORT/DB`). PostgreSQL holds the
//! truth (module bytes by sha256, each name's versions, which one serves);
//! each replica keeps only its compiled-code cache in its own data dir.
//!
//! Client: `tokio-postgres` with a `deadpool-postgres` pool, on the server's
//! own tokio runtime. The [`Store`] methods block: the registry calls them
//! from blocking threads, where [`Handle::block_on`] runs the queries on the
//! runtime that already drives every other socket; the change follower
//! (`replica`) uses the same pool and a dedicated LISTEN connection
//! asynchronously, with no second runtime or thread pool.
//!
//! Every change (publish, activate, unpublish) is one transaction: the work,
//! a row in `changes`, and `NOTIFY wasmrpc_changes` with the change id (never
//! bytes: a payload is limited to 8000 bytes). Writers take one advisory
//! lock first, so changes commit one at a time in `changes.id` order: a
//! replica that has read change N has seen every change before it, and two
//! replicas publishing one name at once get distinct version numbers.
//! The schema is created and migrated at start from `host/migrations/`.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, GenericClient, NoTls, Row};

use super::{sha256_hex, History, Settings, Store, StoreError, StoredVersion};
use crate::sandbox::Reuse;

/// The channel replicas LISTEN on. A notification is only a wake-up: its
/// payload is the change id, and a replica reads `changes` for the rest.
pub const CHANNEL: &str = "wasmrpc_changes";

/// The schema's migrations, applied in order at start; each runs once and is
/// recorded in `schema_migrations`. Add a file and a line; never edit one
/// that was released.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "registry", include_str!("../../migrations/0001_registry.sql")),
    (2, "kv", include_str!("../../migrations/0002_kv.sql")),
    (3, "config", include_str!("../../migrations/0003_config.sql")),
    (4, "outbound", include_str!("../../migrations/0004_outbound.sql")),
    (5, "reuse", include_str!("../../migrations/0005_reuse.sql")),
    (6, "keys", include_str!("../../migrations/0006_keys.sql")),
];

/// The columns of `versions` a [`StoredVersion`] is read from, in the order
/// [`PgStore::stored_version`] reads them (no other table of its queries
/// has columns of these names).
const VERSION_COLUMNS: &str = "version, sha256, size, deployed_at, describe, allowed_outbound, \
                               reuse_calls, reuse_idle_ms, reuse_memory_mib";

/// Advisory lock held while migrating, so replicas starting together do not
/// migrate twice.
const MIGRATION_LOCK: i64 = 0x7761_736d_7270_6301;
/// Advisory lock every change takes first: changes commit one at a time, in
/// the order of their `changes.id` (see the module doc).
const WRITE_LOCK: i64 = 0x7761_736d_7270_6302;

/// How long connecting may take. A registry that does not answer within it
/// is down for this request: a deploy answers 503 at once instead of
/// holding the client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one store operation may take in all (a connection, its queries,
/// a 32 MiB module). Past it the operation counts as the registry being
/// unreachable, so a hung server cannot hold a deploy or a replica's sync.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections per replica: deploys are serialised per replica and reads
/// are short, so a few suffice; PostgreSQL's own limit is shared by all.
const POOL_SIZE: usize = 4;
/// Changes read at once by a replica catching up.
const CHANGES_PER_READ: i64 = 1000;

/// Where the shared registry is: the parsed `--registry` URL with its
/// password. Shown (logs, errors, `Debug`) without the password.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    shown: String,
}

impl PgTarget {
    /// Parses `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`); `password`
    /// (from a file or `PGPASSWORD`) is used when the URL has none. Errors
    /// never repeat the URL: it may hold the password.
    pub fn parse(url: &str, password: Option<String>) -> anyhow::Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("--registry must be a URL like postgres://USER@HOST:PORT/DB");
        }
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| anyhow!("--registry is not a valid postgres:// URL (postgres://USER@HOST:PORT/DB): {e}"))?;
        if config.get_password().is_none() {
            if let Some(password) = password {
                config.password(password);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("wasmrpc");
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let host = match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                let port = config.get_ports().get(i).or(config.get_ports().first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        let shown = format!(
            "postgres://{}@{}/{}",
            config.get_user().unwrap_or("(user of this process)"),
            hosts.join(","),
            config.get_dbname().unwrap_or("")
        );
        Ok(PgTarget { config, shown })
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The shared registry as a [`Store`]. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    target: PgTarget,
    runtime: Handle,
    /// Versions kept per name (`--keep-versions` of the replica that publishes).
    keep: usize,
}

impl PgStore {
    /// Connects to `target` and creates or migrates the schema. Call on the
    /// runtime the store will use. [`StoreError::Unavailable`] when the
    /// server cannot be reached (worth retrying); other errors (a wrong
    /// password, no such database, a newer schema) are not.
    pub async fn connect(target: &PgTarget, keep: usize) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            target.config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Verified },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| anyhow!("cannot set up connections to {target}: {e}"))?;
        let store = PgStore { pool, target: target.clone(), runtime: Handle::current(), keep: keep.max(1) };
        store.migrate().await?;
        Ok(store)
    }

    /// The key-value tables of this registry, on a pool of their own
    /// (`kv::pg::POOL_SIZE` connections, made when first used; a connection
    /// is checked only for being closed when reused, which spares a round
    /// trip per call: one the server dropped fails a call and is replaced).
    pub fn kv(&self) -> crate::kv::pg::PgKv {
        use crate::kv::pg::{PgKv, POOL_SIZE, TIMEOUT};
        // Every key-value statement has an index to use, and must: a plan
        // cached while a table was tiny (a scan) would otherwise stay as
        // the table grows (see migrations/0002_kv.sql).
        let mut config = self.target.config.clone();
        let options = [config.get_options().unwrap_or_default(), "-c enable_seqscan=off"].join(" ");
        config.options(options.trim());
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            // Only a missing runtime fails the build, and it is given: the
            // registry's own pool would do.
            .unwrap_or_else(|_| self.pool.clone());
        PgKv::new(pool, &self.target)
    }

    /// Applies the migrations this server knows and the database lacks, in
    /// one transaction under [`MIGRATION_LOCK`].
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.err())?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(self.err())?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    bigint      PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(self.err())?;
        let applied: Vec<i64> =
            self.first_column(&tx.query("SELECT version FROM schema_migrations", &[]).await.map_err(self.err())?)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(newer) = applied.iter().find(|&&v| v > known) {
            return Err(StoreError::Internal(anyhow!(
                "the shared registry {} has schema version {newer}, newer than this wasmrpc knows ({known}): \
                 upgrade wasmrpc on this replica",
                self.target
            )));
        }
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql).await.map_err(self.err())?;
            tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&version, &name])
                .await
                .map_err(self.err())?;
            tracing::info!(registry = %self.target, version, name, "applied schema migration");
        }
        tx.commit().await.map_err(self.err())
    }

    /// The id of the newest change (0: none yet): where a replica that has
    /// just loaded everything starts following.
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT coalesce(max(id), 0) FROM changes", &[]).await.map_err(self.err())?;
        row.try_get(0).map_err(self.err())
    }

    /// Changes after `after`, oldest first: (change id, procedure name).
    pub async fn changes_since(&self, after: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, name FROM changes WHERE id > $1 ORDER BY id LIMIT $2", &[&after, &CHANGES_PER_READ])
            .await
            .map_err(self.err())?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            changes.push((row.try_get(0).map_err(self.err())?, row.try_get(1).map_err(self.err())?));
        }
        Ok(changes)
    }

    /// A dedicated connection that LISTENs on [`CHANNEL`].
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        let (client, mut connection) = self.target.config.connect(NoTls).await.map_err(self.err())?;
        let (wake, wakeups) = mpsc::unbounded_channel();
        // The connection object carries both the queries' answers and the
        // notifications: drive it here, forwarding each notification.
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if wake.send(()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("registry notification connection ended: {e}");
                        break;
                    }
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(self.err())?;
        Ok(Listener { _client: client, wakeups, driver })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.classify(e),
            PoolError::Timeout(_) => self.unavailable(format!("no connection within {CONNECT_TIMEOUT:?}")),
            e => StoreError::Internal(anyhow!("connection pool for {}: {e}", self.target)),
        })
    }

    /// Runs `work` on the runtime from a blocking thread, within
    /// [`OPERATION_TIMEOUT`].
    fn block<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.runtime.block_on(async {
            tokio::time::timeout(OPERATION_TIMEOUT, work)
                .await
                .unwrap_or_else(|_| Err(self.unavailable(format!("no answer within {OPERATION_TIMEOUT:?}"))))
        })
    }

    fn unavailable(&self, cause: impl fmt::Display) -> StoreError {
        StoreError::Unavailable(format!(
            "the shared registry {} cannot be reached ({cause}): nothing was changed; retry when it is back",
            self.target
        ))
    }

    pub(crate) fn err(&self) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        |e| self.classify(e)
    }

    /// A failure the registry being down explains (no connection, a lost
    /// one, a server shutting down or starting) is `Unavailable`; anything
    /// else is internal.
    fn classify(&self, err: tokio_postgres::Error) -> StoreError {
        let transient = [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_EXCEPTION,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
        ];
        let lost = match err.code() {
            Some(code) => transient.contains(code),
            None => {
                err.is_closed()
                    || std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>())
                    || err.to_string().starts_with("timeout")
            }
        };
        if lost {
            let cause = std::error::Error::source(&err).map_or_else(|| err.to_string(), |s| s.to_string());
            self.unavailable(cause)
        } else {
            StoreError::Internal(anyhow::Error::new(err).context(format!("the shared registry {}", self.target)))
        }
    }

    /// Takes [`WRITE_LOCK`] for the rest of `tx`: the first step of every change.
    pub(crate) async fn begin_change(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).await.map_err(self.err())?;
        Ok(())
    }

    /// Records a change of `name` and queues its notification (sent at commit).
    pub(crate) async fn record_change(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        name: &str,
    ) -> Result<(), StoreError> {
        let row =
            tx.query_one("INSERT INTO changes (name) VALUES ($1) RETURNING id", &[&name]).await.map_err(self.err())?;
        let id: i64 = row.try_get(0).map_err(self.err())?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &id.to_string()]).await.map_err(self.err())?;
        Ok(())
    }

    async fn history_in(&self, client: &impl GenericClient, name: &str) -> Result<History, StoreError> {
        let rows = client
            .query(
                &format!(
                    "SELECT p.last_version, p.serving, {VERSION_COLUMNS}
                     FROM procedures p LEFT JOIN versions v ON v.name = p.name
                     WHERE p.name = $1 ORDER BY v.version DESC"
                ),
                &[&name],
            )
            .await
            .map_err(self.err())?;
        let Some(first) = rows.first() else {
            return Ok(History::default());
        };
        let last_version: i64 = first.try_get(0).map_err(self.err())?;
        let serving: Option<i64> = first.try_get(1).map_err(self.err())?;
        let mut versions = Vec::new();
        for row in &rows {
            if row.try_get::<_, Option<i64>>(2).map_err(self.err())?.is_some() {
                versions.push(self.stored_version(row, 2)?);
            }
        }
        Ok(History { last_version: number(last_version)?, serving: serving.map(number).transpose()?, versions })
    }

    /// The first column of every row.
    fn first_column<T, C>(&self, rows: &[Row]) -> Result<C, StoreError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
        C: FromIterator<T>,
    {
        rows.iter().map(|row| row.try_get(0)).collect::<Result<C, _>>().map_err(self.err())
    }

    /// The version whose columns ([`VERSION_COLUMNS`]) start at `at` in `row`.
    fn stored_version(&self, row: &Row, at: usize) -> Result<StoredVersion, StoreError> {
        let deployed_at: OffsetDateTime = row.try_get(at + 3).map_err(self.err())?;
        let calls: i32 = row.try_get(at + 6).map_err(self.err())?;
        let memory_mib: Option<i64> = row.try_get(at + 8).map_err(self.err())?;
        let reuse = Reuse {
            calls: u32::try_from(calls).context("reuse_calls out of range")?,
            idle_ms: number(row.try_get(at + 7).map_err(self.err())?)?,
            memory_mib: memory_mib.map(number).transpose()?,
        };
        Ok(StoredVersion {
            version: number(row.try_get(at).map_err(self.err())?)?,
            sha256: row.try_get(at + 1).map_err(self.err())?,
            size: number(row.try_get(at + 2).map_err(self.err())?)?,
            deployed_at: deployed_at.format(&Rfc3339).context("formatting deployed_at")?,
            describe: row.try_get(at + 4).map_err(self.err())?,
            settings: Settings { allowed_outbound: row.try_get(at + 5).map_err(self.err())?, reuse },
        })
    }
}

/// A database `bigint` that counts (versions, sizes) as `u64`.
fn number(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Internal(anyhow!("negative number {n} in the shared registry")))
}

impl Store for PgStore {
    fn publish_with(
        &self,
        name: &str,
        sha256: &str,
        bytes: &[u8],
        describe: &str,
        settings: &Settings,
    ) -> Result<StoredVersion, StoreError> {
        self.block(async {
            let size = i64::try_from(bytes.len()).context("module too large")?;
            let keep = i64::try_from(self.keep).unwrap_or(i64::MAX);
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(self.err())?;
            self.begin_change(&tx).await?;
            // Under the lock: no other change can drop these bytes before
            // the new version refers to them.
            if tx.query_opt("SELECT 1 FROM modules WHERE sha256 = $1", &[&sha256]).await.map_err(self.err())?.is_none()
            {
                tx.execute("INSERT INTO modules (sha256, bytes, size) VALUES ($1, $2, $3)", &[&sha256, &bytes, &size])
                    .await
                    .map_err(self.err())?;
            }
            let row = tx
                .query_one(
                    "INSERT INTO procedures (name, last_version, serving) VALUES ($1, 1, 1)
                     ON CONFLICT (name) DO UPDATE
                     SET last_version = procedures.last_version + 1, serving = procedures.last_version + 1
                     RETURNING last_version",
                    &[&name],
                )
                .await
                .map_err(self.err())?;
            let version: i64 = row.try_get(0).map_err(self.err())?;
            let reuse = settings.reuse;
            let calls = i32::try_from(reuse.calls).context("reuse out of range")?;
            let idle_ms = i64::try_from(reuse.idle_ms).context("reuse-idle-ms out of range")?;
            let memory_mib =
                reuse.memory_mib.map(i64::try_from).transpose().context("reuse-memory-mib out of range")?;
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO versions (name, version, sha256, size, deployed_at, describe, allowed_outbound,
                                               reuse_calls, reuse_idle_ms, reuse_memory_mib)
                         VALUES ($1, $2, $3, $4, date_trunc('second', now()), $5, $6, $7, $8, $9)
                         RETURNING {VERSION_COLUMNS}"
                    ),
                    &[
                        &name,
                        &version,
                        &sha256,
                        &size,
                        &describe,
                        &settings.allowed_outbound,
                        &calls,
                        &idle_ms,
                        &memory_mib,
                    ],
                )
                .await
                .map_err(self.err())?;
            let stored = self.stored_version(&row, 0)?;
            // Retention as History::push: the `keep` newest versions (the
            // new one, serving, among them), then bytes nothing refers to.
            let dropped: Vec<String> = self.first_column(
                &tx.query(
                    "DELETE FROM versions WHERE name = $1 AND version NOT IN
                         (SELECT version FROM versions WHERE name = $1 ORDER BY version DESC LIMIT $2)
                     RETURNING sha256",
                    &[&name, &keep],
                )
                .await
                .map_err(self.err())?,
            )?;
            if !dropped.is_empty() {
                tx.execute(
                    "DELETE FROM modules m WHERE m.sha256 = ANY($1)
                     AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.sha256 = m.sha256)",
                    &[&dropped],
                )
                .await
                .map_err(self.err())?;
            }
            self.record_change(&tx, name).await?;
            tx.commit().await.map_err(self.err())?;
            Ok(stored)
        })
    }

    fn activate(&self, name: &str, version: u64) -> Result<StoredVersion, StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(self.err())?;
            self.begin_change(&tx).await?;
            let stored = self.history_in(&*tx, name).await?.kept(name, version)?.clone();
            let number = i64::try_from(version).context("version number out of range")?;
            tx.execute("UPDATE procedures SET serving = $2 WHERE name = $1", &[&name, &number])
                .await
                .map_err(self.err())?;
            self.record_change(&tx, name).await?;
            tx.commit().await.map_err(self.err())?;
            Ok(stored)
        })
    }

    fn unpublish(&self, name: &str) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(self.err())?;
            self.begin_change(&tx).await?;
            let changed = tx
                .execute("UPDATE procedures SET serving = NULL WHERE name = $1 AND serving IS NOT NULL", &[&name])
                .await
                .map_err(self.err())?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("no procedure named `{name}` is deployed")));
            }
            self.record_change(&tx, name).await?;
            tx.commit().await.map_err(self.err())
        })
    }

    fn history(&self, name: &str) -> Result<History, StoreError> {
        self.block(async {
            let client = self.client().await?;
            self.history_in(&**client, name).await
        })
    }

    fn serving(&self) -> Result<Vec<(String, StoredVersion)>, StoreError> {
        self.block(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT p.name, {VERSION_COLUMNS}
                         FROM procedures p JOIN versions v ON v.name = p.name AND v.version = p.serving
                         ORDER BY p.name"
                    ),
                    &[],
                )
                .await
                .map_err(self.err())?;
            rows.iter().map(|row| Ok((row.try_get(0).map_err(self.err())?, self.stored_version(row, 1)?))).collect()
        })
    }

    fn module(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        self.block(async {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT bytes FROM modules WHERE sha256 = $1", &[&sha256])
                .await
                .map_err(self.err())?
                .ok_or_else(|| anyhow!("module {sha256} is missing from the shared registry {}", self.target))?;
            let bytes: Vec<u8> = row.try_get(0).map_err(self.err())?;
            let actual = sha256_hex(&bytes);
            if actual != sha256 {
                return Err(anyhow!("module {sha256} in the shared registry is corrupt: its sha256 is {actual}").into());
            }
            Ok(bytes)
        })
    }

    fn kept_modules(&self) -> Result<HashSet<String>, StoreError> {
        self.block(async {
            let client = self.client().await?;
            let rows = client.query("SELECT DISTINCT sha256 FROM versions", &[]).await.map_err(self.err())?;
            self.first_column(&rows)
        })
    }
}

/// A LISTEN connection: [`Listener::next`] returns on each notification.
pub struct Listener {
    /// Kept so the connection stays open.
    _client: tokio_postgres::Client,
    wakeups: mpsc::UnboundedReceiver<()>,
    driver: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Waits for the next notification (several queued count as one);
    /// `false` once the connection is lost.
    pub async fn next(&mut self) -> bool {
        let woken = self.wakeups.recv().await.is_some();
        while self.wakeups.try_recv().is_ok() {}
        woken
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_shown_without_its_password() {
        let target = PgTarget::parse("postgres://app:s3cret@db.example:6543/registry", None).unwrap();
        assert_eq!(target.to_string(), "postgres://app@db.example:6543/registry");
        assert_eq!(format!("{target:?}"), "postgres://app@db.example:6543/registry");
        assert_eq!(target.config.get_password(), Some(&b"s3cret"[..]));
        // A password from elsewhere fills in; the URL's own wins.
        let target = PgTarget::parse("postgres://app@127.0.0.1:5432/r", Some("fromfile".into())).unwrap();
        assert_eq!(target.config.get_password(), Some(&b"fromfile"[..]));
        let target = PgTarget::parse("postgres://app:inurl@127.0.0.1/r", Some("fromfile".into())).unwrap();
        assert_eq!(target.config.get_password(), Some(&b"inurl"[..]));
        assert_eq!(target.to_string(), "postgres://app@127.0.0.1:5432/r");
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        for bad in ["mysql://app:s3cret@h/db", "postgres://app:s3cret@h:notaport/db", "s3cret"] {
            let err = PgTarget::parse(bad, None).unwrap_err().to_string();
            assert!(err.contains("postgres://USER@HOST:PORT/DB"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        let numbers: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>());
    }
}
