//! The queue mechanics: claim with a lease, renew it, give a task back, retry it later,
//! park it on an inbox key, fail or cancel its run, and sweep run deadlines. Every write a
//! worker makes on a task it claimed is fenced by the attempt it claimed: a worker whose
//! lease was taken over changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row, Transaction};

use super::error::{DurableError, RunId};
use super::store::PgStore;

/// A task a worker claimed: its row, its event, its input, and the attempt that fences
/// every write about it.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    /// The task's row id.
    pub(crate) id: i64,
    pub(crate) run: RunId,
    /// Its id within its run (stable across attempts: the idempotency key).
    pub(crate) task_id: i64,
    pub(crate) event: String,
    pub(crate) input: Value,
    /// The fencing token: how many times it was claimed, this claim included.
    pub(crate) attempt: i32,
    /// How many of its attempts failed and were retried.
    pub(crate) failures: i32,
    pub(crate) started_at: DateTime<Utc>,
    /// The W3C `traceparent` of the span that queued it (the parent of its event run's
    /// span), if one was recorded.
    pub(crate) traceparent: Option<String>,
}

/// A statement about a claimed task, fenced by its claim: `$1` is the task's row, `$2` the
/// attempt claimed; it changes nothing unless the row still holds that claim.
fn fenced<'q>(sql: &'q str, task: &Claimed) -> Query<'q, Postgres, PgArguments> {
    sqlx::query(sql).bind(task.id).bind(task.attempt)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// One history row.
pub(crate) struct HistoryRow<'a> {
    pub(crate) outcome: &'a str,
    pub(crate) value: Option<Value>,
    pub(crate) error: Option<String>,
    pub(crate) worker: &'a str,
}

impl PgStore {
    /// Record the event ids a worker knows as a catalog of the store (idempotent: every
    /// process of one binary shares one); its key, for [`claim`](Self::claim).
    pub(crate) async fn register_catalog(&self, known: &[String]) -> Result<String, DurableError> {
        let (catalog,): (Option<String>,) = sqlx::query_as(&self.sql().register_catalog)
            .bind(known)
            .fetch_one(self.pool())
            .await?;
        // An empty list has no digest: a worker that knows no event claims nothing.
        Ok(catalog.unwrap_or_default())
    }

