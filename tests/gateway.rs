//! The command gateway: domain errors, optimistic concurrency, invariants, hooks,
//! ordering, group commit, parallel aggregates, write races between two gateways.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use factum::{Error, Journal, MemoryJournal, Receipt, Repository};

#[tokio::test]
async fn a_command_returns_its_events_and_the_new_version() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    let receipt = repo.send(add("a", 5)).await.unwrap();
    assert_eq!(
        receipt,
        Receipt {
            events: vec![CounterEvent::Added(5)],
            version: 1
        }
    );
    let receipt = repo.send(add("a", 2).op(Op::AddTwice(2))).await.unwrap();
    assert_eq!(receipt.version, 3);
    let (state, version) = repo.state(&"a".to_string()).await.unwrap();
    assert_eq!((state.value, version), (9, 3));
}

#[tokio::test]
async fn a_domain_error_surfaces_as_domain_and_writes_nothing() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 1)).await.unwrap();
    let error = repo.send(add("a", 0)).await.unwrap_err();
    assert!(
        matches!(error, Error::Domain(CounterError::Zero)),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "adding zero is not allowed");
    assert_eq!(stored(&journal, "counter-a").await.len(), 1);
    assert_eq!(repo.send(add("a", 1)).await.unwrap().version, 2);
}

#[tokio::test]
async fn an_expected_version_mismatch_is_a_conflict_and_writes_nothing() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 1)).await.unwrap();
    let error = repo.send(add("a", 1).expect(0)).await.unwrap_err();
    match &error {
        Error::Conflict {
            persistence_id,
            expected,
            actual,
        } => {
            assert_eq!(
                (persistence_id.as_str(), *expected, *actual),
                ("counter-a", 0, 1)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(error.to_string().contains("counter-a"), "{error}");
    assert_eq!(stored(&journal, "counter-a").await.len(), 1);
    // The right version goes through.
    assert_eq!(repo.send(add("a", 1).expect(1)).await.unwrap().version, 2);
}

#[tokio::test]
async fn a_command_that_decides_nothing_writes_nothing() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 1)).await.unwrap();
    let receipt = repo.send(add("a", 1).op(Op::Nothing)).await.unwrap();
    assert_eq!(
        receipt,
        Receipt {
            events: vec![],
            version: 1
        }
    );
    assert_eq!(stored(&journal, "counter-a").await.len(), 1);
}

#[tokio::test]
async fn an_invariant_violation_rejects_the_command_and_writes_nothing() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 3)).await.unwrap();
    let error = repo.send(add("a", -5)).await.unwrap_err();
    assert!(
        matches!(error, Error::Domain(CounterError::Negative)),
        "{error:?}"
    );
    assert_eq!(stored(&journal, "counter-a").await.len(), 1);
    // The state the rejected events would have produced is gone.
    let (state, version) = repo.state(&"a".to_string()).await.unwrap();
    assert_eq!((state.value, version), (3, 1));
    assert_eq!(repo.send(add("a", -3)).await.unwrap().version, 2);
}

#[tokio::test]
async fn interceptors_may_reject_and_listeners_and_taps_see_committed_events() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_listener = Arc::clone(&seen);
    let repo: Repository<Counter> = Repository::builder(MemoryJournal::new())
        .on_command(|cmd: &CounterCommand| match cmd.op {
            Op::Add(n) if n > 100 => Err(format!("{n} is too much")),
            _ => Ok(()),
        })
        .on_event(move |pid: &str, seq: u64, event: &CounterEvent| {
            seen_by_listener
                .lock()
                .unwrap()
                .push((pid.to_string(), seq, event.clone()));
        })
        .build();
    let mut tap = repo.subscribe();

    let error = repo.send(add("a", 101)).await.unwrap_err();
    match &error {
        Error::Rejected {
            persistence_id,
            reason,
        } => {
            assert_eq!(persistence_id, "counter-a");
            assert_eq!(reason, "101 is too much");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(
        error.to_string().contains("counter-a"),
        "the message names the persistence id: {error}"
    );
    assert_eq!(
        HANDLED.with(|h| h.get()),
        0,
        "a rejected command is not handled"
    );

    repo.send(add("a", 1).op(Op::AddTwice(4))).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("counter-a".to_string(), 1, CounterEvent::Added(4)),
            ("counter-a".to_string(), 2, CounterEvent::Added(4)),
        ]
    );
    let first = tap.recv().await.unwrap();
    let second = tap.recv().await.unwrap();
    assert_eq!(
        (&*first.persistence_id, first.sequence_nr),
        ("counter-a", 1)
    );
    assert_eq!(
        (second.sequence_nr, second.event),
        (2, CounterEvent::Added(4))
    );
}

