//! The codec `#[event]` generates: every variant form round trips; manifests, versions and
//! tags are stored as declared; upcasts run on replay; decode errors name the event.
#![allow(missing_docs)]

use factum::prelude::*;
use factum::{AtomicWrite, CodecError, EventRecord, Journal, MemoryJournal, Repository, Tags};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[event(tags = ["shape"], tags_with = shape_tags)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Named {
        x: i64,
        label: String,
    },
    Tuple(u8, String),
    Newtype(Vec<u32>),
    Unit,
    #[event(rename = "circle.v1", tags = ["round"])]
    Circle {
        radius: f64,
    },
    Empty {},
}

fn shape_tags(shape: &Shape) -> Vec<String> {
    match shape {
        Shape::Named { label, .. } => vec![format!("label:{label}")],
        _ => Vec::new(),
    }
}

#[event(rename = "point-moved", version = 3, upcast(from = 1, with = point_v1_to_v2), upcast(from = 2, with = point_v2_to_v3))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointMoved {
    pub x: i64,
    pub y: i64,
    pub z: i64,
}

/// v1 stored `{"pos": [x, y]}`.
fn point_v1_to_v2(v1: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "x": v1["pos"][0], "y": v1["pos"][1] })
}

/// v2 had no `z`.
fn point_v2_to_v3(mut v2: serde_json::Value) -> serde_json::Value {
    v2["z"] = 0.into();
    v2
}

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair(pub u8, pub u8);

#[event(tags = ["tick"])]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick;

fn round_trip<E: Event + PartialEq + std::fmt::Debug>(event: &E) -> String {
    let payload = event.encode().unwrap();
    let decoded = E::decode(event.manifest(), event.version(), &payload).unwrap();
    assert_eq!(&decoded, event);
    String::from_utf8(payload).unwrap()
}

