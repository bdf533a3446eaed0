//! A failing journal: the affected commands get `Error::Journal` naming the persistence id,
//! memory is rebuilt from the journal, and other aggregates are unaffected.

mod common;

use std::time::Duration;

use common::*;
use factum::{Error, JournalError, MemoryJournal, Repository};

#[tokio::test]
async fn a_write_that_fails_before_writing_changes_nothing() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 1)).await.unwrap();
    journal.fail(2, Fault::FailBefore);
    let error = repo.send(add("a", 10)).await.unwrap_err();
    match &error {
        Error::Journal {
            persistence_id,
            source: JournalError::Backend(_),
        } => {
            assert_eq!(persistence_id, "counter-a")
        }
        other => panic!("expected a journal error, got {other:?}"),
    }
    assert!(error.to_string().contains("counter-a"), "{error}");
    assert!(error.to_string().contains("disk on fire"), "{error}");
    let receipt = repo.send(add("a", 1)).await.unwrap();
    assert_eq!(receipt.version, 2);
    let (state, _) = repo.state(&"a".to_string()).await.unwrap();
    assert_eq!(state.value, stored_value(&journal.inner, "counter-a").await);
    assert_eq!(state.value, 2);
}

#[tokio::test]
async fn a_write_that_fails_after_writing_is_recovered_from_the_journal() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 1)).await.unwrap();
    journal.fail(2, Fault::FailAfter);
    let error = repo.send(add("a", 10)).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Journal {
                source: JournalError::Unknown(_),
                ..
            }
        ),
        "{error:?}"
    );
    // The event did land: the next command continues after it.
    let receipt = repo.send(add("a", 1)).await.unwrap();
    assert_eq!(receipt.version, 3);
    let (state, version) = repo.state(&"a".to_string()).await.unwrap();
    assert_eq!((state.value, version), (12, 3));
    assert_eq!(state.value, stored_value(&journal.inner, "counter-a").await);
}

/// One aggregate's part of a batch conflicts; the other parts of the same journal call
/// are written and their commands succeed.
#[tokio::test]
async fn a_failing_part_does_not_fail_the_rest_of_the_batch() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::builder(journal.clone())
        .conflict_retries(0)
        .build();
    let other: Repository<Counter> = Repository::new(journal.inner.clone());
    repo.send(add("a", 1)).await.unwrap();
    // Another writer moves `a` ahead behind this repository's back.
    other.send(add("a", 1)).await.unwrap();

    // Hold writes until as many as may be in flight are held, so that the next ones queue
    // and go to the journal together.
    journal.gate_writes();
    let spawn = |id: &'static str| {
        let repo = repo.clone();
        tokio::spawn(async move { repo.send(add(id, 1)).await })
    };
    let mut fillers = Vec::new();
    let mut held = 0;
    for filler in ["f1", "f2", "f3", "f4"] {
        fillers.push(spawn(filler));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        if journal.writes_held() == held {
            break; // This one queued: the journal calls in flight are all held.
        }
        held = journal.writes_held();
    }
    let stale = spawn("a");
    let fine = spawn("b");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    journal.release_writes();
    for filler in fillers {
        filler.await.unwrap().unwrap();
    }
    let error = stale.await.unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fine.await.unwrap().unwrap().version, 1);
    let together = journal
        .batch_pids()
        .iter()
        .any(|pids| pids.contains(&"counter-a".into()) && pids.contains(&"counter-b".into()));
    assert!(
        together,
        "a and b did not share a journal call: {:?}",
        journal.batch_pids()
    );
    assert_eq!(stored_value(&journal.inner, "counter-a").await, 2);
    assert_eq!(stored_value(&journal.inner, "counter-b").await, 1);
    // `a` is rebuilt from the journal on its next command.
    assert_eq!(repo.send(add("a", 1)).await.unwrap().version, 3);
}

/// A command whose write failed is not remembered by the dedupe window: the same command
/// id runs again.
#[tokio::test]
async fn a_command_whose_write_failed_runs_again_under_the_same_id() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    journal.fail(1, Fault::FailBefore);
    assert!(repo.send(add("a", 10).with_id("req")).await.is_err());
    let receipt = repo.send(add("a", 10).with_id("req")).await.unwrap();
    assert_eq!(receipt.version, 1);
    assert_eq!(stored_value(&journal.inner, "counter-a").await, 10);
    // Now it is remembered: a third send is a repeat.
    let repeat = repo.send(add("a", 10).with_id("req")).await.unwrap();
    assert_eq!(repeat.version, 1);
    assert_eq!(stored_value(&journal.inner, "counter-a").await, 10);
}

/// A write whose outcome was unknown but that landed carries its command id into the
/// journal: after recovery the same command is a repeat, not a second deposit.
#[tokio::test]
async fn a_command_whose_write_landed_unacknowledged_is_a_repeat_after_recovery() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    journal.fail(1, Fault::FailAfter);
    assert!(repo.send(add("a", 10).with_id("req")).await.is_err());
    let repeat = repo.send(add("a", 10).with_id("req")).await.unwrap();
    assert_eq!(repeat.version, 1);
    assert_eq!(repeat.events.len(), 1);
    assert_eq!(stored_value(&journal.inner, "counter-a").await, 10);
}

/// A runtime that shuts down while a write is in flight, with others queued behind it,
/// leaves no lead behind: a command sent later, from another runtime, is written (it
/// used to queue for good behind a drainer task the closing runtime never ran).
#[test]
fn a_runtime_shut_down_mid_write_leaves_the_repository_usable() {
    let journal = Faulty::new(MemoryJournal::new());
    journal.gate_writes();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        for i in 0..6 {
            let repo = repo.clone();
            tokio::spawn(async move { repo.send(add(&i.to_string(), 1)).await });
        }
        // Two writes in flight at the gate, the rest queued behind them.
        while journal.writes_held() < 2 {
            tokio::task::yield_now().await;
        }
    });
    drop(first);

    journal.release_writes();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let sent = tokio::time::timeout(Duration::from_secs(10), repo.send(add("later", 1)));
        let receipt = sent.await.expect("not queued for good").unwrap();
        assert_eq!(receipt.version, 1);
    });
}
