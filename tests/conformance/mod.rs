//! The store conformance suite: one async function per check, generic over a [`Factory`]
//! of stores, modelled on Akka's persistence TCK (`JournalSpec`, `SnapshotStoreSpec`) and
//! Axon's storage-engine tests. Every store must pass all of it; `conformance_suite!`
//! turns the whole list into `#[tokio::test]`s for one factory.
#![allow(dead_code)]

use std::sync::Arc;

use factum::{
    AtomicWrite, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore, Tags,
};

/// Makes stores for the suite.
pub trait Factory: Sync {
    /// The journal.
    type J: Journal + Clone;
    /// The snapshot store.
    type S: SnapshotStore + Clone;
    /// A fresh, empty journal of its own.
    async fn journal(&self) -> Self::J;
    /// Another handle on the same data: as after a restart, or from another process.
    async fn reopen(&self, journal: &Self::J) -> Self::J;
    /// A fresh, empty snapshot store of its own.
    async fn snapshots(&self) -> Self::S;
    /// Another handle on the same snapshots.
    async fn reopen_snapshots(&self, snapshots: &Self::S) -> Self::S;
    /// Called after a check passed: removes what the factory made.
    async fn cleanup(&self) {}
}

/// Generates one `#[tokio::test]` per check, each getting its factory from `$factory`
/// (an `async` expression giving `Option<impl Factory>`; `None` skips).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@tests $factory;
            replay_all, read_lower_bound, read_upper_bound, read_max_count,
            read_lower_equals_upper, read_max_one, read_max_zero, read_lower_above_upper,
            unknown_persistence_id, highest_sequence_nr, positions_increase,
            delete_to_hides_events_keeps_highest, delete_to_while_appending,
            positions_not_given_again_after_delete,
            deleted_numbers_stay_taken_under_stale_writers,
            empty_part_writes_nothing,
            batch_atomicity_per_aggregate, batch_conflict_among_new_and_existing_streams,
            duplicate_sequence_nr_is_conflict,
            gap_is_conflict, two_handles_one_winner_per_sequence_nr,
            two_handles_take_turns_on_one_stream,
            crossing_batches_one_winner_per_part,
            tags_and_command_ids_round_trip, read_by_tag_in_global_order, read_all_pages,
            persistence_ids_of_any_utf8, snapshot_latest_wins,
            snapshot_bounded_by_sequence_nr, snapshot_retention_keeps_last_n,
            snapshot_same_sequence_nr_overwrites, snapshot_of_1_mb_round_trips,
            schema_survives_reopen,
        );
    };
    (@tests $factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(factory) = $factory else { return };
                conformance::$check(&factory).await;
                conformance::Factory::cleanup(&factory).await;
            }
        )*
    };
}

const ALL: u64 = u64::MAX;

/// An event of `pid` at `seq`, with a payload naming both.
pub fn event(pid: &str, seq: u64) -> EventRecord {
    EventRecord {
        persistence_id: Arc::from(pid),
        sequence_nr: seq,
        manifest: "thing-happened".into(),
        version: 1,
        payload: serde_json::json!({ "pid": pid, "n": seq })
            .to_string()
            .into_bytes(),
        tags: Tags::NONE,
        command_id: None,
        timestamp: 1_700_000_000_000 + seq,
        writer_id: Arc::from("writer-1"),
        position: 0,
    }
}

/// A part of `pid` with the sequence numbers `seqs`.
pub fn part(pid: &str, seqs: impl IntoIterator<Item = u64>) -> AtomicWrite {
    AtomicWrite {
        persistence_id: Arc::from(pid),
        events: seqs.into_iter().map(|s| event(pid, s)).collect(),
    }
}

/// Writes one part alone and returns its result.
pub async fn write_one(journal: &impl Journal, write: AtomicWrite) -> Result<(), JournalError> {
    let mut results = journal.write(vec![write]).await;
    assert_eq!(results.len(), 1, "one result per part");
    results.pop().unwrap()
}

async fn append(journal: &impl Journal, pid: &str, seqs: impl IntoIterator<Item = u64>) {
    write_one(journal, part(pid, seqs))
        .await
        .unwrap_or_else(|e| panic!("append to {pid}: {e}"));
}

