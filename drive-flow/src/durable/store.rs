//! [`PgStore`]: the connection pool, the schema it works in, and its migrations.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};

use super::error::DurableError;
use super::sql::Sql;

/// The schema version this build of drive-flow writes and reads: 2 (version 2 added the
/// `traceparent` of runs and tasks and the catalog of the events workers know;
/// [`PgStore::migrate`] brings a version 1 schema to it).
pub const SCHEMA_VERSION: i32 = 2;

/// The default schema: `drive_flow`.
pub const DEFAULT_SCHEMA: &str = "drive_flow";

/// Options of a [`PgStore`]: the schema its tables live in, and the size of its pool.
///
/// ```
/// use drive_flow::durable::PgOptions;
///
/// let options = PgOptions::default().schema("tenant_a").max_connections(20);
/// assert_eq!(options.schema_name(), "tenant_a");
/// ```
#[derive(Clone, Debug)]
pub struct PgOptions {
    schema: String,
    max_connections: u32,
    acquire_timeout: Duration,
    idle_in_transaction_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: DEFAULT_SCHEMA.to_string(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl PgOptions {
    /// The schema the tables live in (default `drive_flow`): 1 to 63 lowercase ASCII
    /// letters, digits and `_`, not starting with a digit. Checked by
    /// [`PgStore::connect_with`].
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// The schema name set.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// How many connections the pool keeps at most (default 10). A worker uses one per
    /// completion at a time, plus one for `LISTEN`; claims, lease renewals and the reads
    /// of optimistic completions use a small pool of their own, of a quarter as many
    /// connections (at least 2).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long to wait for a free connection or a new one (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long a connection of the store may sit idle inside an open transaction before
    /// the server ends its session (PostgreSQL's `idle_in_transaction_session_timeout`;
    /// default 60 s, at least 1 s). The store's transactions are short (a claim, a
    /// completion; no transaction is open while a body runs), so this only matters when a
    /// worker's future is dropped in the middle of a completion (its task aborted, its
    /// runtime shut down): the server then rolls the transaction back and releases its row
    /// locks, instead of holding them (and blocking every other completion of that run)
    /// until the connection closes.
    pub fn idle_in_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_timeout = timeout.max(Duration::from_secs(1));
        self
    }
}

/// A PostgreSQL database holding durable runs: a connection pool and the schema its tables
/// live in. Cheap to clone (clones share the pool).
///
/// ```no_run
/// # async fn demo() -> Result<(), drive_flow::durable::DurableError> {
/// use drive_flow::durable::PgStore;
///
/// let store = PgStore::connect("postgres://localhost/app").await?;
/// store.migrate().await?;                    // idempotent: run it at every start
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    pub(crate) pool: PgPool,
    /// Claims and lease renewals: committed without waiting for the WAL flush (see
    /// [`PgStore::lease_pool`]).
    pub(crate) lease_pool: PgPool,
    pub(crate) schema: String,
    pub(crate) sql: Sql,
    pub(crate) target: String,
    /// The listener of run ends shared by this process's waits.
    pub(crate) ended: super::ended::EndedRuns,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.inner.target)
            .field("schema", &self.inner.schema)
            .finish()
    }
}

