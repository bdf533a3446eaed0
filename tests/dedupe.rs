//! The dedupe window: a repeated command id returns the first receipt without running
//! `handle`, across restarts, passivation and snapshots.

mod common;

use common::*;
use factum::{MemoryJournal, MemorySnapshots, Repository, SnapshotPolicy};

#[tokio::test]
async fn a_repeat_returns_the_cached_receipt_and_handle_runs_once() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let first = repo.send(add("a", 5).with_id("req-1")).await.unwrap();
    let again = repo.send(add("a", 5).with_id("req-1")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(handled(), 1);
    assert_eq!(stored(&journal, "counter-a").await.len(), 1);
    // Another id runs.
    assert_eq!(
        repo.send(add("a", 5).with_id("req-2"))
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(handled(), 2);
}

#[tokio::test]
async fn a_repeat_returns_all_events_of_a_multi_event_command() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    repo.send(add("a", 1)).await.unwrap();
    let first = repo
        .send(add("a", 0).op(Op::AddTwice(3)).with_id("twice"))
        .await
        .unwrap();
    repo.send(add("a", 1)).await.unwrap();
    let again = repo
        .send(add("a", 0).op(Op::AddTwice(3)).with_id("twice"))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(again.version, 3);
    assert_eq!(again.events.len(), 2);
}

/// Every event of a command carries its id into the journal, so that after a restart a
/// repeat gets the whole receipt, not only its last event.
#[tokio::test]
async fn a_multi_event_command_is_a_repeat_after_a_restart() {
    let journal = MemoryJournal::new();
    let first = {
        let repo: Repository<Counter> = Repository::new(journal.clone());
        repo.send(add("a", 1)).await.unwrap();
        repo.send(add("a", 0).op(Op::AddTwice(3)).with_id("twice"))
            .await
            .unwrap()
    };
    let ids: Vec<Option<String>> = stored(&journal, "counter-a")
        .await
        .iter()
        .map(|record| record.command_id.as_deref().map(str::to_owned))
        .collect();
    assert_eq!(ids, [None, Some("twice".into()), Some("twice".into())]);
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let before = handled();
    let again = repo
        .send(add("a", 0).op(Op::AddTwice(3)).with_id("twice"))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(again.events.len(), 2);
    assert_eq!(handled(), before, "handle ran for a repeat after restart");
}

#[tokio::test]
async fn a_failed_command_is_not_remembered() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    assert!(repo.send(add("a", 0).with_id("req")).await.is_err());
    // The same id with a valid command runs: only successes are remembered.
    assert_eq!(
        repo.send(add("a", 4).with_id("req")).await.unwrap().version,
        1
    );
}

#[tokio::test]
async fn the_window_keeps_the_last_n_ids() {
    let repo: Repository<Counter> = Repository::builder(MemoryJournal::new())
        .dedupe_window(2)
        .build();
    for i in 1..=3 {
        repo.send(add("a", 1).with_id(&format!("r{i}")))
            .await
            .unwrap();
    }
    // r1 fell out of the window of 2: it runs again; r3 is still remembered.
    assert_eq!(
        repo.send(add("a", 1).with_id("r1")).await.unwrap().version,
        4
    );
    assert_eq!(
        repo.send(add("a", 1).with_id("r3")).await.unwrap().version,
        3
    );
}

#[tokio::test]
async fn a_window_of_zero_disables_deduplication() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::builder(journal.clone())
        .dedupe_window(0)
        .build();
    repo.send(add("a", 1).with_id("r")).await.unwrap();
    assert_eq!(
        repo.send(add("a", 1).with_id("r")).await.unwrap().version,
        2
    );
    // The ids are still stored with the events: a repository with a window finds them.
    let ids: Vec<_> = stored(&journal, "counter-a")
        .await
        .into_iter()
        .map(|record| record.command_id)
        .collect();
    assert_eq!(ids, [Some("r".into()), Some("r".into())]);
    let windowed: Repository<Counter> = Repository::new(journal);
    assert_eq!(
        windowed
            .send(add("a", 1).with_id("r"))
            .await
            .unwrap()
            .version,
        2
    );
}

#[tokio::test]
async fn the_window_survives_a_restart() {
    let journal = MemoryJournal::new();
    let first = {
        let repo: Repository<Counter> = Repository::new(journal.clone());
        repo.send(add("a", 1)).await.unwrap();
        repo.send(add("a", 5).with_id("req-1")).await.unwrap()
    };
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let before = handled();
    assert_eq!(
        repo.send(add("a", 5).with_id("req-1")).await.unwrap(),
        first
    );
    assert_eq!(handled(), before, "handle ran for a repeat after restart");
    assert_eq!(stored(&journal, "counter-a").await.len(), 2);
}

#[tokio::test]
async fn the_window_survives_passivation() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let first = repo.send(add("a", 5).with_id("req-1")).await.unwrap();
    repo.passivate_idle();
    assert_eq!(repo.in_memory(), 0);
    assert_eq!(
        repo.send(add("a", 5).with_id("req-1")).await.unwrap(),
        first
    );
    assert_eq!(handled(), 1);
}

/// The command's events are older than the snapshot recovery starts from: the id comes
/// back from the snapshot, the receipt from the journal.
#[tokio::test]
async fn the_window_survives_inside_snapshots() {
    let journal = MemoryJournal::new();
    let snapshots = MemorySnapshots::new();
    let build = || {
        Repository::<Counter>::builder(journal.clone())
            .snapshots(snapshots.clone(), SnapshotPolicy::Every(1))
            .build()
    };
    let first = {
        let repo = build();
        let first = repo.send(add("a", 5).with_id("req-1")).await.unwrap();
        repo.send(add("a", 1)).await.unwrap();
        first
    };
    let repo = build();
    assert_eq!(
        repo.state(&"a".to_string()).await.unwrap().0.applied,
        0,
        "recovered from the snapshot alone"
    );
    let before = handled();
    assert_eq!(
        repo.send(add("a", 5).with_id("req-1")).await.unwrap(),
        first
    );
    assert_eq!(handled(), before);
}

/// A command that decided nothing is remembered too: its repeat gets the same empty
/// receipt, at the version it saw, without running `handle`.
#[tokio::test]
async fn a_command_that_decided_nothing_is_remembered() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    repo.send(add("a", 1)).await.unwrap();
    let first = repo
        .send(add("a", 0).op(Op::Nothing).with_id("n"))
        .await
        .unwrap();
    assert_eq!((first.events.len(), first.version), (0, 1));
    repo.send(add("a", 1)).await.unwrap();
    let handled_before = handled();
    let again = repo
        .send(add("a", 0).op(Op::Nothing).with_id("n"))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(handled(), handled_before, "the repeat did not run");
}

/// The default window holds exactly the last 1,024 ids.
#[tokio::test]
async fn the_default_window_keeps_1024_ids() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    for i in 0..=1024 {
        repo.send(add("a", 1).with_id(&format!("r{i}")))
            .await
            .unwrap();
    }
    // r0 fell out: it runs again (and pushes r1 out); r2 is still remembered.
    assert_eq!(
        repo.send(add("a", 1).with_id("r0")).await.unwrap().version,
        1026
    );
    assert_eq!(
        repo.send(add("a", 1).with_id("r2")).await.unwrap().version,
        3
    );
}