async fn read(journal: &impl Journal, pid: &str, from: u64, to: u64, max: usize) -> Vec<u64> {
    journal
        .read(pid, from, to, max)
        .await
        .expect("read")
        .iter()
        .map(|e| e.sequence_nr)
        .collect()
}

/// The record without its journal-assigned position.
fn unpositioned(record: &EventRecord) -> EventRecord {
    EventRecord {
        position: 0,
        ..record.clone()
    }
}

fn assert_conflict(result: Result<(), JournalError>, pid: &str, sequence_nr: u64) {
    match result {
        Err(JournalError::Conflict {
            persistence_id,
            sequence_nr: taken,
        }) => {
            assert_eq!(persistence_id, pid);
            assert_eq!(taken, sequence_nr, "the first taken sequence number");
        }
        other => panic!("expected a conflict on {pid} #{sequence_nr}, got {other:?}"),
    }
}

pub async fn replay_all(f: &impl Factory) {
    let j = f.journal().await;
    let written = part("p-1", 1..=5);
    write_one(&j, written.clone()).await.unwrap();
    let events = j.read("p-1", 1, ALL, usize::MAX).await.unwrap();
    let got: Vec<_> = events.iter().map(unpositioned).collect();
    assert_eq!(got, written.events);
    assert!(events.iter().all(|e| e.position > 0), "positions assigned");
    assert_eq!(
        read(&j, "p-1", 0, ALL, 100).await,
        [1, 2, 3, 4, 5],
        "from 0 reads all"
    );
}

async fn five<F: Factory>(f: &F) -> F::J {
    let j = f.journal().await;
    append(&j, "p-1", 1..=3).await;
    append(&j, "p-1", 4..=5).await;
    append(&j, "p-2", 1..=2).await;
    j
}

pub async fn read_lower_bound(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 3, ALL, 100).await, [3, 4, 5]);
    assert_eq!(read(&j, "p-1", 6, ALL, 100).await, [] as [u64; 0]);
}

pub async fn read_upper_bound(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 1, 3, 100).await, [1, 2, 3]);
    assert_eq!(read(&j, "p-1", 1, 0, 100).await, [] as [u64; 0]);
}

pub async fn read_max_count(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 1, ALL, 3).await, [1, 2, 3]);
    assert_eq!(read(&j, "p-1", 2, 4, 2).await, [2, 3]);
    assert_eq!(read(&j, "p-1", 1, ALL, usize::MAX).await, [1, 2, 3, 4, 5]);
}

pub async fn read_lower_equals_upper(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 3, 3, 100).await, [3]);
}

pub async fn read_max_one(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 1, ALL, 1).await, [1]);
}

pub async fn read_max_zero(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 1, ALL, 0).await, [] as [u64; 0]);
}

pub async fn read_lower_above_upper(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(read(&j, "p-1", 4, 3, 100).await, [] as [u64; 0]);
}

pub async fn unknown_persistence_id(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(j.highest_sequence_nr("nobody").await.unwrap(), 0);
    assert_eq!(read(&j, "nobody", 1, ALL, 100).await, [] as [u64; 0]);
    j.delete_to("nobody", 10).await.unwrap();
    assert_eq!(j.highest_sequence_nr("nobody").await.unwrap(), 0);
    let s = f.snapshots().await;
    assert_eq!(s.load("nobody", ALL).await.unwrap(), None);
    s.retain("nobody", 1).await.unwrap();
}

pub async fn highest_sequence_nr(f: &impl Factory) {
    let j = five(f).await;
    assert_eq!(j.highest_sequence_nr("p-1").await.unwrap(), 5);
    assert_eq!(j.highest_sequence_nr("p-2").await.unwrap(), 2);
    append(&j, "p-2", 3..=3).await;
    assert_eq!(j.highest_sequence_nr("p-2").await.unwrap(), 3);
}

pub async fn positions_increase(f: &impl Factory) {
    let j = five(f).await;
    let all = j.read_all(0, usize::MAX).await.unwrap();
    let order: Vec<_> = all
        .iter()
        .map(|e| (e.persistence_id.to_string(), e.sequence_nr))
        .collect();
    let expected: Vec<_> = [("p-1", 1), ("p-1", 2), ("p-1", 3), ("p-1", 4), ("p-1", 5)]
        .into_iter()
        .chain([("p-2", 1), ("p-2", 2)])
        .map(|(p, s)| (p.to_owned(), s))
        .collect();
    assert_eq!(order, expected, "read_all is in write order");
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let stream = j.read("p-1", 1, ALL, 100).await.unwrap();
    assert_eq!(
        stream,
        all[..5].to_vec(),
        "read and read_all agree, positions included"
    );
}

