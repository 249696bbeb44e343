//! What the durable tests share: a fresh schema per test on the test server, dropped at
//! the end (also when the test panics).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use drive_flow::durable::{PgOptions, PgStore};

/// The test server: `DRIVE_FLOW_TEST_DATABASE_URL`, else a local one.
pub fn url() -> String {
    std::env::var("DRIVE_FLOW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| String::from("postgres://postgres@127.0.0.1:5432/test"))
}

/// A schema of its own for one test: `df_test_<pid>_<n>`.
pub fn fresh_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "df_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store over a fresh schema (not migrated), dropped with the value.
pub struct TestDb {
    pub store: PgStore,
    pub schema: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let schema = fresh_schema();
        let store = PgStore::connect_with(
            &url(),
            PgOptions::default()
                .idle_in_transaction_timeout(std::time::Duration::from_secs(5))
                .schema(schema.clone()),
        )
        .await
        .expect("the test database (set DRIVE_FLOW_TEST_DATABASE_URL)");
        TestDb { store, schema }
    }

    /// A fresh schema, migrated.
    pub async fn migrated() -> TestDb {
        let db = TestDb::new().await;
        db.store.migrate().await.expect("migrate");
        db
    }

    /// Another store (another pool, as another process would have) over the same schema.
    pub async fn another_store(&self) -> PgStore {
        PgStore::connect_with(
            &url(),
            PgOptions::default()
                .idle_in_transaction_timeout(std::time::Duration::from_secs(5))
                .schema(self.schema.clone()),
        )
        .await
        .expect("second store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Drop may run inside a runtime: a thread of its own with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(store) = PgStore::connect(&url()).await {
                    let _ = sqlx_free_drop(&store, &schema).await;
                }
            });
        })
        .join();
    }
}

async fn sqlx_free_drop(store: &PgStore, schema: &str) -> Result<(), Box<dyn std::error::Error>> {
    use drive_flow::durable::sqlx;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Stops a worker started by [`run_worker`] when sent or dropped.
pub type Stop = tokio::sync::oneshot::Sender<()>;
/// The task of a worker started by [`run_worker`], with what its `run_until` returned.
pub type Running = tokio::task::JoinHandle<Result<(), drive_flow::durable::DurableError>>;

/// Run a configured `worker` on a task of its own until the returned sender is sent or
/// dropped.
#[allow(dead_code)] // not every test binary that includes this module starts workers
pub fn run_worker(worker: drive_flow::durable::Worker) -> (Stop, Running) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    (stop, running)
}
