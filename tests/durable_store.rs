//! The store: connecting, the schema and its version.

mod durable_support;

use drive_flow::durable::{sqlx, DurableError, PgOptions, PgStore, SCHEMA_VERSION};
use durable_support::{url, TestDb};

#[tokio::test]
async fn migrate_is_idempotent_and_records_the_version() {
    let db = TestDb::new().await;
    assert!(matches!(
        db.store.check_version().await,
        Err(DurableError::NotMigrated { ref schema }) if *schema == db.schema
    ));
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    // A second process migrating at the same time waits its turn and changes nothing.
    let other = db.another_store().await;
    let (a, b) = tokio::join!(db.store.migrate(), other.migrate());
    a.unwrap();
    b.unwrap();
    db.store.check_version().await.unwrap();
    let (versions, version): (i64, i32) = sqlx::query_as(&format!(
        "SELECT count(*), max(version) FROM \"{}\".schema_version",
        db.schema
    ))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!((versions, version), (1, SCHEMA_VERSION));
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY table_name",
    )
    .bind(&db.schema)
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    let tables: Vec<&str> = tables.iter().map(|(t,)| t.as_str()).collect();
    assert_eq!(
        tables,
        [
            "catalog",
            "event_state",
            "group_state",
            "history",
            "inbox",
            "runs",
            "schema_version",
            "tasks"
        ]
    );
}

/// The columns named `traceparent` in the schema: `(table, type, nullable)`.
async fn traceparent_columns(db: &TestDb) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT table_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = $1 AND column_name = 'traceparent' ORDER BY table_name",
    )
    .bind(&db.schema)
    .fetch_all(db.store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_version_1_schema_is_migrated_to_version_2() {
    let db = TestDb::migrated().await;
    assert_eq!(SCHEMA_VERSION, 2);
    let s = format!("\"{}\"", db.schema);
    // Back to version 1 (what version 2 added, dropped), with a run and its task of then.
    for statement in [
        format!("ALTER TABLE {s}.runs DROP COLUMN traceparent"),
        format!("ALTER TABLE {s}.tasks DROP COLUMN traceparent"),
        format!("DROP TABLE {s}.catalog"),
        format!("UPDATE {s}.schema_version SET version = 1"),
        format!(
            "INSERT INTO {s}.runs (start_event, max_steps, max_runs_per_event) \
             VALUES ('old::start', 10, 10)"
        ),
        format!(
            "INSERT INTO {s}.tasks (run_id, task_id, event, input, state, cause) \
             SELECT id, 1, 'old::start', '{{}}', 'ready', 'start' FROM {s}.runs"
        ),
    ] {
        sqlx::query(&statement)
            .execute(db.store.pool())
            .await
            .unwrap();
    }
    assert!(traceparent_columns(&db).await.is_empty());
    // A version 1 schema is not this build's: refused until migrated.
    match db.store.check_version().await {
        Err(DurableError::SchemaVersion {
            found, expected, ..
        }) => assert_eq!((found, expected), (1, 2)),
        other => panic!("expected SchemaVersion, got {other:?}"),
    }
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    db.store.check_version().await.unwrap();
    let text = |table: &str| (table.to_string(), "text".to_string(), "YES".to_string());
    assert_eq!(
        traceparent_columns(&db).await,
        [text("runs"), text("tasks")]
    );
    // The rows of version 1 are kept, without a trace context.
    let (runs, tasks, with_context): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM {s}.runs), (SELECT count(*) FROM {s}.tasks), \
                (SELECT count(*) FROM {s}.tasks WHERE traceparent IS NOT NULL)"
    ))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!((runs, tasks, with_context), (1, 1, 0));
    // The catalog of events is there, empty until a worker starts.
    let (catalog,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {s}.catalog"))
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_eq!(catalog, 0);
    let (version,): (i32,) = sqlx::query_as(&format!("SELECT version FROM {s}.schema_version"))
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_eq!(version, 2);
}