/// A listener that panics fails nothing: the command is durable and succeeds, the
/// listeners after it and the subscribers still hear of every event, and a snapshot due
/// is still taken.
#[tokio::test]
async fn a_panicking_listener_fails_nothing() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let heard_after = Arc::clone(&heard);
    let snapshots = factum::MemorySnapshots::new();
    let repo: Repository<Counter> = Repository::builder(MemoryJournal::new())
        .snapshots(snapshots.clone(), factum::SnapshotPolicy::Every(2))
        .on_event(|_: &str, seq: u64, _: &CounterEvent| {
            if seq == 1 {
                panic!("a listener's bug");
            }
        })
        .on_event(move |_: &str, seq: u64, _: &CounterEvent| {
            heard_after.lock().unwrap().push(seq);
        })
        .build();
    let mut tap = repo.subscribe();
    let receipt = repo.send(add("a", 1).op(Op::AddTwice(4))).await.unwrap();
    assert_eq!(receipt.version, 2);
    assert_eq!(*heard.lock().unwrap(), [1, 2]);
    assert_eq!(tap.recv().await.unwrap().sequence_nr, 1);
    assert_eq!(tap.recv().await.unwrap().sequence_nr, 2);
    let snapshot = factum::SnapshotStore::load(&snapshots, "counter-a", u64::MAX)
        .await
        .unwrap();
    assert_eq!(snapshot.map(|s| s.sequence_nr), Some(2));
    assert_eq!(repo.send(add("a", 1)).await.unwrap().version, 3);
}

#[tokio::test]
async fn stop_refuses_new_commands() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    repo.send(add("a", 1)).await.unwrap();
    repo.stop();
    let error = repo.send(add("a", 1)).await.unwrap_err();
    assert!(matches!(&error, Error::Stopped { persistence_id } if persistence_id == "counter-a"));
    assert!(error.to_string().contains("counter-a"));
}

/// Commands for one aggregate run in arrival order, even while the journal holds writes.
/// (On a current-thread runtime each spawned task runs, up to where it waits, at the next
/// yield: arrival order is the spawn order.)
#[tokio::test]
async fn one_aggregates_commands_run_in_arrival_order() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    journal.gate_writes();
    let mut tasks = Vec::new();
    for i in 1..=50i64 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move { repo.send(add("a", i)).await }));
        // Each command has queued on the aggregate before the next is sent.
        tokio::task::yield_now().await;
        if i == 1 {
            journal.write_started().await;
        }
    }
    journal.release_writes();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let amounts: Vec<i64> = stored(&journal.inner, "counter-a")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(amounts, (1..=50).collect::<Vec<_>>());
}

