//! Micro-benchmarks of the pieces a command goes through: the event codec, `handle` +
//! `apply`, the dedupe window, a journal append batch, and snapshot-first recovery.
//! Whole-workload figures come from `examples/loadgen.rs` (see BENCHMARKS.md).
#![allow(missing_docs)]

#[path = "support/domain.rs"]
mod domain;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use domain::{Bank, generated};
use factum::{
    Aggregate, AtomicWrite, Event, EventRecord, Journal, MemoryJournal, MemorySnapshots,
    Repository, SnapshotPolicy, SnapshotRecord, SnapshotStore, Tags,
};

type Account = generated::Account;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn codec(c: &mut Criterion) {
    let event = generated::Deposited { amount: 42 };
    let payload = event.encode().expect("encode");
    c.bench_function("codec/encode", |b| b.iter(|| black_box(&event).encode()));
    c.bench_function("codec/decode", |b| {
        b.iter(|| generated::Deposited::decode("Deposited", 1, black_box(&payload)))
    });
}

fn handle_apply(c: &mut Criterion) {
    let state = Account::default();
    c.bench_function("handle+apply", |b| {
        b.iter_batched(
            || (state.clone(), Account::deposit(0, None)),
            |(mut state, command)| {
                for event in state.handle(command).expect("handle") {
                    state.apply(&event);
                }
                state
            },
            BatchSize::SmallInput,
        )
    });
}

/// A repeated command id: found in the window, its receipt read back from the journal.
fn dedupe(c: &mut Criterion) {
    let rt = runtime();
    for window in [128usize, 4096] {
        let repo = Repository::<Account>::builder(MemoryJournal::new())
            .dedupe_window(window)
            .build();
        rt.block_on(async {
            for i in 0..window {
                repo.send(Account::deposit(0, Some(format!("req-{i}"))))
                    .await
                    .expect("deposit");
            }
        });
        let id = format!("req-{}", window / 2);
        c.bench_function(&format!("dedupe/hit/window_{window}"), |b| {
            b.iter(|| {
                rt.block_on(repo.send(Account::deposit(0, Some(id.clone()))))
                    .expect("repeat")
            })
        });
    }
}

fn record(pid: &Arc<str>, sequence_nr: u64) -> EventRecord {
    EventRecord {
        persistence_id: Arc::clone(pid),
        sequence_nr,
        manifest: "Deposited".into(),
        version: 1,
        payload: br#"{"amount":1}"#.to_vec(),
        tags: Tags::fixed(&["account"]),
        command_id: None,
        timestamp: 0,
        writer_id: Arc::from("bench"),
        position: 0,
    }
}

/// One journal call with 64 aggregates' parts of one event each.
fn append_batch(c: &mut Criterion) {
    let rt = runtime();
    let pids: Vec<Arc<str>> = (0..64).map(|i| Arc::from(format!("account-{i}"))).collect();
    let mut group = c.benchmark_group("append_batch_64");
    let memory = MemoryJournal::new();
    let mut next = 0;
    group.bench_function("memory", |b| {
        b.iter_batched(
            || {
                next += 1;
                pids.iter()
                    .map(|pid| AtomicWrite {
                        persistence_id: Arc::clone(pid),
                        events: vec![record(pid, next)],
                    })
                    .collect::<Vec<_>>()
            },
            |batch| rt.block_on(memory.write(batch)),
            BatchSize::SmallInput,
        )
    });
    #[cfg(feature = "sqlite")]
    {
        let dir = std::env::temp_dir().join(format!("factum-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sqlite = rt
            .block_on(factum::SqliteJournal::open(dir.join("append.db")))
            .expect("open");
        let mut next = 0;
        group.sample_size(20);
        group.bench_function("sqlite_fsync", |b| {
            b.iter_batched(
                || {
                    next += 1;
                    pids.iter()
                        .map(|pid| AtomicWrite {
                            persistence_id: Arc::clone(pid),
                            events: vec![record(pid, next)],
                        })
                        .collect::<Vec<_>>()
                },
                |batch| rt.block_on(sqlite.write(batch)),
                BatchSize::SmallInput,
            )
        });
        drop(sqlite);
        let _ = std::fs::remove_dir_all(dir);
    }
    group.finish();
}

/// Recovery of one aggregate from a snapshot at 100,000 and a 500-event tail, against a
/// full replay of 100,500 events.
fn recovery(c: &mut Criterion) {
    let rt = runtime();
    let journal = MemoryJournal::new();
    let snapshots = MemorySnapshots::new();
    let pid: Arc<str> = Arc::from("account-acc-0");
    rt.block_on(async {
        for chunk in 0..10u64 {
            let events = (1..=10_050)
                .map(|i| record(&pid, chunk * 10_050 + i))
                .collect();
            let part = AtomicWrite {
                persistence_id: Arc::clone(&pid),
                events,
            };
            assert!(journal.write(vec![part]).await[0].is_ok());
        }
        let payload = br#"{"state":{"balance":100000},"dedupe":[]}"#.to_vec();
        let snapshot = SnapshotRecord {
            persistence_id: Arc::clone(&pid),
            sequence_nr: 100_000,
            version: 1,
            payload,
            timestamp: 0,
        };
        snapshots.save(snapshot).await.expect("save");
    });
    let id = "acc-0".to_string();
    let mut group = c.benchmark_group("recovery_100k");
    group.sample_size(20);
    group.bench_function("snapshot_and_500_tail", |b| {
        b.iter(|| {
            let repo = Repository::<Account>::builder(journal.clone())
                .snapshots(snapshots.clone(), SnapshotPolicy::Every(1_000))
                .build();
            rt.block_on(repo.state(&id)).expect("recover")
        })
    });
    group.bench_function("full_replay", |b| {
        b.iter(|| {
            let repo = Repository::<Account>::new(journal.clone());
            rt.block_on(repo.state(&id)).expect("recover")
        })
    });
    group.finish();
}

criterion_group!(benches, codec, handle_apply, dedupe, append_batch, recovery);
criterion_main!(benches);