#[tokio::test]
async fn a_fresh_schema_has_the_trace_context_columns() {
    let db = TestDb::migrated().await;
    let text = |table: &str| (table.to_string(), "text".to_string(), "YES".to_string());
    assert_eq!(
        traceparent_columns(&db).await,
        [text("runs"), text("tasks")]
    );
}

#[tokio::test]
async fn the_claim_has_a_partial_index_on_ready_tasks() {
    let db = TestDb::migrated().await;
    let (definition,): (String,) = sqlx::query_as(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'tasks_claim'",
    )
    .bind(&db.schema)
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert!(
        definition.contains("(ready_at, id) WHERE (state = 'ready'::text)"),
        "{definition}"
    );
}

#[tokio::test]
async fn a_schema_of_another_version_is_refused_by_name() {
    let db = TestDb::migrated().await;
    sqlx::query(&format!(
        "UPDATE \"{}\".schema_version SET version = 99",
        db.schema
    ))
    .execute(db.store.pool())
    .await
    .unwrap();
    for error in [
        db.store.migrate().await.unwrap_err(),
        db.store.check_version().await.unwrap_err(),
    ] {
        match error {
            DurableError::SchemaVersion {
                schema,
                found,
                expected,
            } => {
                assert_eq!(
                    (schema, found, expected),
                    (db.schema.clone(), 99, SCHEMA_VERSION)
                );
            }
            other => panic!("expected SchemaVersion, got {other:?}"),
        }
    }
    // Nothing was changed by the refused migration.
    let (version,): (i32,) = sqlx::query_as(&format!(
        "SELECT version FROM \"{}\".schema_version",
        db.schema
    ))
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    assert_eq!(version, 99);
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    // Port 1 on the loopback: nothing listens there.
    let error = PgStore::connect_with(
        "postgres://someone:s3cret@127.0.0.1:1/app",
        PgOptions::default().acquire_timeout(std::time::Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, DurableError::Unreachable { ref target, .. } if target == "127.0.0.1:1/app"),
        "{error:?}"
    );
    assert!(
        text.starts_with("cannot reach PostgreSQL at 127.0.0.1:1/app: "),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test]
async fn bad_urls_and_schema_names_are_refused_before_connecting() {
    let error = PgStore::connect("mysql://x").await.unwrap_err();
    assert!(
        matches!(error, DurableError::InvalidUrl { .. }),
        "{error:?}"
    );
    for name in ["Bad", "a;b", "x\" cascade", "1a", ""] {
        let error = PgStore::connect_with(&url(), PgOptions::default().schema(name))
            .await
            .unwrap_err();
        assert!(
            matches!(error, DurableError::InvalidSchemaName { name: ref got } if got == name),
            "{error:?}"
        );
    }
}

/// A transaction of the store left open by a dropped future (a worker aborted in the middle
/// of a completion) does not hold its locks for ever: the server ends the session after
/// `idle_in_transaction_timeout`.
#[tokio::test]
async fn a_transaction_left_open_releases_its_locks_after_the_idle_timeout() {
    let db = TestDb::migrated().await;
    let store = PgStore::connect_with(
        &url(),
        PgOptions::default()
            .schema(db.schema.clone())
            .idle_in_transaction_timeout(std::time::Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let table = format!("\"{}\".history", db.schema);
    let mut abandoned = store.pool().begin().await.unwrap();
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *abandoned)
        .await
        .unwrap();
    // Neither committed nor rolled back: the connection sits idle inside the transaction.
    std::mem::forget(abandoned);
    let try_lock = || async {
        let mut other = db.store.pool().begin().await.unwrap();
        sqlx::query(&format!(
            "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE NOWAIT"
        ))
        .execute(&mut *other)
        .await
        .is_ok()
    };
    assert!(
        !try_lock().await,
        "the abandoned transaction holds the lock at first"
    );
    let mut released = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if try_lock().await {
            released = true;
            break;
        }
    }
    assert!(
        released,
        "the server ended the idle transaction within 10 s"
    );
}
