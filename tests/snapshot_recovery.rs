//! Snapshot-first recovery: the newest snapshot and only the later events; full replay
//! when the snapshot is missing, undecodable or of another version; paged replay.

mod common;

use std::sync::Arc;

use common::*;
use factum::{
    AtomicWrite, BoxFuture, Error, EventRecord, Journal, JournalError, MemoryJournal,
    MemorySnapshots, Repository, SnapshotPolicy, SnapshotRecord, SnapshotStore, Tags,
};

fn id(s: &str) -> String {
    s.to_string()
}

async fn twenty_five(repo: &Repository<Counter>) {
    for _ in 0..25 {
        repo.send(add("a", 2)).await.unwrap();
    }
}

#[tokio::test]
async fn a_restart_replays_only_the_events_after_the_newest_snapshot() {
    let journal = MemoryJournal::new();
    let snapshots = MemorySnapshots::new();
    let build = || {
        Repository::<Counter>::builder(journal.clone())
            .snapshots(snapshots.clone(), SnapshotPolicy::Every(10))
            .build()
    };
    twenty_five(&build()).await;
    let snapshot = snapshots
        .load("counter-a", u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((snapshot.sequence_nr, snapshot.version), (20, 1));

    let (state, version) = build().state(&id("a")).await.unwrap();
    assert_eq!((state.value, version), (50, 25));
    assert_eq!(state.applied, 5, "replayed more than the tail");
}

#[tokio::test]
async fn without_a_snapshot_store_the_whole_stream_is_replayed() {
    let journal = MemoryJournal::new();
    twenty_five(&Repository::new(journal.clone())).await;
    let (state, version) = Repository::<Counter>::new(journal)
        .state(&id("a"))
        .await
        .unwrap();
    assert_eq!((state.value, version, state.applied), (50, 25, 25));
}

#[tokio::test]
async fn keep_snapshots_retains_the_newest() {
    let snapshots = MemorySnapshots::new();
    let repo = Repository::<Counter>::builder(MemoryJournal::new())
        .snapshots(snapshots.clone(), SnapshotPolicy::Every(5))
        .keep_snapshots(2)
        .build();
    twenty_five(&repo).await;
    assert_eq!(
        snapshots
            .load("counter-a", 24)
            .await
            .unwrap()
            .unwrap()
            .sequence_nr,
        20
    );
    assert_eq!(
        snapshots.load("counter-a", 19).await.unwrap(),
        None,
        "older ones are pruned"
    );
}

async fn recover_with_poisoned_snapshot(poison: SnapshotRecord) {
    let journal = MemoryJournal::new();
    let snapshots = MemorySnapshots::new();
    let build = || {
        Repository::<Counter>::builder(journal.clone())
            .snapshots(snapshots.clone(), SnapshotPolicy::Every(10))
            .build()
    };
    twenty_five(&build()).await;
    snapshots.save(poison).await.unwrap();
    let (state, version) = build().state(&id("a")).await.unwrap();
    assert_eq!((state.value, version), (50, 25));
    assert_eq!(state.applied, 25, "fell back to a full replay");
}

#[tokio::test]
async fn an_undecodable_snapshot_falls_back_to_a_full_replay() {
    recover_with_poisoned_snapshot(SnapshotRecord {
        persistence_id: Arc::from("counter-a"),
        sequence_nr: 24,
        version: 1,
        payload: b"{\"state\": {\"value\": \"not a number\"}}".to_vec(),
        timestamp: 0,
    })
    .await;
}

#[tokio::test]
async fn a_snapshot_that_is_not_json_falls_back_to_a_full_replay() {
    recover_with_poisoned_snapshot(SnapshotRecord {
        persistence_id: Arc::from("counter-a"),
        sequence_nr: 24,
        version: 1,
        payload: vec![0xff, 0x00, 0x13],
        timestamp: 0,
    })
    .await;
}

#[tokio::test]
async fn a_snapshot_of_another_version_falls_back_to_a_full_replay() {
    recover_with_poisoned_snapshot(SnapshotRecord {
        persistence_id: Arc::from("counter-a"),
        sequence_nr: 24,
        version: 7,
        payload: b"{\"state\": {\"value\": 1000}}".to_vec(),
        timestamp: 0,
    })
    .await;
}

/// A receipt is read back from the journal at `version - count + 1 ..= version`: a
/// snapshot whose dedupe entries point outside its own events is as unusable as one that
/// does not decode (before, `count = u32::MAX` asked for a buffer of that many events).
#[tokio::test]
async fn a_snapshot_with_dedupe_entries_out_of_range_falls_back_to_a_full_replay() {
    for dedupe in [
        r#"[["r", {"version": 24, "count": 4294967295}]]"#,
        r#"[["r", {"version": 30, "count": 1}]]"#,
        r#"[["r", {"version": 2, "count": 3}]]"#,
    ] {
        recover_with_poisoned_snapshot(SnapshotRecord {
            persistence_id: Arc::from("counter-a"),
            sequence_nr: 24,
            version: 1,
            payload: format!(r#"{{"state": {{"value": 48}}, "dedupe": {dedupe}}}"#).into_bytes(),
            timestamp: 0,
        })
        .await;
    }
}

/// A snapshot that saw events the journal does not have (a journal restored from an
/// older backup) gives way to the journal: writing after the snapshot's version would
/// conflict for good.
#[tokio::test]
async fn a_snapshot_ahead_of_the_journal_gives_way_to_the_journal() {
    let snapshots = MemorySnapshots::new();
    let before = Repository::<Counter>::builder(MemoryJournal::new())
        .snapshots(snapshots.clone(), SnapshotPolicy::Every(1))
        .build();
    for _ in 0..3 {
        before.send(add("a", 2)).await.unwrap();
    }
    // The journal as it was after the first event; the snapshots as they are.
    let journal = MemoryJournal::new();
    Repository::<Counter>::new(journal.clone())
        .send(add("a", 2))
        .await
        .unwrap();
    let repo = Repository::<Counter>::builder(journal.clone())
        .snapshots(snapshots, SnapshotPolicy::Every(100))
        .conflict_retries(3)
        .build();
    assert_eq!(repo.send(add("a", 5)).await.unwrap().version, 2);
    let (state, version) = repo.state(&id("a")).await.unwrap();
    assert_eq!((state.value, version), (7, 2));
    assert_eq!(stored_value(&journal, "counter-a").await, 7);
}

/// Events that do not follow the version recovery asked after are an error naming the
/// journal, not events applied twice (nor, over a full page, a loop that never ends).
#[tokio::test]
async fn a_journal_that_ignores_from_is_an_error_not_a_double_replay() {
    let journal = Faulty::new(MemoryJournal::new());
    journal.ignore_read_from();
    let snapshots = MemorySnapshots::new();
    let build = |events: usize| {
        let repo = Repository::<Counter>::builder(journal.clone())
            .snapshots(snapshots.clone(), SnapshotPolicy::Every(10))
            .build();
        async move {
            for _ in 0..events {
                repo.send(add("a", 2)).await.unwrap();
            }
            repo
        }
    };
    let first = build(25).await;
    let error = build(0).await.state(&id("a")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Journal { persistence_id, .. } if persistence_id == "counter-a"),
        "{error:?}"
    );
    assert!(error.to_string().contains("out of order"), "{error}");
    // A repeated command's receipt is read back the same way.
    first.send(add("a", 2).with_id("r")).await.unwrap();
    let error = first.send(add("a", 2).with_id("r")).await.unwrap_err();
    assert!(error.to_string().contains("out of order"), "{error}");
}

/// A snapshot store whose saves and loads always fail.
#[derive(Clone)]
struct BrokenSnapshots;

impl SnapshotStore for BrokenSnapshots {
    fn save(&self, _: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async {
            Err(JournalError::backend(std::io::Error::other(
                "snapshot disk full",
            )))
        })
    }
    fn load<'a>(
        &'a self,
        _: &'a str,
        _: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>> {
        Box::pin(async {
            Err(JournalError::backend(std::io::Error::other(
                "snapshot disk gone",
            )))
        })
    }
    fn retain<'a>(&'a self, _: &'a str, _: usize) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_failing_snapshot_store_never_fails_a_command() {
    let journal = MemoryJournal::new();
    let repo = Repository::<Counter>::builder(journal.clone())
        .snapshots(BrokenSnapshots, SnapshotPolicy::Every(1))
        .build();
    twenty_five(&repo).await;
    let repo = Repository::<Counter>::builder(journal)
        .snapshots(BrokenSnapshots, SnapshotPolicy::Every(1))
        .build();
    let (state, version) = repo.state(&id("a")).await.unwrap();
    assert_eq!((state.value, version, state.applied), (50, 25, 25));
}

