//! An event whose output cannot cross processes is reported when the durable drive or
//! worker is built, naming the event, its type and where it is defined.

mod durable_support;

use drive_flow::durable::DurableError;
use drive_flow::prelude::*;
use durable_support::TestDb;

/// Not `Serialize`.
pub struct Opaque(#[allow(dead_code)] std::rc::Rc<()>);

// An in-process event of a non-serde type still compiles with the feature on.
#[event]
async fn opaque() -> Flow<Wrapper> {
    Flow::from(Wrapper(std::sync::Arc::new(5)))
}

/// Not `Serialize` either, but `Send + Sync`.
pub struct Wrapper(pub std::sync::Arc<u8>);

#[tokio::test]
async fn a_durable_drive_over_an_event_without_codec_is_refused_by_name() {
    // In-process runs keep accepting any type.
    let results = Drive::new().unwrap().invoke(opaque).await.unwrap();
    assert_eq!(results.get(opaque).map(|w| *w.0), Some(5));

    let db = TestDb::migrated().await;
    let drive = Drive::new().unwrap();
    let check = |error: DurableError| match error {
        DurableError::NotSerializable {
            event,
            type_name,
            location,
        } => {
            assert_eq!(event, "durable_codec::opaque");
            assert_eq!(type_name, "durable_codec::Wrapper");
            assert!(
                location.starts_with(" (defined at tests/durable_codec.rs:"),
                "{location}"
            );
            let text = DurableError::NotSerializable {
                event,
                type_name,
                location,
            }
            .to_string();
            assert!(
                text.contains("event `durable_codec::opaque` produces a `durable_codec::Wrapper`"),
                "{text}"
            );
        }
        other => panic!("expected NotSerializable, got {other:?}"),
    };
    check(drive.durable(&db.store).unwrap_err());
    check(
        drive
            .worker(&db.store)
            .run_until(async {})
            .await
            .unwrap_err(),
    );
    let _ = Opaque(std::rc::Rc::new(()));
}

#[tokio::test]
async fn builder_events_need_serde_to_be_durable() {
    let db = TestDb::migrated().await;
    let mut builder = drive_flow::DriveBuilder::new();
    let plain = builder.event("plain", || async { Flow::from(1u8) });
    let drive = builder.build().unwrap();
    match drive.durable(&db.store).unwrap_err() {
        DurableError::NotSerializable { event, .. } => assert_eq!(event, "plain"),
        other => panic!("expected NotSerializable, got {other:?}"),
    }
    let mut builder = drive_flow::DriveBuilder::new();
    let plain2 = builder.event("plain", || async { Flow::from(1u8) });
    builder.serde(plain2);
    let drive = builder.build().unwrap();
    drive.durable(&db.store).unwrap();
    let _ = plain;
}