/// While one write is in flight, the writes of other aggregates queue and go to the
/// journal together in one call.
#[tokio::test]
async fn pending_writes_of_many_aggregates_share_one_journal_call() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    journal.gate_writes();
    let first = tokio::spawn({
        let repo = repo.clone();
        async move { repo.send(add("first", 1)).await }
    });
    journal.write_started().await;
    let mut others = Vec::new();
    for i in 0..20 {
        let repo = repo.clone();
        others.push(tokio::spawn(async move {
            repo.send(add(&format!("other-{i}"), 1)).await
        }));
    }
    // On this current-thread runtime, each spawned task runs at the next yield until it
    // waits for the held write: then all 20 are queued.
    while repo.in_memory() < 21 {
        tokio::task::yield_now().await;
    }
    tokio::task::yield_now().await;
    journal.release_writes();
    first.await.unwrap().unwrap();
    for task in others {
        assert_eq!(task.await.unwrap().unwrap().version, 1);
    }
    let batches = journal.batches();
    assert_eq!(batches.iter().sum::<usize>(), 21);
    assert!(
        batches.len() < 21 && batches.iter().any(|&n| n > 1),
        "writes were not grouped: {batches:?}"
    );
}

/// A journal that groups concurrent calls itself gets every write at once, in a call of
/// its own: none waits in the gateway for another write to finish. (The default holds
/// writes back while two calls are in flight, as the test above shows.)
#[tokio::test]
async fn a_journal_that_groups_writes_gets_each_at_once() {
    let journal = Faulty::new(MemoryJournal::new());
    journal.claim_to_group_writes();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    journal.gate_writes();
    let sends: Vec<_> = (0..21)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.send(add(&format!("at-once-{i}"), 1)).await })
        })
        .collect();
    // On this current-thread runtime, each task runs at the next yield until it waits.
    for _ in 0..1_000 {
        if journal.writes_held() == 21 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let held = journal.writes_held();
    journal.release_writes();
    assert_eq!(
        held, 21,
        "every write reached the journal while the others were held"
    );
    for send in sends {
        assert_eq!(send.await.unwrap().unwrap().version, 1);
    }
    assert_eq!(journal.batches(), vec![1; 21]);
}

/// 32 tasks × 1,000 aggregates: no command is lost, no sequence number is doubled or
/// skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_many_aggregates_lose_nothing() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let repo = repo.clone();
            tokio::spawn(async move {
                for i in 0..1000 {
                    let id = format!("{}", (i + t * 31) % 1000);
                    repo.send(add(&id, 1)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for id in 0..1000 {
        let pid = format!("counter-{id}");
        let records = stored(&journal, &pid).await;
        let seqs: Vec<u64> = records.iter().map(|r| r.sequence_nr).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{pid}");
        assert_eq!(stored_value(&journal, &pid).await, records.len() as i64);
        let (state, version) = repo.state(&id.to_string()).await.unwrap();
        assert_eq!(
            (state.value, version),
            (records.len() as i64, records.len() as u64)
        );
        total += records.len();
    }
    assert_eq!(total, 32_000);
}

/// A recovery held up in the journal delays only its own aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_recovery_does_not_delay_other_aggregates() {
    let journal = Faulty::new(MemoryJournal::new());
    {
        let repo: Repository<Counter> = Repository::new(journal.clone());
        repo.send(add("slow", 1)).await.unwrap();
        repo.send(add("fast", 1)).await.unwrap();
    }
    let repo: Repository<Counter> = Repository::new(journal.clone());
    journal.gate_reads_of("counter-slow");
    let slow = tokio::spawn({
        let repo = repo.clone();
        async move { repo.send(add("slow", 1)).await }
    });
    journal.read_started().await;
    // The slow recovery is now parked inside the journal; another aggregate goes ahead.
    let fast = tokio::time::timeout(Duration::from_secs(10), repo.send(add("fast", 1)))
        .await
        .expect("a command to another aggregate waited for the slow recovery");
    assert_eq!(fast.unwrap().version, 2);
    assert!(!slow.is_finished());
    journal.release_reads();
    assert_eq!(slow.await.unwrap().unwrap().version, 2);
}

/// Two gateways over one journal: the one with a stale state loses the write race, reloads
/// and retries; with an expected version it reports the conflict instead.
#[tokio::test]
async fn a_lost_write_race_is_retried_or_reported() {
    let journal = MemoryJournal::new();
    let node_a: Repository<Counter> = Repository::new(journal.clone());
    let node_b: Repository<Counter> = Repository::new(journal.clone());
    node_a.send(add("x", 1)).await.unwrap();
    node_b.send(add("x", 1)).await.unwrap(); // B recovers: version 2
    node_a.send(add("x", 1)).await.unwrap(); // A's state is stale: retried, version 3
    assert_eq!(node_a.state(&"x".to_string()).await.unwrap().1, 3);

    // B believes version 2; the journal is at 3. Without an expected version: retried.
    let receipt = node_b.send(add("x", 10)).await.unwrap();
    assert_eq!(receipt.version, 4);
    // A believes 3; with the expected version it believed, the conflict is reported.
    let error = node_a.send(add("x", 1).expect(3)).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Conflict {
                expected: 3,
                actual: 4,
                ..
            }
        ),
        "{error:?}"
    );
    let seqs: Vec<u64> = stored(&journal, "counter-x")
        .await
        .iter()
        .map(|r| r.sequence_nr)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(stored_value(&journal, "counter-x").await, 13);
}