    /// Claim up to `n` tasks of the events of `catalog` (see
    /// [`register_catalog`](Self::register_catalog)): with `expired`, running ones whose
    /// lease expired first (their worker is gone), then ready ones whose time has come.
    /// Each gets a lease of `lease` by the database's clock.
    pub(crate) async fn claim(
        &self,
        worker: &str,
        catalog: &str,
        n: usize,
        lease: Duration,
        expired: bool,
    ) -> Result<Vec<Claimed>, DurableError> {
        if n == 0 || catalog.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.sql().claim)
            .bind(catalog)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(worker)
            .bind(millis(lease))
            .bind(expired)
            .fetch_all(self.lease_pool())
            .await?;
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .map(|row| -> Result<Claimed, DurableError> {
                Ok(Claimed {
                    id: row.try_get(0)?,
                    run: RunId(row.try_get(1)?),
                    task_id: row.try_get(2)?,
                    event: row.try_get(3)?,
                    input: row.try_get(4)?,
                    attempt: row.try_get(5)?,
                    failures: row.try_get(6)?,
                    started_at: row.try_get(7)?,
                    // A column of schema version 2; a value of the wrong type is no context.
                    traceparent: row.try_get::<Option<String>, _>(8).ok().flatten(),
                })
            })
            .collect::<Result<_, _>>()?;
        claimed.sort_by_key(|task| task.id);
        Ok(claimed)
    }

    /// Extend the lease of a claimed task; false when the task is no longer this claim's
    /// (its lease was taken over, its run ended or was cancelled).
    pub(crate) async fn renew(
        &self,
        task: &Claimed,
        lease: Duration,
    ) -> Result<bool, DurableError> {
        let done = fenced(&self.sql().renew, task)
            .bind(millis(lease))
            .execute(self.lease_pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give a claimed task back unrun (a worker shutting down): ready at once for others.
    pub(crate) async fn release(&self, task: &Claimed) -> Result<bool, DurableError> {
        let done = fenced(&self.sql().release, task)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 1 {
            self.notify_work(self.pool()).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// A failed attempt that will be tried again after `delay`: recorded in the history,
    /// the task ready again then. False (nothing written) when the claim is stale.
    pub(crate) async fn retry(
        &self,
        task: &Claimed,
        delay: Duration,
        error: &str,
        worker: &str,
    ) -> Result<bool, DurableError> {
        let mut tx = self.pool().begin().await?;
        let done = fenced(&self.sql().retry, task)
            .bind(millis(delay))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.record(
            &mut tx,
            task,
            HistoryRow {
                outcome: "retry",
                value: None,
                error: Some(error.to_string()),
                worker,
            },
        )
        .await?;
        if delay.is_zero() {
            self.notify_work(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The task's event waits for a value under `key`: it gives up its lease and its slot
    /// of the run's concurrency until [`send`](super::DurableDrive::send) brings one. If a
    /// value is already there (sent while the body ran), it is ready again at once.
    pub(crate) async fn park(
        &self,
        task: &Claimed,
        key: &str,
        worker: &str,
    ) -> Result<bool, DurableError> {
        let mut tx = self.pool().begin().await?;
        // The run's row first, as `send` takes it: the two cannot miss each other.
        let Some(run) = self.lock_run(&mut tx, task.run).await? else {
            return Ok(false);
        };
        let done = fenced(&self.sql().park, task)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.record(
            &mut tx,
            task,
            HistoryRow {
                outcome: "waiting",
                value: None,
                error: Some(format!("waiting for a value under `{key}`")),
                worker,
            },
        )
        .await?;
        let pending: bool = sqlx::query(&self.sql().pending_inbox)
            .bind(task.run.0)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut in_flight = run.in_flight - 1;
        if pending {
            let state = if run.has_room(in_flight) {
                in_flight += 1;
                "ready"
            } else {
                "queued"
            };
            sqlx::query(&self.sql().wake_waiting)
                .bind(task.run.0)
                .bind(key)
                .bind(state)
                .execute(&mut *tx)
                .await?;
        }
        in_flight += self.promote(&mut tx, task.run, &run, in_flight).await?;
        sqlx::query(&self.sql().run_counters)
            .bind(task.run.0)
            .bind(run.steps)
            .bind(in_flight)
            .bind(run.open_tasks)
            .bind(run.next_task_id)
            .execute(&mut *tx)
            .await?;
        self.notify_work(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ready as many queued tasks of the run as its concurrency allows; how many.
    pub(crate) async fn promote(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        run_id: RunId,
        run: &RunRow,
        in_flight: i32,
    ) -> Result<i32, DurableError> {
        let Some(cap) = run.max_concurrency else {
            return Ok(0);
        };
        let free = cap - in_flight;
        if free <= 0 {
            return Ok(0);
        }
        let done = sqlx::query(&self.sql().promote_queued)
            .bind(run_id.0)
            .bind(i64::from(free))
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() as i32)
    }

    /// Fail the run of a claimed task (fenced): its tasks are deleted, waiters woken.
    pub(crate) async fn fail_run(
        &self,
        task: &Claimed,
        error: &super::stored::StoredError,
        worker: &str,
    ) -> Result<bool, DurableError> {
        let mut tx = self.pool().begin().await?;
        if self.lock_run(&mut tx, task.run).await?.is_none() {
            return Ok(false);
        }
        let done = fenced(&self.sql().task_done, task)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.record(
            &mut tx,
            task,
            HistoryRow {
                outcome: "error",
                value: None,
                error: Some(error.message()),
                worker,
            },
        )
        .await?;
        self.end_run(&mut tx, task.run, "failed", Some(error))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// End a run (locked by the caller): status, error, its remaining tasks deleted, and
    /// the waiters told.
    pub(crate) async fn end_run(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        run: RunId,
        status: &str,
        error: Option<&super::stored::StoredError>,
    ) -> Result<(), DurableError> {
        let error = match error {
            Some(error) => Some(
                serde_json::to_value(error).map_err(|e| DurableError::Encode {
                    what: String::from("a run's error"),
                    detail: e.to_string(),
                })?,
            ),
            None => None,
        };
        sqlx::query(&self.sql().end_run)
            .bind(run.0)
            .bind(status)
            .bind(error)
            .execute(&mut **tx)
            .await?;
        sqlx::query(&self.sql().delete_run_tasks)
            .bind(run.0)
            .execute(&mut **tx)
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.sql().done_channel)
            .bind(run.0.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Fail every run whose deadline passed; how many.
    pub(crate) async fn sweep_deadlines(&self) -> Result<usize, DurableError> {
        let mut tx = self.pool().begin().await?;
        let overdue: Vec<(i64,)> = sqlx::query_as(&self.sql().sweep_deadlines)
            .fetch_all(&mut *tx)
            .await?;
        for (id,) in &overdue {
            self.timeout_run(&mut tx, RunId(*id)).await?;
        }
        tx.commit().await?;
        Ok(overdue.len())
    }

    /// End a run (locked by the caller) whose deadline passed, naming what was in flight.
    pub(crate) async fn timeout_run(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        run: RunId,
    ) -> Result<(), DurableError> {
        let schema = super::store::quote(self.schema());
        let running: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT event FROM {schema}.tasks WHERE run_id = $1 AND state IN ('running', 'waiting') ORDER BY id"
        ))
        .bind(run.0)
        .fetch_all(&mut **tx)
        .await?;
        let timeout_ms: Option<i64> = sqlx::query(&format!(
            "SELECT timeout_ms FROM {schema}.runs WHERE id = $1"
        ))
        .bind(run.0)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let error = super::stored::StoredError::run_timeout(
            Duration::from_millis(timeout_ms.unwrap_or(0).max(0) as u64),
            running.into_iter().map(|(event,)| event).collect(),
        );
        self.end_run(tx, run, "failed", Some(&error)).await
    }

    /// The error of a run over its `max_steps`: the event triggered most often (ties: the
    /// last registered), as in-process runs name it.
    pub(crate) async fn too_many_steps(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        run: RunId,
        limit: i64,
        index: &super::drive::DurableIndex,
    ) -> Result<crate::Error, DurableError> {
        let rows: Vec<(String, i32)> = sqlx::query_as(&format!(
            "SELECT event, triggered FROM {}.event_state WHERE run_id = $1 AND triggered > 0",
            super::store::quote(self.schema())
        ))
        .bind(run.0)
        .fetch_all(&mut **tx)
        .await?;
        let most = rows
            .iter()
            .filter_map(|(event, runs)| index.node(event).map(|node| (*runs, node, event)))
            .max_by_key(|(runs, node, _)| (*runs, *node));
        let (runs, event) =
            most.map_or((0, String::new()), |(runs, _, event)| (runs, event.clone()));
        Ok(crate::Error::TooManySteps {
            limit: u64::try_from(limit).unwrap_or(0),
            event,
            runs: runs as u32,
        })
    }

    /// Whether the run (with a concurrency cap) still has queued tasks.
    pub(crate) async fn has_queued(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        run_id: RunId,
        run: &RunRow,
    ) -> Result<bool, DurableError> {
        if run.max_concurrency.is_none() {
            return Ok(false);
        }
        let (queued,): (bool,) = sqlx::query_as(&format!(
            "SELECT EXISTS (SELECT 1 FROM {}.tasks WHERE run_id = $1 AND state = 'queued')",
            super::store::quote(self.schema())
        ))
        .bind(run_id.0)
        .fetch_one(&mut **tx)
        .await?;
        Ok(queued)
    }

    /// The run's row, locked for this transaction; `None` when it is not running.
    pub(crate) async fn lock_run(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        run: RunId,
    ) -> Result<Option<RunRow>, DurableError> {
        let Some(row) = sqlx::query(&self.sql().lock_run)
            .bind(run.0)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(None);
        };
        let status: String = row.try_get(0)?;
        if status != "running" {
            return Ok(None);
        }
        Ok(Some(RunRow::from_row(&row)?))
    }

    /// Append a history row for a claimed task.
    pub(crate) async fn record(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        task: &Claimed,
        row: HistoryRow<'_>,
    ) -> Result<(), DurableError> {
        sqlx::query(&self.sql().history)
            .bind(task.run.0)
            .bind(task.task_id)
            .bind(&task.event)
            .bind(&task.input)
            .bind(row.outcome)
            .bind(row.value)
            .bind(row.error)
            .bind(row.worker)
            .bind(task.attempt)
            .bind(task.started_at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Wake idle workers (delivered at commit; identical notifications of one transaction
    /// are folded into one).
    pub(crate) async fn notify_work<'e, E>(&self, executor: E) -> Result<(), DurableError>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
    {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.sql().work_channel)
            .execute(executor)
            .await?;
        Ok(())
    }
}

/// A running run's row, as a completion reads it under its lock.
#[derive(Clone, Debug)]
pub(crate) struct RunRow {
    pub(crate) max_steps: i64,
    pub(crate) max_runs_per_event: i32,
    pub(crate) max_concurrency: Option<i32>,
    pub(crate) steps: i64,
    pub(crate) in_flight: i32,
    pub(crate) open_tasks: i32,
    pub(crate) next_task_id: i64,
    pub(crate) overdue: bool,
    /// The W3C `traceparent` of the span that submitted the run, if one was recorded.
    pub(crate) traceparent: Option<String>,
}

impl RunRow {
    /// Columns 1 to 9 of `row`: `max_steps, max_runs_per_event, max_concurrency, steps,
    /// in_flight, open_tasks, next_task_id, overdue, traceparent` (column 0 is the status).
    pub(crate) fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(RunRow {
            max_steps: row.try_get(1)?,
            max_runs_per_event: row.try_get(2)?,
            max_concurrency: row.try_get(3)?,
            steps: row.try_get(4)?,
            in_flight: row.try_get(5)?,
            open_tasks: row.try_get(6)?,
            next_task_id: row.try_get(7)?,
            overdue: row.try_get::<Option<bool>, _>(8)?.unwrap_or(false),
            // A column of schema version 2; a value of the wrong type is no context.
            traceparent: row.try_get::<Option<String>, _>(9).ok().flatten(),
        })
    }

    /// The row as `load_state` reads it with the run's (a JSON object of the same columns);
    /// `None` when a counter is missing or out of range.
    pub(crate) fn from_json(row: &serde_json::Value) -> Option<Self> {
        let int = |name: &str| row.get(name)?.as_i64();
        let small = |name: &str| i32::try_from(int(name)?).ok();
        Some(RunRow {
            max_steps: int("max_steps")?,
            max_runs_per_event: small("max_runs_per_event")?,
            max_concurrency: match row.get("max_concurrency") {
                None | Some(serde_json::Value::Null) => None,
                Some(_) => Some(small("max_concurrency")?),
            },
            steps: int("steps")?,
            in_flight: small("in_flight")?,
            open_tasks: small("open_tasks")?,
            next_task_id: int("next_task_id")?,
            overdue: row.get("overdue")?.as_bool().unwrap_or(false),
            traceparent: row
                .get("traceparent")
                .and_then(|t| t.as_str())
                .map(str::to_string),
        })
    }

    /// Whether one more task may be ready or running with `in_flight` already so.
    pub(crate) fn has_room(&self, in_flight: i32) -> bool {
        self.max_concurrency.map_or(true, |cap| in_flight < cap)
    }
}
