//! The builder's defaults, as a user sees them: `Repository::new` keeps 16 recoveries
//! at a time and retries a lost write race 10 times, waiting longer each time. (The
//! default dedupe window, 1,024 ids, is in `dedupe.rs`.)

mod common;

use std::time::Duration;

use common::*;
use factum::{Error, MemoryJournal, Repository};

/// Lets the spawned tasks run until the number of reads held at the gate stops growing.
async fn settle(journal: &Faulty) -> usize {
    let mut last = usize::MAX;
    loop {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let held = journal.reads_held();
        if held == last {
            return held;
        }
        last = held;
    }
}

async fn recoveries_at_once(build: impl Fn(Faulty) -> Repository<Counter>) -> usize {
    let journal = Faulty::new(MemoryJournal::new());
    journal.gate_all_reads();
    let repo = build(journal.clone());
    let recoveries: Vec<_> = (0..40)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.state(&i.to_string()).await })
        })
        .collect();
    let at_once = settle(&journal).await;
    journal.release_reads();
    for recovery in recoveries {
        assert_eq!(recovery.await.unwrap().unwrap().1, 0);
    }
    at_once
}

#[tokio::test]
async fn sixteen_recoveries_run_at_once_by_default() {
    assert_eq!(recoveries_at_once(Repository::new).await, 16);
    let two = |journal| Repository::builder(journal).recovery_permits(2).build();
    assert_eq!(recoveries_at_once(two).await, 2);
}

/// A command without an expected version that keeps losing its write race is tried 11
/// times (10 retries), with a growing wait between tries (exponential from 2 ms, at most
/// 128 ms, plus jitter), then returns the conflict.
#[tokio::test(start_paused = true)]
async fn a_lost_race_is_retried_ten_times_with_backoff() {
    let journal = Faulty::new(MemoryJournal::new());
    for n in 1..=20 {
        journal.fail(n, Fault::Conflict);
    }
    let repo: Repository<Counter> = Repository::new(journal.clone());
    let start = tokio::time::Instant::now();
    let error = repo.send(add("a", 1)).await.unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
    assert_eq!(journal.writes(), 11);
    // 2 + 4 + ... + 128 ms, then 128 ms three times more, before jitter.
    let floor = Duration::from_millis(2 + 4 + 8 + 16 + 32 + 64 + 128 * 4);
    assert!(waited >= floor, "waited {waited:?}");
    assert!(waited < floor * 2, "waited {waited:?}");

    // A command with an expected version is never retried.
    let before = journal.writes();
    let error = repo.send(add("b", 1).expect(0)).await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error:?}");
    assert_eq!(journal.writes(), before + 1);
}
