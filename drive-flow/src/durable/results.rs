//! A durable run's [`Results`], read back from its event states.

use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use super::drive::DurableDrive;
use super::error::{DurableError, RunId};
use crate::core::dispatch::EventRun;
use crate::core::input::Latest;
use crate::Results;

/// The latest outcome of `event` as stored (`kind`, `value`), decoded with its codec.
pub(crate) fn decode_latest(
    drive: &DurableDrive,
    run: RunId,
    node: crate::core::graph::NodeId,
    kind: Option<&str>,
    value: Option<Value>,
) -> Result<Option<Latest>, DurableError> {
    let codec = &drive.index.codecs[node as usize];
    let decode = |value: Option<Value>| {
        codec
            .decode(value.unwrap_or(Value::Null))
            .map_err(|detail| DurableError::Decode {
                run,
                event: drive.index.name(node).to_string(),
                detail,
            })
    };
    Ok(match kind {
        None => None,
        Some("value") => Some(Latest::value_of(decode(value)?)),
        Some("goto") => Some(Latest::goto_of(decode(value)?)),
        Some(_) => Some(Latest::ABORT),
    })
}

/// The results of a run that ended.
pub(crate) async fn load(
    drive: &DurableDrive,
    run: RunId,
    elapsed: Duration,
) -> Result<Results, DurableError> {
    let rows = sqlx::query(&drive.store.sql().all_events)
        .bind(run.0)
        .fetch_all(drive.store.pool())
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let name: &str = row.try_get(0)?;
        let Some(node) = drive.index.node(name) else {
            tracing::warn!(run = %run, event = name, "the run has an event this process does not know; left out of its results");
            continue;
        };
        let latest = decode_latest(drive, run, node, row.try_get(1)?, row.try_get(2)?)?;
        events.push(EventRun {
            node,
            completions: row.try_get::<i32, _>(3)?.max(0) as u32,
            triggered: row.try_get::<i32, _>(4)?.max(0) as u32,
            attempts: 0,
            nanos: 0,
            latest,
        });
    }
    Ok(Results::from_parts(
        drive.index.graph.clone(),
        events,
        elapsed,
    ))
}
