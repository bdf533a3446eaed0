//! The macro-generated bank account costs the same as the hand-written one: the same
//! workload through a `Repository` over a `MemoryJournal`, and the event codec alone.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::bank::{Account, AccountCommand, AccountEvent, AccountId};
use common::hand::{HandAccount, HandEvent, to_hand};
use criterion::{Criterion, criterion_group, criterion_main};
use factum::{Aggregate, Event, MemoryJournal, Repository};

const COMMANDS: usize = 10_000;
const ACCOUNTS: usize = 100;

/// 10k commands over 100 accounts: opens, deposits with command ids, transfers.
fn workload() -> Vec<AccountCommand> {
    let id = |n: usize| AccountId(format!("acc-{}", n % ACCOUNTS));
    (0..COMMANDS)
        .map(|n| match n {
            n if n < ACCOUNTS => AccountCommand::Open {
                account_id: id(n),
                owner: format!("owner {n}"),
            },
            n if n % 3 == 0 => AccountCommand::Transfer {
                from: id(n),
                to: id(n + 1),
                amount: 1,
            },
            n => AccountCommand::Deposit {
                account_id: id(n),
                amount: 10,
                version: None,
                request_id: format!("req-{n}"),
            },
        })
        .collect()
}

fn repository(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let commands = workload();
    let hand_commands: Vec<_> = commands.iter().map(to_hand).collect();
    let mut group = c.benchmark_group("repository_10k_commands");
    group.sample_size(10);
    group.bench_function("macro", |b| {
        b.iter(|| runtime.block_on(run_all::<Account>(commands.clone())));
    });
    group.bench_function("hand", |b| {
        b.iter(|| runtime.block_on(run_all::<HandAccount>(hand_commands.clone())));
    });
    group.finish();
}

/// Sends every command, each account's in order, accounts concurrently.
async fn run_all<A: Aggregate>(commands: Vec<A::Command>) -> usize
where
    A::Command: Send,
{
    let repository: Repository<A> = Repository::new(MemoryJournal::new());
    let mut tasks = Vec::with_capacity(ACCOUNTS);
    let mut per_account: Vec<Vec<A::Command>> = (0..ACCOUNTS).map(|_| Vec::new()).collect();
    for (n, command) in commands.into_iter().enumerate() {
        per_account[n % ACCOUNTS].push(command);
    }
    for commands in per_account {
        let repository = repository.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for command in commands {
                ok += usize::from(repository.send(command).await.is_ok());
            }
            ok
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    black_box(ok)
}

fn events() -> (Vec<AccountEvent>, Vec<HandEvent>) {
    let by_macro = vec![
        AccountEvent::Opened {
            owner: "Ada Lovelace".into(),
        },
        AccountEvent::Deposited {
            amount: 1_000,
            currency: "EUR".into(),
        },
        AccountEvent::Withdrawn { amount: 250 },
    ];
    let by_hand = vec![
        HandEvent::Opened {
            owner: "Ada Lovelace".into(),
        },
        HandEvent::Deposited {
            amount: 1_000,
            currency: "EUR".into(),
        },
        HandEvent::Withdrawn { amount: 250 },
    ];
    (by_macro, by_hand)
}

fn codec<E: Event>(events: &[E]) {
    for event in events {
        let payload = event.encode().unwrap();
        let decoded = E::decode(event.manifest(), event.version(), &payload).unwrap();
        black_box((decoded, event.tags()));
    }
}

fn encode_decode(c: &mut Criterion) {
    let (by_macro, by_hand) = events();
    let mut group = c.benchmark_group("encode_decode_3_events");
    group.bench_function("macro", |b| b.iter(|| codec(black_box(&by_macro))));
    group.bench_function("hand", |b| b.iter(|| codec(black_box(&by_hand))));
    group.finish();
}

criterion_group!(benches, repository, encode_decode);
criterion_main!(benches);
