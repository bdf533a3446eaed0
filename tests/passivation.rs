//! Passivation: idle aggregates leave memory; the number held is bounded; an evicted
//! aggregate comes back with its state.

mod common;

use std::time::Duration;

use common::*;
use factum::{MemoryJournal, Repository};

#[tokio::test]
async fn max_in_memory_bounds_the_aggregates_held() {
    let repo: Repository<Counter> = Repository::builder(MemoryJournal::new())
        .max_in_memory(100)
        .build();
    for round in 1..=2 {
        for i in 0..1000 {
            repo.send(add(&i.to_string(), 1)).await.unwrap();
            assert!(repo.in_memory() <= 100, "{} in memory", repo.in_memory());
        }
        for i in [0, 500, 999] {
            let (state, version) = repo.state(&i.to_string()).await.unwrap();
            assert_eq!((state.value, version), (round, round as u64));
        }
    }
}

/// Past the bound, the least recently used go first: a tenth of the bound's aggregates,
/// used in every round, are never evicted (never recovered again) while new ones pass
/// through, a round of them after each round of the warm ones. With 4,096 a shard holds
/// about 128 and gives up its oldest eight at once.
#[tokio::test]
async fn max_in_memory_evicts_the_least_recently_used() {
    for max in [640, 4096] {
        let journal = Faulty::new(MemoryJournal::new());
        let repo: Repository<Counter> = Repository::builder(journal.clone())
            .max_in_memory(max)
            .build();
        let warm = max / 10;
        let rounds = 3 * max / warm;
        for round in 0..rounds {
            for w in 0..warm {
                repo.send(add(&format!("warm-{w}"), 1)).await.unwrap();
            }
            for c in 0..warm {
                repo.send(add(&format!("cold-{round}-{c}"), 1))
                    .await
                    .unwrap();
            }
            assert!(repo.in_memory() <= max, "{} in memory", repo.in_memory());
        }
        // One recovery read for each aggregate's first command, none for a warm one again.
        assert_eq!(
            journal.reads(),
            warm + rounds * warm,
            "max_in_memory({max})"
        );
        assert!(
            repo.in_memory() > max * 9 / 10,
            "{} in memory",
            repo.in_memory()
        );
    }
}

#[tokio::test]
async fn idle_aggregates_are_passivated_after_the_idle_time() {
    let repo: Repository<Counter> = Repository::builder(MemoryJournal::new())
        .passivate_after(Duration::from_millis(20))
        .build();
    for i in 0..50 {
        repo.send(add(&i.to_string(), 1)).await.unwrap();
    }
    assert_eq!(repo.in_memory(), 50);
    // The sweep runs every 10 ms; give it up to 10 s on a loaded machine.
    for _ in 0..1000 {
        if repo.in_memory() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(repo.in_memory(), 0);
    assert_eq!(repo.send(add("7", 1)).await.unwrap().version, 2);
}

/// Aggregates only ever read with `state` are passivated by time too.
#[tokio::test]
async fn aggregates_only_read_are_passivated_after_the_idle_time() {
    let journal = MemoryJournal::new();
    Repository::<Counter>::new(journal.clone())
        .send(add("a", 1))
        .await
        .unwrap();
    let repo: Repository<Counter> = Repository::builder(journal)
        .passivate_after(Duration::from_millis(20))
        .build();
    assert_eq!(repo.state(&"a".to_string()).await.unwrap().1, 1);
    assert_eq!(repo.in_memory(), 1);
    for _ in 0..1000 {
        if repo.in_memory() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(repo.in_memory(), 0);
}

#[tokio::test]
async fn passivate_idle_evicts_and_the_state_comes_back() {
    let repo: Repository<Counter> = Repository::new(MemoryJournal::new());
    repo.send(add("a", 3)).await.unwrap();
    repo.passivate_idle();
    assert_eq!(repo.in_memory(), 0);
    let (state, version) = repo.state(&"a".to_string()).await.unwrap();
    assert_eq!((state.value, version, state.applied), (3, 1, 1));
}

/// The idle sweep takes only what no command touched for a whole period: an aggregate
/// in use stays (it never needs recovering), an idle one goes.
#[tokio::test]
async fn the_sweep_keeps_aggregates_in_use() {
    let journal = Faulty::new(MemoryJournal::new());
    let repo: Repository<Counter> = Repository::builder(journal.clone())
        .passivate_after(Duration::from_millis(300))
        .build();
    repo.send(add("cold", 1)).await.unwrap();
    repo.send(add("hot", 1)).await.unwrap();
    let reads = journal.reads();
    // Touch `hot` every 5 ms until `cold` is gone (at most 10 s on a loaded machine).
    let mut sent = 1;
    for _ in 0..2000 {
        if repo.in_memory() == 1 {
            break;
        }
        repo.send(add("hot", 1)).await.unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(repo.in_memory(), 1, "the idle aggregate was not passivated");
    assert_eq!(
        journal.reads(),
        reads,
        "the aggregate in use was passivated and recovered"
    );
    assert_eq!(repo.state(&"hot".to_string()).await.unwrap().1, sent);
}