/// A send whose future is dropped while its write is in flight leaves no stale state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_leaves_memory_in_agreement_with_the_journal() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 1)).await.unwrap();
    journal.gate_writes();
    let pending = tokio::spawn({
        let repo = repo.clone();
        async move { repo.send(add("a", 5)).await }
    });
    journal.write_started().await;
    pending.abort();
    assert!(pending.await.unwrap_err().is_cancelled());
    journal.release_writes();
    // Whatever the journal holds is what the aggregate says.
    let receipt = repo.send(add("a", 1)).await.unwrap();
    let value = stored_value(&journal.inner, "counter-a").await;
    assert_eq!(
        receipt.version,
        stored(&journal.inner, "counter-a").await.len() as u64
    );
    assert_eq!(repo.state(&"a".to_string()).await.unwrap().0.value, value);
}

#[tokio::test]
async fn each_event_records_what_the_journal_must_keep() {
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    repo.send(add("a", 7).with_id("req-1")).await.unwrap();
    repo.send(add("b", 1)).await.unwrap();
    let record = &stored(&journal, "counter-a").await[0];
    assert_eq!(&*record.persistence_id, "counter-a");
    assert_eq!(record.sequence_nr, 1);
    assert_eq!(&*record.manifest, "added");
    assert_eq!(record.version, 1);
    assert_eq!(record.payload, b"7");
    assert_eq!(record.tags.iter().collect::<Vec<_>>(), vec!["counter"]);
    assert_eq!(record.command_id.as_deref(), Some("req-1"));
    assert!(record.timestamp > 1_600_000_000_000);
    assert!(!record.writer_id.is_empty());
    let all = journal.read_all(0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.position).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let tagged = journal.read_tag("counter", 1, 10).await.unwrap();
    assert_eq!(tagged.len(), 1);
    assert_eq!(&*tagged[0].persistence_id, "counter-b");
}

/// `Repository<A>` is a `Clone + Send + Sync` handle and the stores are cheap `Clone`
/// handles sharing their data, as DESIGN.md promises.
#[tokio::test]
async fn handles_are_clone_send_and_sync() {
    fn shared<T: Clone + Send + Sync + 'static>(_: &T) {}
    let journal = MemoryJournal::new();
    let repo: Repository<Counter> = Repository::new(journal.clone());
    shared(&repo);
    shared(&journal);
    shared(&factum::MemorySnapshots::new());
    // A clone of a store sees the same events; a clone of a repository the same state.
    let copy = repo.clone();
    copy.send(add("a", 2)).await.unwrap();
    assert_eq!(repo.state(&"a".to_string()).await.unwrap().0.value, 2);
    assert_eq!(stored(&journal.clone(), "counter-a").await.len(), 1);
}

// The durable stores are `Clone + Send + Sync` handles too (checked at compile time).
#[cfg(feature = "sqlite")]
const _: fn() = || {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<factum::SqliteJournal>();
};
#[cfg(feature = "postgres")]
const _: fn() = || {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<factum::PostgresJournal>();
};
