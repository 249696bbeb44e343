//! The [`Inbox`](crate::Inbox) of a durable run's event: values sent with
//! [`DurableDrive::send`](super::DurableDrive::send) are rows; an event whose `recv` finds
//! none gives up its worker and its lease (it parks on the key), and runs again from its
//! start when a value comes.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;
use sqlx::Row;
use tokio::sync::oneshot;

use super::error::RunId;
use super::store::PgStore;
use super::values::value_codec;
use crate::body::inbox::{CallRef, InboxError, InboxHost, Message};
use crate::core::lock::lock;

/// The inbox of one claimed task.
pub(crate) struct TaskInbox {
    pub(crate) store: PgStore,
    pub(crate) run: RunId,
    /// The task's row: the values it took are reserved for it, across its re-runs.
    pub(crate) task_row: i64,
    /// Values this call took already (a second `recv` of one key takes the next one).
    taken: Mutex<Vec<i64>>,
    /// Told the key when a `recv` finds no value: the worker drops the body and parks it.
    park: Mutex<Option<oneshot::Sender<String>>>,
}

impl TaskInbox {
    pub(crate) fn new(
        store: PgStore,
        run: RunId,
        task_row: i64,
    ) -> (Arc<TaskInbox>, oneshot::Receiver<String>) {
        let (sender, receiver) = oneshot::channel();
        let inbox = TaskInbox {
            store,
            run,
            task_row,
            taken: Mutex::new(Vec::new()),
            park: Mutex::new(Some(sender)),
        };
        (Arc::new(inbox), receiver)
    }

    /// The message of a stored value, decoded by the name of its type; a value that does
    /// not decode gives a message of no type, which `recv` reports as the wrong type.
    fn message(stored: &Value) -> Message {
        let type_name = stored.get("type").and_then(Value::as_str).unwrap_or("");
        let value = stored.get("value").cloned().unwrap_or(Value::Null);
        match value_codec(type_name) {
            Some(codec) => match (codec.decode_boxed)(value) {
                Ok(boxed) => Message::from_box(boxed, codec.type_name),
                Err(_) => Message::from_box(Box::new(()), "(a value that no longer deserializes)"),
            },
            None => Message::from_box(Box::new(()), "(a type this worker does not know)"),
        }
    }
}

impl InboxHost for TaskInbox {
    fn recv(
        self: Arc<Self>,
        _call: CallRef,
        key: String,
    ) -> BoxFuture<'static, Result<Message, InboxError>> {
        async move {
            let mut delay = std::time::Duration::from_millis(100);
            loop {
                let taken = lock(&self.taken).clone();
                let found = sqlx::query(&self.store.sql().take_inbox)
                    .bind(self.run.0)
                    .bind(&key)
                    .bind(self.task_row)
                    .bind(&taken)
                    .fetch_optional(self.store.pool())
                    .await;
                match found {
                    Ok(Some(row)) => {
                        match (row.try_get::<i64, _>(0), row.try_get::<Value, _>(1)) {
                            (Ok(seq), Ok(value)) => {
                                lock(&self.taken).push(seq);
                                return Ok(TaskInbox::message(&value));
                            }
                            (Err(error), _) | (_, Err(error)) => {
                                // A row of another shape (the schema changed under the
                                // worker): said, and tried again, as a database error.
                                tracing::warn!(%error, "an inbox row cannot be read; trying again");
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(std::time::Duration::from_secs(5));
                            }
                        }
                    }
                    Ok(None) => {
                        if let Some(park) = lock(&self.park).take() {
                            let _ = park.send(key);
                        }
                        return std::future::pending().await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reading the inbox failed; trying again");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
        }
        .boxed()
    }
}