pub async fn delete_to_hides_events_keeps_highest(f: &impl Factory) {
    let j = five(f).await;
    j.delete_to("p-1", 3).await.unwrap();
    assert_eq!(read(&j, "p-1", 1, ALL, 100).await, [4, 5]);
    assert_eq!(
        read(&j, "p-1", 2, 3, 100).await,
        [] as [u64; 0],
        "a deleted range reads as nothing"
    );
    assert_eq!(read(&j, "p-1", 1, 4, 100).await, [4]);
    assert_eq!(j.highest_sequence_nr("p-1").await.unwrap(), 5);
    assert_eq!(
        read(&j, "p-2", 1, ALL, 100).await,
        [1, 2],
        "other streams untouched"
    );

    j.delete_to("p-1", 100).await.unwrap();
    assert_eq!(read(&j, "p-1", 1, ALL, 100).await, [] as [u64; 0]);
    assert_eq!(
        j.highest_sequence_nr("p-1").await.unwrap(),
        5,
        "never reset"
    );
    let all = j.read_all(0, 100).await.unwrap();
    assert!(
        all.iter().all(|e| &*e.persistence_id == "p-2"),
        "hidden from read_all"
    );

    let again = f.reopen(&j).await;
    assert_eq!(
        again.highest_sequence_nr("p-1").await.unwrap(),
        5,
        "after reopen"
    );
    assert_eq!(read(&again, "p-1", 1, ALL, 100).await, [] as [u64; 0]);
    // A deleted sequence number is still taken; the stream continues after the highest.
    assert_conflict(write_one(&again, part("p-1", 1..=1)).await, "p-1", 1);
    append(&again, "p-1", 6..=6).await;
    assert_eq!(read(&again, "p-1", 1, ALL, 100).await, [6]);
}

/// Deleting the newest events does not free their positions: a reader that went past
/// them would otherwise never see the events written next, in this handle or after a
/// reopen.
pub async fn positions_not_given_again_after_delete(f: &impl Factory) {
    let j = five(f).await;
    let newest = j
        .read_all(0, usize::MAX)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position;
    j.delete_to("p-2", ALL).await.unwrap();
    append(&j, "p-3", 1..=1).await;
    let next = j.read("p-3", 1, ALL, 1).await.unwrap()[0].position;
    assert!(
        next > newest,
        "position {next} given again (newest was {newest})"
    );

    j.delete_to("p-3", ALL).await.unwrap();
    j.delete_to("p-1", ALL).await.unwrap();
    let again = f.reopen(&j).await;
    append(&again, "p-4", 1..=1).await;
    let after = again.read("p-4", 1, ALL, 1).await.unwrap()[0].position;
    assert!(
        after > next,
        "after reopen: position {after} given again ({next})"
    );
    assert_eq!(
        again.read_all(newest, usize::MAX).await.unwrap().len(),
        1,
        "a reader past the deleted events sees the new one"
    );
}