/// Every event deleted and no snapshot: the first write finds its sequence number taken,
/// the aggregate is reloaded with the journal's highest sequence number, and the sequence
/// goes on from there (never back).
#[tokio::test]
async fn the_sequence_goes_on_when_every_event_was_deleted() {
    let journal = MemoryJournal::new();
    twenty_five(&Repository::new(journal.clone())).await;
    journal.delete_to("counter-a", 25).await.unwrap();
    let repo = Repository::<Counter>::new(journal.clone());
    assert_eq!(repo.send(add("a", 1)).await.unwrap().version, 26);
    assert_eq!(repo.state(&id("a")).await.unwrap().1, 26);
    // With an expected version there is no retry: the conflict names the real version,
    // which the aggregate then knows.
    let journal = MemoryJournal::new();
    twenty_five(&Repository::new(journal.clone())).await;
    journal.delete_to("counter-a", 25).await.unwrap();
    let repo = Repository::<Counter>::new(journal.clone());
    let error = repo.send(add("a", 1).expect(0)).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Conflict {
                expected: 0,
                actual: 25,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(repo.send(add("a", 1).expect(25)).await.unwrap().version, 26);
}

/// 200,000 events recover page by page: no read asks for, or returns, more than a page.
#[tokio::test]
async fn a_long_stream_recovers_in_bounded_pages() {
    const EVENTS: u64 = 200_000;
    let memory = MemoryJournal::new();
    let writer = Arc::<str>::from("test");
    let pid = Arc::<str>::from("counter-long");
    for chunk in 0..(EVENTS / 10_000) {
        let events = (1..=10_000)
            .map(|i| EventRecord {
                persistence_id: pid.clone(),
                sequence_nr: chunk * 10_000 + i,
                manifest: "added".into(),
                version: 1,
                payload: b"1".to_vec(),
                tags: Tags::NONE,
                command_id: None,
                timestamp: 0,
                writer_id: writer.clone(),
                position: 0,
            })
            .collect();
        let results = memory
            .write(vec![AtomicWrite {
                persistence_id: pid.clone(),
                events,
            }])
            .await;
        assert!(results.iter().all(Result::is_ok));
    }
    let journal = Faulty::new(memory);
    let repo = Repository::<Counter>::new(journal.clone());
    let (state, version) = repo.state(&id("long")).await.unwrap();
    assert_eq!((state.value, version), (EVENTS as i64, EVENTS));
    assert!(
        journal.largest_read() <= 1024,
        "asked for {} events at once",
        journal.largest_read()
    );
    assert!(journal.reads() as u64 >= EVENTS / 1024);
}
