//! The macro-generated bank account and the hand-written one behave identically: same
//! replies, same records in the journal, same states.
#![allow(missing_docs)]

mod common;

use common::bank::{Account, AccountCommand, AccountId};
use common::hand::{HandAccount, to_hand};
use factum::{Aggregate, Command, Event, Journal, MemoryJournal, Repository};

fn id(s: &str) -> AccountId {
    AccountId(s.to_owned())
}

fn script() -> Vec<AccountCommand> {
    let mut commands = Vec::new();
    for (n, name) in ["a", "b"].into_iter().enumerate() {
        commands.push(AccountCommand::Open {
            account_id: id(name),
            owner: name.into(),
        });
        commands.push(AccountCommand::Open {
            account_id: id(name),
            owner: name.into(),
        });
        for k in 0..5u64 {
            commands.push(AccountCommand::Deposit {
                account_id: id(name),
                amount: k * 10,
                version: if k == 3 { Some(1) } else { None },
                request_id: format!("{name}-{}", k % 3),
            });
        }
        commands.push(AccountCommand::Transfer {
            from: id(name),
            to: id("x"),
            amount: 15 + n as u64,
        });
        commands.push(AccountCommand::Transfer {
            from: id(name),
            to: id("x"),
            amount: 10_000,
        });
        commands.push(AccountCommand::Deposit {
            account_id: id(name),
            amount: common::bank::LIMIT,
            version: None,
            request_id: format!("{name}-limit"),
        });
    }
    commands.push(AccountCommand::Deposit {
        account_id: id("c"),
        amount: 1,
        version: None,
        request_id: "c".into(),
    });
    commands
}

#[tokio::test]
async fn macro_and_hand_written_behave_identically() {
    let (macro_journal, hand_journal) = (MemoryJournal::new(), MemoryJournal::new());
    let by_macro: Repository<Account> = Repository::new(macro_journal.clone());
    let by_hand: Repository<HandAccount> = Repository::new(hand_journal.clone());

    for command in script() {
        let hand = to_hand(&command);
        assert_eq!(command.aggregate_id(), hand.aggregate_id());
        assert_eq!(command.expected_version(), hand.expected_version());
        assert_eq!(command.command_id(), hand.command_id());
        assert!(command.retry_copy().is_some() && hand.retry_copy().is_some());

        let (a, b) = (by_macro.send(command).await, by_hand.send(hand).await);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.version, b.version);
                let a: Vec<_> = a
                    .events
                    .iter()
                    .map(|e| (e.manifest(), e.version(), e.encode().unwrap()))
                    .collect();
                let b: Vec<_> = b
                    .events
                    .iter()
                    .map(|e| (e.manifest(), e.version(), e.encode().unwrap()))
                    .collect();
                assert_eq!(a, b);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("macro: {a:?}, hand: {b:?}"),
        }
    }

    let strip = |mut records: Vec<factum::EventRecord>| {
        for r in &mut records {
            r.timestamp = 0;
            r.writer_id = "w".into();
        }
        records
    };
    let macro_records = strip(macro_journal.read_all(0, 1000).await.unwrap());
    let hand_records = strip(hand_journal.read_all(0, 1000).await.unwrap());
    assert!(!macro_records.is_empty());
    assert_eq!(macro_records, hand_records);

    for name in ["a", "b", "c"] {
        let (a, va) = by_macro.state(&id(name)).await.unwrap();
        let (b, vb) = by_hand.state(&id(name)).await.unwrap();
        assert_eq!(va, vb);
        assert_eq!(a.encode_snapshot().unwrap(), b.encode_snapshot().unwrap());
    }
    assert_eq!(Account::NAME, HandAccount::NAME);
    assert_eq!(Account::SNAPSHOT_VERSION, HandAccount::SNAPSHOT_VERSION);
}