#[test]
fn every_variant_form_round_trips() {
    let cases = [
        (
            Shape::Named {
                x: -1,
                label: "a".into(),
            },
            r#"{"x":-1,"label":"a"}"#,
        ),
        (Shape::Tuple(7, "b".into()), r#"[7,"b"]"#),
        (Shape::Newtype(vec![1, 2]), "[1,2]"),
        (Shape::Unit, "null"),
        (Shape::Circle { radius: 1.5 }, r#"{"radius":1.5}"#),
        (Shape::Empty {}, "{}"),
    ];
    for (event, json) in cases {
        assert_eq!(round_trip(&event), json, "{event:?}");
    }
    assert_eq!(
        round_trip(&PointMoved { x: 1, y: 2, z: 3 }),
        r#"{"x":1,"y":2,"z":3}"#
    );
    assert_eq!(round_trip(&Pair(1, 2)), "[1,2]");
    assert_eq!(round_trip(&Tick), "null");
}

#[test]
fn unit_variants_accept_an_empty_object() {
    assert_eq!(Shape::decode("Unit", 1, b"{}").unwrap(), Shape::Unit);
}

#[test]
fn manifests_versions_and_tags() {
    let named = Shape::Named {
        x: 0,
        label: "l".into(),
    };
    assert_eq!((named.manifest(), named.version()), ("Named", 1));
    assert_eq!(
        named.tags().iter().collect::<Vec<_>>(),
        ["shape", "label:l"]
    );
    let circle = Shape::Circle { radius: 0.0 };
    assert_eq!(circle.manifest(), "circle.v1");
    assert_eq!(circle.tags().iter().collect::<Vec<_>>(), ["shape", "round"]);
    let point = PointMoved { x: 0, y: 0, z: 0 };
    assert_eq!((point.manifest(), point.version()), ("point-moved", 3));
    assert!(point.tags().is_empty());
    assert_eq!((Pair(0, 0).manifest(), Pair(0, 0).version()), ("Pair", 1));
    assert_eq!(Tick.tags(), Tags::fixed(&["tick"]));
}

#[test]
fn rename_pins_the_manifest() {
    // The variant is `Circle` in code, but stored and read back as "circle.v1".
    let decoded = Shape::decode("circle.v1", 1, br#"{"radius":2.0}"#).unwrap();
    assert_eq!(decoded, Shape::Circle { radius: 2.0 });
    assert!(matches!(
        Shape::decode("Circle", 1, br#"{"radius":2.0}"#),
        Err(CodecError::UnknownManifest(m)) if m == "Circle"
    ));
}

#[test]
fn upcasts_chain_in_order() {
    let v1 = PointMoved::decode("point-moved", 1, br#"{"pos":[4,5]}"#).unwrap();
    assert_eq!(v1, PointMoved { x: 4, y: 5, z: 0 });
    let v2 = PointMoved::decode("point-moved", 2, br#"{"x":4,"y":5}"#).unwrap();
    assert_eq!(v2, PointMoved { x: 4, y: 5, z: 0 });
}

#[test]
fn codec_errors() {
    assert!(
        matches!(Shape::decode("Nope", 1, b"{}"), Err(CodecError::UnknownManifest(m)) if m == "Nope")
    );
    assert!(matches!(
        Shape::decode("Named", 2, b"{}"),
        Err(CodecError::UnknownVersion { manifest, version: 2, current: 1 }) if manifest == "Named"
    ));
    assert!(matches!(
        PointMoved::decode("point-moved", 4, b"{}"),
        Err(CodecError::UnknownVersion {
            version: 4,
            current: 3,
            ..
        })
    ));
    assert!(matches!(
        Shape::decode("Named", 1, b"{not json"),
        Err(CodecError::Payload(_))
    ));
    assert!(matches!(
        Shape::decode("Named", 1, br#"{"x":"one"}"#),
        Err(CodecError::Payload(_))
    ));
    assert!(matches!(
        Shape::decode("Unit", 1, b"nul"),
        Err(CodecError::Payload(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Replay through a Repository: records written directly into the journal.

#[event]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CounterEvent {
    #[event(version = 3, upcast(from = 1, with = added_v1_to_v2), upcast(from = 2, with = added_v2_to_v3))]
    Added { amount: u64, note: String },
}

/// v1 was `{"n": amount}`.
fn added_v1_to_v2(v1: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "amount": v1["n"] })
}

/// v2 had no note.
fn added_v2_to_v3(mut v2: serde_json::Value) -> serde_json::Value {
    v2["note"] = "migrated".into();
    v2
}

#[command(id = 0)]
#[derive(Debug, Clone)]
pub struct Add(pub String, pub u64);

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counter {
    total: u64,
    notes: Vec<String>,
}

#[aggregate]
impl Counter {
    fn handle(&self, cmd: Add) -> Result<CounterEvent, std::convert::Infallible> {
        Ok(CounterEvent::Added {
            amount: cmd.1,
            note: "new".into(),
        })
    }

    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Added { amount, note } = event;
        self.total += amount;
        self.notes.push(note.clone());
    }
}

fn record(pid: &str, sequence_nr: u64, manifest: &str, version: u32, payload: &str) -> EventRecord {
    EventRecord {
        persistence_id: Arc::from(pid),
        sequence_nr,
        manifest: manifest.to_string().into(),
        version,
        payload: payload.as_bytes().to_vec(),
        tags: Tags::NONE,
        command_id: None,
        timestamp: 0,
        writer_id: Arc::from("test"),
        position: 0,
    }
}

#[tokio::test]
async fn upcast_chain_runs_on_replay() {
    assert_eq!(Counter::NAME, "counter");
    let journal = MemoryJournal::new();
    let pid = "counter-c";
    let written = journal
        .write(vec![AtomicWrite {
            persistence_id: Arc::from(pid),
            events: vec![
                record(pid, 1, "Added", 1, r#"{"n":1}"#),
                record(pid, 2, "Added", 2, r#"{"amount":2}"#),
                record(pid, 3, "Added", 3, r#"{"amount":3,"note":"v3"}"#),
            ],
        }])
        .await;
    assert!(written.iter().all(Result::is_ok));

    let counters: Repository<Counter> = Repository::new(journal.clone());
    let (state, version) = counters.state(&"c".to_owned()).await.unwrap();
    assert_eq!(version, 3);
    assert_eq!(state.total, 6);
    assert_eq!(state.notes, ["migrated", "migrated", "v3"]);

    // New events are written at the current version.
    let receipt = counters.send(Add("c".into(), 4)).await.unwrap();
    assert_eq!(receipt.version, 4);
    let records = journal.read_all(0, 10).await.unwrap();
    assert_eq!((&*records[3].manifest, records[3].version), ("Added", 3));
    assert_eq!(records[3].payload, br#"{"amount":4,"note":"new"}"#);
}

#[tokio::test]
async fn undecodable_events_are_decode_errors() {
    for (manifest, version, payload, expected) in [
        ("Removed", 1, "{}", "unknown manifest `Removed`"),
        (
            "Added",
            9,
            "{}",
            "unknown version 9 of `Added` (current: 3)",
        ),
        ("Added", 3, "{oops", "bad payload"),
    ] {
        let journal = MemoryJournal::new();
        let pid = "counter-d";
        let written = journal
            .write(vec![AtomicWrite {
                persistence_id: Arc::from(pid),
                events: vec![
                    record(pid, 1, "Added", 3, r#"{"amount":1,"note":""}"#),
                    record(pid, 2, manifest, version, payload),
                ],
            }])
            .await;
        assert!(written.iter().all(Result::is_ok));
        let counters: Repository<Counter> = Repository::new(journal);
        let Err(factum::Error::Decode(error)) = counters.send(Add("d".into(), 1)).await else {
            panic!("expected a decode error for {manifest} v{version}");
        };
        assert_eq!(
            (
                &*error.persistence_id,
                error.sequence_nr,
                &*error.manifest,
                error.version
            ),
            (pid, 2, manifest, version)
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot decode event 2 of `counter-d` (manifest `{manifest}`, version {version}): {expected}"
            )),
            "{message}"
        );
    }
}
