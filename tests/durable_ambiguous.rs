//! Two events of one id (defined in two function bodies of one module) run in process, but a
//! durable drive or worker, which stores events by id, refuses them, naming both definitions.

mod durable_support;

use drive_flow::durable::DurableError;
use drive_flow::prelude::*;
use drive_flow::BuildError;
use durable_support::TestDb;

fn first() -> i32 {
    #[event]
    async fn step() -> i32 {
        1
    }
    let _ = step;
    1
}

fn second() -> i32 {
    #[event]
    async fn step() -> i32 {
        2
    }
    let _ = step;
    2
}

#[tokio::test]
async fn events_sharing_an_id_are_refused_for_durable_runs_naming_both_sites() {
    assert_eq!(first() + second(), 3);
    let drive = Drive::new().unwrap();
    let db = TestDb::migrated().await;
    let check = |error: DurableError| match error {
        DurableError::Build(BuildError::AmbiguousEvent { id, first, second }) => {
            assert_eq!(id, "durable_ambiguous::step");
            assert_eq!(first, "tests/durable_ambiguous.rs:13:14");
            assert_eq!(second, "tests/durable_ambiguous.rs:22:14");
        }
        other => panic!("expected AmbiguousEvent, got {other:?}"),
    };
    check(drive.durable(&db.store).unwrap_err());
    let worker = drive.worker(&db.store).run_until(async {}).await;
    check(worker.unwrap_err());
}