/// Deleting a stream's events while another handle appends to it: every append goes on
/// from the stream's highest, which no deletion lowers, so none of them conflicts.
pub async fn delete_to_while_appending(f: &impl Factory) {
    let writer = f.journal().await;
    let deleter = f.reopen(&writer).await;
    let appends = async {
        for seq in 1..=100u64 {
            if let Err(error) = write_one(&writer, part("purged", [seq])).await {
                panic!("append #{seq} failed while deleting: {error:?}");
            }
            tokio::task::yield_now().await;
        }
    };
    let deletes = async {
        for _ in 0..100 {
            deleter.delete_to("purged", ALL).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(appends, deletes);
    assert_eq!(writer.highest_sequence_nr("purged").await.unwrap(), 100);
    assert_conflict(
        write_one(&writer, part("purged", [100])).await,
        "purged",
        100,
    );
}

/// A stream is appended to and deleted up to its end over and over by one handle, while a
/// stale writer on another handle keeps trying to write a number just taken, one that may
/// be being deleted at that very moment. A deleted number stays taken: the stale writer
/// never succeeds, and the stream ends with no number written twice.
pub async fn deleted_numbers_stay_taken_under_stale_writers(f: &impl Factory) {
    let owner = f.journal().await;
    let stale = f.reopen(&owner).await;
    let taken = std::sync::atomic::AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let owner_side = async {
        for seq in 1..=150u64 {
            write_one(&owner, part("stale", [seq]))
                .await
                .unwrap_or_else(|e| panic!("owner's append #{seq}: {e:?}"));
            taken.store(seq, std::sync::atomic::Ordering::SeqCst);
            owner.delete_to("stale", ALL).await.unwrap();
            tokio::task::yield_now().await;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let stale_side = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let seq = taken.load(std::sync::atomic::Ordering::SeqCst);
            if seq > 0 {
                let result = write_one(&stale, part("stale", [seq])).await;
                assert!(
                    matches!(result, Err(JournalError::Conflict { .. })),
                    "a stale write of the taken #{seq} must conflict: {result:?}"
                );
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(owner_side, stale_side);
    assert_eq!(owner.highest_sequence_nr("stale").await.unwrap(), 150);
}

pub async fn empty_part_writes_nothing(f: &impl Factory) {
    let j = f.journal().await;
    write_one(&j, part("p-1", [])).await.unwrap();
    assert_eq!(j.highest_sequence_nr("p-1").await.unwrap(), 0);
    assert!(j.read_all(0, 100).await.unwrap().is_empty());
}

pub async fn batch_atomicity_per_aggregate(f: &impl Factory) {
    let j = f.journal().await;
    append(&j, "b", 1..=2).await;
    let results = j
        .write(vec![
            part("a", 1..=3),
            part("b", 2..=4), // 2 is taken: the whole part fails
            part("c", 1..=2),
            part("d", 1..=1),
        ])
        .await;
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_conflict(results[1].clone(), "b", 2);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(results[3].is_ok(), "{:?}", results[3]);
    assert_eq!(read(&j, "a", 1, ALL, 100).await, [1, 2, 3]);
    assert_eq!(
        read(&j, "b", 1, ALL, 100).await,
        [1, 2],
        "nothing of the failed part"
    );
    assert_eq!(j.highest_sequence_nr("b").await.unwrap(), 2);
    assert_eq!(read(&j, "c", 1, ALL, 100).await, [1, 2]);
    assert_eq!(read(&j, "d", 1, ALL, 100).await, [1]);
    let b2 = &j.read("b", 2, 2, 1).await.unwrap()[0];
    assert_eq!(
        unpositioned(b2),
        event("b", 2),
        "the stored event is the first writer's"
    );
    assert_eq!(j.read_all(0, 100).await.unwrap().len(), 2 + 3 + 2 + 1);
}

/// Only the conflicting part of a batch fails, next to parts of a brand-new stream and of
/// existing ones (one of them in two parts, the second continuing the first).
pub async fn batch_conflict_among_new_and_existing_streams(f: &impl Factory) {
    let j = f.journal().await;
    append(&j, "old", 1..=2).await;
    append(&j, "taken", 1..=3).await;
    let mut fresh = part("fresh", 1..=2);
    fresh.events[1].tags = Tags::fixed(&["batch-tag"]);
    let mut old = part("old", 3..=4);
    old.events[0].tags = Tags::fixed(&["batch-tag", "other"]);
    let results = j
        .write(vec![
            part("taken", 3..=4), // 3 is taken
            fresh,
            old,
            part("old", 5..=5),
            part("unborn", 2..=2), // a new stream starts at 1
        ])
        .await;
    assert_eq!(results.len(), 5);
    assert_conflict(results[0].clone(), "taken", 3);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(results[3].is_ok(), "{:?}", results[3]);
    assert_conflict(results[4].clone(), "unborn", 1);
    assert_eq!(read(&j, "taken", 1, ALL, 100).await, [1, 2, 3]);
    assert_eq!(j.highest_sequence_nr("taken").await.unwrap(), 3);
    assert_eq!(read(&j, "fresh", 1, ALL, 100).await, [1, 2]);
    assert_eq!(j.highest_sequence_nr("fresh").await.unwrap(), 2);
    assert_eq!(read(&j, "old", 1, ALL, 100).await, [1, 2, 3, 4, 5]);
    assert_eq!(j.highest_sequence_nr("old").await.unwrap(), 5);
    assert!(read(&j, "unborn", 1, ALL, 100).await.is_empty());
    assert_eq!(j.highest_sequence_nr("unborn").await.unwrap(), 0);
    let old = j.read("old", 1, ALL, 100).await.unwrap();
    assert!(
        old.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase in the stream"
    );
    let tagged: Vec<(String, u64)> = j
        .read_tag("batch-tag", 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.persistence_id.to_string(), e.sequence_nr))
        .collect();
    assert_eq!(tagged.len(), 2);
    assert!(tagged.contains(&("fresh".into(), 2)) && tagged.contains(&("old".into(), 3)));
    let back = j.read("old", 3, 3, 1).await.unwrap();
    let tags: Vec<&str> = back[0].tags.iter().collect();
    assert_eq!(tags, ["batch-tag", "other"]);
    assert_eq!(j.read_all(0, 100).await.unwrap().len(), 2 + 3 + 2 + 3);
    // The batch goes on from there.
    append(&j, "fresh", 3..=3).await;
    append(&j, "taken", 4..=4).await;
}

pub async fn duplicate_sequence_nr_is_conflict(f: &impl Factory) {
    let j = f.journal().await;
    append(&j, "p", 1..=3).await;
    assert_conflict(write_one(&j, part("p", 3..=4)).await, "p", 3);
    assert_conflict(write_one(&j, part("p", 1..=1)).await, "p", 1);
    assert_eq!(read(&j, "p", 1, ALL, 100).await, [1, 2, 3]);
    assert_eq!(j.highest_sequence_nr("p").await.unwrap(), 3);
    // Two parts of one batch for the same new sequence number: the first wins.
    let results = j.write(vec![part("p", 4..=4), part("p", 4..=5)]).await;
    assert!(results[0].is_ok());
    assert_conflict(results[1].clone(), "p", 4);
    assert_eq!(read(&j, "p", 1, ALL, 100).await, [1, 2, 3, 4]);
}

pub async fn gap_is_conflict(f: &impl Factory) {
    let j = f.journal().await;
    append(&j, "p", 1..=2).await;
    assert_conflict(write_one(&j, part("p", 4..=5)).await, "p", 3);
    assert_conflict(write_one(&j, part("q", 2..=2)).await, "q", 1);
    assert_conflict(write_one(&j, part("p", [3, 5])).await, "p", 4);
    assert_eq!(read(&j, "p", 1, ALL, 100).await, [1, 2]);
    assert_eq!(j.highest_sequence_nr("q").await.unwrap(), 0);
}

pub async fn two_handles_one_winner_per_sequence_nr(f: &impl Factory) {
    let one = f.journal().await;
    let two = f.reopen(&one).await;
    let writer = |w: &str, seq: u64| {
        let mut p = part("contended", [seq, seq + 1]);
        for e in &mut p.events {
            e.writer_id = Arc::from(w);
        }
        p
    };
    let mut winners = Vec::new();
    for seq in (1..=60).step_by(2) {
        let (a, b) = tokio::join!(
            write_one(&one, writer("one", seq)),
            write_one(&two, writer("two", seq))
        );
        match (a, b) {
            (Ok(()), Err(e)) => {
                assert!(matches!(e, JournalError::Conflict { .. }), "{e:?}");
                winners.push("one");
            }
            (Err(e), Ok(())) => {
                assert!(matches!(e, JournalError::Conflict { .. }), "{e:?}");
                winners.push("two");
            }
            other => panic!("exactly one writer must win #{seq}: {other:?}"),
        }
    }
    for handle in [&one, &two] {
        let events = handle.read("contended", 1, ALL, 1000).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.sequence_nr).collect();
        assert_eq!(seqs, (1..=60).collect::<Vec<_>>(), "no gap, no double");
        for (pair, winner) in events.chunks(2).zip(&winners) {
            assert!(
                pair.iter().all(|e| &*e.writer_id == *winner),
                "no mixed part"
            );
        }
    }
}

/// Two handles append to one stream in turn: every write follows the other handle's last
/// one and succeeds (a handle that remembered the stream's highest number across the
/// other's writes would call it a gap); then the handle that is behind gets a conflict.
pub async fn two_handles_take_turns_on_one_stream(f: &impl Factory) {
    let one = f.journal().await;
    let two = f.reopen(&one).await;
    for seq in 1..=12u64 {
        let writer = if seq % 2 == 1 { &one } else { &two };
        write_one(writer, part("turns", [seq]))
            .await
            .unwrap_or_else(|e| panic!("#{seq} follows the other handle's write: {e:?}"));
    }
    assert_conflict(write_one(&one, part("turns", [12])).await, "turns", 12);
    assert_eq!(
        read(&one, "turns", 1, ALL, 100).await,
        (1..=12).collect::<Vec<u64>>()
    );
}

/// Two handles write batches over the same streams at the same sequence numbers, one with
/// the parts in the opposite order of the other: every part has exactly one winner, and
/// every loser is a conflict, never another error (such as a deadlock between the two).
pub async fn crossing_batches_one_winner_per_part(f: &impl Factory) {
    let one = f.journal().await;
    let two = f.reopen(&one).await;
    let streams = ["cross-a", "cross-b", "cross-c"];
    for seq in 1..=20u64 {
        let forward: Vec<AtomicWrite> = streams.iter().map(|s| part(s, [seq])).collect();
        let backward: Vec<AtomicWrite> = streams.iter().rev().map(|s| part(s, [seq])).collect();
        let (a, b) = tokio::join!(one.write(forward), two.write(backward));
        for (i, stream) in streams.iter().enumerate() {
            match (&a[i], &b[streams.len() - 1 - i]) {
                (Ok(()), Err(JournalError::Conflict { .. }))
                | (Err(JournalError::Conflict { .. }), Ok(())) => {}
                other => panic!("{stream} #{seq}: exactly one writer must win: {other:?}"),
            }
        }
    }
    for stream in streams {
        assert_eq!(
            read(&one, stream, 1, ALL, 100).await,
            (1..=20).collect::<Vec<u64>>(),
            "{stream}: no gap, no double"
        );
    }
}

pub async fn tags_and_command_ids_round_trip(f: &impl Factory) {
    let j = f.journal().await;
    let mut p = part("t", 1..=4);
    p.events[0].tags = Tags::fixed(&["red", "blue"]);
    p.events[0].command_id = Some("cmd-1".into());
    p.events[1].tags = Tags::owned(vec!["blue".into(), "ünï cødé 🎨".into()]);
    p.events[1].command_id = Some("cmd-1".into());
    p.events[2].tags = Tags::with_owned(&["red"], vec!["green".into()]);
    p.events[3].command_id = Some("'; DROP TABLE x; --".into());
    p.events[3].manifest = "renamed-thing".into();
    p.events[3].version = 7;
    p.events[3].writer_id = Arc::from("node-b");
    write_one(&j, p.clone()).await.unwrap();
    let back = j.read("t", 1, ALL, 100).await.unwrap();
    let back: Vec<_> = back.iter().map(unpositioned).collect();
    assert_eq!(back, p.events);
    let tags: Vec<Vec<&str>> = back.iter().map(|e| e.tags.iter().collect()).collect();
    assert_eq!(tags[2], ["red", "green"], "tag order kept");
}

fn tagged(pid: &str, seq: u64, tags: &'static [&'static str]) -> AtomicWrite {
    let mut p = part(pid, [seq]);
    p.events[0].tags = Tags::fixed(tags);
    p
}

pub async fn read_by_tag_in_global_order(f: &impl Factory) {
    let j = f.journal().await;
    for write in [
        tagged("p1", 1, &["x"]),
        tagged("p2", 1, &["x", "y"]),
        tagged("p1", 2, &["y"]),
        tagged("p2", 2, &["x"]),
        tagged("p3", 1, &[]),
    ] {
        write_one(&j, write).await.unwrap();
    }
    let ids = |events: &[EventRecord]| -> Vec<(String, u64)> {
        events
            .iter()
            .map(|e| (e.persistence_id.to_string(), e.sequence_nr))
            .collect()
    };
    let x = j.read_tag("x", 0, 100).await.unwrap();
    assert_eq!(
        ids(&x),
        [("p1".into(), 1), ("p2".into(), 1), ("p2".into(), 2)]
    );
    assert!(x.windows(2).all(|w| w[0].position < w[1].position));
    let y = j.read_tag("y", 0, 100).await.unwrap();
    assert_eq!(ids(&y), [("p2".into(), 1), ("p1".into(), 2)]);
    let page = j.read_tag("x", x[0].position, 1).await.unwrap();
    assert_eq!(ids(&page), [("p2".into(), 1)], "after and max page");
    assert!(
        j.read_tag("x", x[2].position, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(j.read_tag("x", 0, 0).await.unwrap().is_empty());
    assert!(j.read_tag("none", 0, 100).await.unwrap().is_empty());
    assert_eq!(x[1], j.read("p2", 1, 1, 1).await.unwrap()[0], "same record");

    j.delete_to("p2", 1).await.unwrap();
    let x = j.read_tag("x", 0, 100).await.unwrap();
    assert_eq!(
        ids(&x),
        [("p1".into(), 1), ("p2".into(), 2)],
        "deleted hidden"
    );
}

pub async fn read_all_pages(f: &impl Factory) {
    let j = f.journal().await;
    for i in 1..=10 {
        append(&j, &format!("s{}", (i - 1) % 3), [(i - 1) / 3 + 1]).await;
    }
    let all = j.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 10);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = j.read_all(after, 3).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.position;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(j.read_all(0, 0).await.unwrap().is_empty());
    assert!(j.read_all(all[9].position, 10).await.unwrap().is_empty());
}

pub async fn persistence_ids_of_any_utf8(f: &impl Factory) {
    let j = f.journal().await;
    let s = f.snapshots().await;
    let pids = [
        "account-ünïcödé-😀",
        "quote-'\"-'; DROP TABLE factum_events; --",
        "spaces and\ttabs\nand newlines",
        "%",
        "_",
        "a%",
        "",
        "日本語-пример-عربي",
        "back\\slash",
    ];
    for (i, pid) in pids.iter().enumerate() {
        append(&j, pid, 1..=(i as u64 + 1)).await;
        s.save(snapshot(pid, 1, b"{}")).await.unwrap();
    }
    for (i, pid) in pids.iter().enumerate() {
        let n = i as u64 + 1;
        let events = j.read(pid, 1, ALL, 100).await.unwrap();
        assert_eq!(events.len() as u64, n, "{pid:?}");
        assert!(events.iter().all(|e| &*e.persistence_id == *pid));
        assert_eq!(unpositioned(&events[0]), event(pid, 1));
        assert_eq!(j.highest_sequence_nr(pid).await.unwrap(), n, "{pid:?}");
        assert_eq!(
            s.load(pid, ALL)
                .await
                .unwrap()
                .unwrap()
                .persistence_id
                .as_ref(),
            *pid
        );
    }
    j.delete_to("%", 1).await.unwrap();
    assert_eq!(
        read(&j, "a%", 1, ALL, 100).await.len(),
        6,
        "no pattern matching"
    );
}

fn snapshot(pid: &str, seq: u64, payload: &[u8]) -> SnapshotRecord {
    SnapshotRecord {
        persistence_id: Arc::from(pid),
        sequence_nr: seq,
        version: 1,
        payload: payload.to_vec(),
        timestamp: 1_700_000_000_000 + seq,
    }
}

fn seq_payload(seq: u64) -> Vec<u8> {
    format!("{{\"state\":{seq}}}").into_bytes()
}

async fn loaded(s: &impl SnapshotStore, pid: &str, max: u64) -> Option<u64> {
    s.load(pid, max).await.unwrap().map(|r| {
        assert_eq!(
            r.payload,
            seq_payload(r.sequence_nr),
            "payload of #{}",
            r.sequence_nr
        );
        r.sequence_nr
    })
}

pub async fn snapshot_latest_wins(f: &impl Factory) {
    let s = f.snapshots().await;
    for seq in [5, 10, 7] {
        s.save(snapshot("p", seq, &seq_payload(seq))).await.unwrap();
    }
    s.save(snapshot("other", 20, &seq_payload(20)))
        .await
        .unwrap();
    assert_eq!(loaded(&s, "p", ALL).await, Some(10));
    let full = s.load("p", ALL).await.unwrap().unwrap();
    assert_eq!(full, snapshot("p", 10, &seq_payload(10)));
}

pub async fn snapshot_bounded_by_sequence_nr(f: &impl Factory) {
    let s = f.snapshots().await;
    for seq in [5, 10, 7] {
        s.save(snapshot("p", seq, &seq_payload(seq))).await.unwrap();
    }
    assert_eq!(loaded(&s, "p", 9).await, Some(7));
    assert_eq!(loaded(&s, "p", 7).await, Some(7));
    assert_eq!(loaded(&s, "p", 5).await, Some(5));
    assert_eq!(loaded(&s, "p", 4).await, None);
    assert_eq!(loaded(&s, "p", 0).await, None);
}

pub async fn snapshot_retention_keeps_last_n(f: &impl Factory) {
    let s = f.snapshots().await;
    for seq in [3, 1, 5, 2, 4] {
        s.save(snapshot("p", seq, &seq_payload(seq))).await.unwrap();
        s.save(snapshot("q", seq, &seq_payload(seq))).await.unwrap();
    }
    s.retain("p", 2).await.unwrap();
    assert_eq!(loaded(&s, "p", ALL).await, Some(5));
    assert_eq!(loaded(&s, "p", 4).await, Some(4));
    assert_eq!(loaded(&s, "p", 3).await, None, "older ones are gone");
    assert_eq!(loaded(&s, "q", 3).await, Some(3), "other streams untouched");
    s.retain("p", 5).await.unwrap();
    assert_eq!(loaded(&s, "p", 4).await, Some(4));
    s.retain("p", 0).await.unwrap();
    assert_eq!(loaded(&s, "p", ALL).await, None, "keep 0 keeps none");
}

pub async fn snapshot_same_sequence_nr_overwrites(f: &impl Factory) {
    let s = f.snapshots().await;
    s.save(snapshot("p", 3, b"{\"old\":true}")).await.unwrap();
    let mut newer = snapshot("p", 3, b"{\"new\":true}");
    newer.version = 2;
    newer.timestamp += 1;
    s.save(newer.clone()).await.unwrap();
    assert_eq!(s.load("p", ALL).await.unwrap(), Some(newer));
    s.retain("p", 1).await.unwrap();
    assert_eq!(
        s.load("p", 3).await.unwrap().map(|r| r.version),
        Some(2),
        "one row"
    );
}

pub async fn snapshot_of_1_mb_round_trips(f: &impl Factory) {
    let s = f.snapshots().await;
    let big: String = (0..1_048_576u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let payload = serde_json::json!({ "blob": big, "emoji": "😀" })
        .to_string()
        .into_bytes();
    assert!(payload.len() > 1_048_576);
    s.save(snapshot("big", 1, &payload)).await.unwrap();
    let back = s.load("big", ALL).await.unwrap().unwrap();
    assert_eq!(back.payload.len(), payload.len());
    assert!(back.payload == payload, "the 1 MB payload round trips");
}

pub async fn schema_survives_reopen(f: &impl Factory) {
    let j = f.journal().await;
    let mut p = part("r", 1..=3);
    p.events[1].tags = Tags::fixed(&["kept"]);
    p.events[1].command_id = Some("c".into());
    write_one(&j, p).await.unwrap();
    let before = j.read_all(0, 100).await.unwrap();
    let s = f.snapshots().await;
    s.save(snapshot("r", 2, &seq_payload(2))).await.unwrap();

    let j2 = f.reopen(&j).await;
    drop(j);
    let j3 = f.reopen(&j2).await;
    drop(j2);
    assert_eq!(
        j3.read_all(0, 100).await.unwrap(),
        before,
        "identical after reopen"
    );
    assert_eq!(
        j3.read_tag("kept", 0, 10).await.unwrap(),
        before[1..2].to_vec()
    );
    assert_eq!(j3.highest_sequence_nr("r").await.unwrap(), 3);
    append(&j3, "r", 4..=4).await;
    let last = j3.read("r", 4, 4, 1).await.unwrap();
    assert!(last[0].position > before[2].position, "positions continue");

    let s2 = f.reopen_snapshots(&s).await;
    drop(s);
    assert_eq!(loaded(&s2, "r", ALL).await, Some(2));
}