/// Whether `name` can be a schema name: a lowercase SQL identifier, quoted anyway.
pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PgStore {
    /// Connect to `url` (`postgres://user:password@host:port/database`), schema
    /// `drive_flow`. Fails at once with [`DurableError::Unreachable`] when the server
    /// cannot be reached.
    ///
    /// # Errors
    /// [`DurableError::InvalidUrl`], [`DurableError::Unreachable`].
    pub async fn connect(url: &str) -> Result<Self, DurableError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connect with [`PgOptions`].
    ///
    /// # Errors
    /// [`DurableError::InvalidSchemaName`], [`DurableError::InvalidUrl`],
    /// [`DurableError::Unreachable`].
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self, DurableError> {
        if !valid_identifier(&options.schema) {
            return Err(DurableError::InvalidSchemaName {
                name: options.schema,
            });
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(DurableError::InvalidUrl {
                detail: String::from("it must start with `postgres://` or `postgresql://`"),
            });
        }
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| DurableError::InvalidUrl {
                detail: error.to_string(),
            })?
            .options([(
                "idle_in_transaction_session_timeout",
                options.idle_in_transaction_timeout.as_millis().to_string(),
            )]);
        let target = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or("")
        );
        // One connection first: a server that refuses is reported at once, where the pool
        // would retry until its acquire timeout.
        let unreachable = |source| DurableError::Unreachable {
            target: target.clone(),
            source,
        };
        let first = tokio::time::timeout(
            options.acquire_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(unreachable)?;
        let _ = first.close().await;
        let lease_pool = PgPoolOptions::new()
            .max_connections((options.max_connections / 4).max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect.clone().options([
                ("synchronous_commit", "off"),
                ("plan_cache_mode", "force_generic_plan"),
            ]));
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        let sql = Sql::new(&options.schema);
        Ok(PgStore {
            inner: Arc::new(StoreInner {
                pool,
                lease_pool,
                ended: Default::default(),
                schema: options.schema,
                sql,
                target,
            }),
        })
    }

    /// The schema the store works in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool (for your own queries, e.g. in tests or dashboards).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The pool of claims and lease renewals, whose connections commit without waiting for
    /// the write-ahead log to reach the disk (`synchronous_commit = off`). A claim is then
    /// one round trip and no flush (half of the flushes per event: the completion still
    /// commits durably). A claim or renewal lost in a server crash costs nothing but time:
    /// its task is claimable again (bodies run at least once), and a completion commits
    /// only while its task row still holds that claim, so exactly one completion of a
    /// task is applied whatever was lost. A completion's flush also flushes every claim
    /// committed before it. The optimistic completion reads the state it dispatches over
    /// here too (a read commits nothing).
    ///
    /// Its connections plan each statement once (`plan_cache_mode = force_generic_plan`):
    /// its statements find rows by key, and a custom plan per execution (what the server
    /// chooses for the arrays they bind) cost about 0.2 ms of planning per completion.
    /// The public [`pool`](Self::pool) is left as the server configures it.
    pub(crate) fn lease_pool(&self) -> &PgPool {
        &self.inner.lease_pool
    }

    pub(crate) fn sql(&self) -> &Sql {
        &self.inner.sql
    }

    /// Create the schema and its tables, or bring them to this build's version. Idempotent
    /// and safe to call from several processes at once (they take turns on an advisory
    /// lock).
    ///
    /// # Errors
    /// [`DurableError::SchemaVersion`] when the schema was made by a newer drive-flow;
    /// [`DurableError::Database`] on a database error (nothing is changed then).
    pub async fn migrate(&self) -> Result<(), DurableError> {
        let schema = &self.inner.schema;
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("drive_flow.migrate.{schema}"))
            .execute(&mut *tx)
            .await?;
        let quoted = quote(schema);
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {quoted}.schema_version (\
               singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), \
               version integer NOT NULL, \
               migrated_at timestamptz NOT NULL DEFAULT now())"
        ))
        .execute(&mut *tx)
        .await?;
        let found: Option<i32> =
            sqlx::query(&format!("SELECT version FROM {quoted}.schema_version"))
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        let found = found.unwrap_or(0);
        if !(0..=SCHEMA_VERSION).contains(&found) {
            return Err(DurableError::SchemaVersion {
                schema: schema.clone(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        for (version, steps) in MIGRATIONS.iter().enumerate() {
            let version = version as i32 + 1;
            if version <= found {
                continue;
            }
            for step in *steps {
                sqlx::query(&step.replace("{s}", &quoted))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // The hot queue is vacuumed after every few hundred changed rows whatever its size
        // (as Oban does for its jobs table), not after a fifth of it: the claim's index
        // keeps an entry for every task claimed or deleted until vacuum reaches it, and a
        // claim walks them. Set on every migration (idempotent, and no change of shape).
        sqlx::query(&format!(
            "ALTER TABLE {quoted}.tasks SET (autovacuum_vacuum_scale_factor = 0, \
             autovacuum_vacuum_threshold = {TASKS_VACUUM_THRESHOLD}, \
             autovacuum_vacuum_insert_scale_factor = 0, \
             autovacuum_vacuum_insert_threshold = {TASKS_VACUUM_THRESHOLD})"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {quoted}.schema_version (version) VALUES ($1) \
             ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, migrated_at = now()"
        ))
        .bind(SCHEMA_VERSION)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Check that the schema is at this build's version (workers and clients call it
    /// before their first write).
    ///
    /// # Errors
    /// [`DurableError::NotMigrated`], [`DurableError::SchemaVersion`].
    pub async fn check_version(&self) -> Result<(), DurableError> {
        let schema = &self.inner.schema;
        let exists: bool = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = 'schema_version')",
        )
        .bind(schema)
        .fetch_one(&self.inner.pool)
        .await?
        .try_get(0)?;
        if !exists {
            return Err(DurableError::NotMigrated {
                schema: schema.clone(),
            });
        }
        let found: Option<i32> = sqlx::query(&format!(
            "SELECT version FROM {}.schema_version",
            quote(schema)
        ))
        .fetch_optional(&self.inner.pool)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        match found {
            None => Err(DurableError::NotMigrated {
                schema: schema.clone(),
            }),
            Some(SCHEMA_VERSION) => Ok(()),
            Some(found) => Err(DurableError::SchemaVersion {
                schema: schema.clone(),
                found,
                expected: SCHEMA_VERSION,
            }),
        }
    }
}

/// A checked identifier, quoted.
/// How many changed rows of the task queue make autovacuum visit it (see `migrate`).
const TASKS_VACUUM_THRESHOLD: u32 = 500;

pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The migrations, one list of statements per version; `{s}` is the quoted schema.
const MIGRATIONS: &[&[&str]] = &[V1, V2];

/// Version 1: the tables.
const V1: &[&str] = &[
    // One row per run. `in_flight` counts its ready and running tasks (for
    // `max_concurrency`), `open_tasks` every task row it has (the run ends at 0).
    "CREATE TABLE {s}.runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        status text NOT NULL DEFAULT 'running',
        start_event text NOT NULL,
        input jsonb,
        deadline timestamptz,
        timeout_ms bigint,
        max_steps bigint NOT NULL,
        max_runs_per_event integer NOT NULL,
        max_concurrency integer,
        steps bigint NOT NULL DEFAULT 0,
        in_flight integer NOT NULL DEFAULT 0,
        open_tasks integer NOT NULL DEFAULT 0,
        next_task_id bigint NOT NULL DEFAULT 0,
        error jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz)",
    "CREATE INDEX runs_deadline ON {s}.runs (deadline)
        WHERE status = 'running' AND deadline IS NOT NULL",
    // The hot queue: queued (over the run's concurrency), ready, running and waiting
    // tasks only; a task row is deleted when its event completes.
    "CREATE TABLE {s}.tasks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id bigint NOT NULL,
        task_id bigint NOT NULL,
        event text NOT NULL,
        input jsonb NOT NULL,
        state text NOT NULL,
        attempt integer NOT NULL DEFAULT 0,
        failures integer NOT NULL DEFAULT 0,
        ready_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz,
        worker text,
        waiting_key text,
        cause text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (run_id, task_id))",
    "CREATE INDEX tasks_claim ON {s}.tasks (ready_at, id) WHERE state = 'ready'",
    "CREATE INDEX tasks_lease ON {s}.tasks (lease_until) WHERE state = 'running'",
    "CREATE INDEX tasks_run_state ON {s}.tasks (run_id, state, id)",
    // Per run and event: its latest outcome and counters (the dispatch core's event state).
    "CREATE TABLE {s}.event_state (
        run_id bigint NOT NULL,
        event text NOT NULL,
        kind text,
        value jsonb,
        completions integer NOT NULL DEFAULT 0,
        triggered integer NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, event))",
    // Per run, listener and group: how many members have run, which slots were delivered.
    "CREATE TABLE {s}.group_state (
        run_id bigint NOT NULL,
        listener text NOT NULL,
        group_index integer NOT NULL,
        ready integer NOT NULL DEFAULT 0,
        delivered boolean[] NOT NULL,
        fired boolean NOT NULL DEFAULT false,
        PRIMARY KEY (run_id, listener, group_index))",
    // Values sent to runs; `consumed_by` is the task row that took it.
    "CREATE TABLE {s}.inbox (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id bigint NOT NULL,
        key text NOT NULL,
        value jsonb NOT NULL,
        consumed_by bigint,
        sent_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX inbox_run_key ON {s}.inbox (run_id, key, seq)",
    // Every event run (and failed attempt), cold.
    "CREATE TABLE {s}.history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id bigint NOT NULL,
        task_id bigint NOT NULL,
        event text NOT NULL,
        input jsonb NOT NULL,
        outcome text NOT NULL,
        value jsonb,
        error text,
        worker text,
        attempt integer NOT NULL,
        started_at timestamptz,
        ended_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX history_run ON {s}.history (run_id, id)",
];

/// Version 2: the catalogs of events (below), and the W3C trace context (`traceparent`) of the span that submitted a run, and
/// of the span that queued each task (the submit, or the event run that triggered it).
/// NULL when none was recorded (no OpenTelemetry layer, the feature `opentelemetry` off,
/// or rows of version 1).
const V2: &[&str] = &[
    "ALTER TABLE {s}.runs ADD COLUMN traceparent text",
    "ALTER TABLE {s}.tasks ADD COLUMN traceparent text",
    // The events each binary's workers know, so that a claim names its worker's catalog by
    // one key instead of binding every event id it knows.
    "CREATE TABLE {s}.catalog (
        catalog text NOT NULL,
        event text NOT NULL,
        PRIMARY KEY (catalog, event))",
];

#[cfg(test)]
mod tests {
    use super::valid_identifier;

    #[test]
    fn schema_names_are_plain_lowercase_identifiers() {
        for good in ["drive_flow", "_x", "df_test_12_3", &"a".repeat(63)] {
            assert!(valid_identifier(good), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Drive",
            "a-b",
            "a b",
            "x\"; drop table y; --",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }
}
