//! The bank account of DESIGN.md end to end over a `MemoryJournal`.
#![allow(missing_docs)]

mod common;

use common::bank::{Account, AccountCommand, AccountError, AccountEvent, AccountId};
use factum::{Aggregate, Error, Event, Journal, MemoryJournal, Receipt, Repository};

fn id(s: &str) -> AccountId {
    AccountId(s.to_owned())
}

#[tokio::test]
async fn bank_example_end_to_end() {
    let journal = MemoryJournal::new();
    let accounts: Repository<Account> = Repository::new(journal.clone());

    let open = AccountCommand::Open {
        account_id: id("a1"),
        owner: "Ada".into(),
    };
    // A receipt is named by its aggregate, as DESIGN.md writes it: `Vec<A::Event>`.
    let receipt: Receipt<Account> = accounts.send(open).await.unwrap();
    assert_eq!(receipt.version, 1);
    assert_eq!(
        receipt.events,
        vec![AccountEvent::Opened {
            owner: "Ada".into()
        }]
    );

    let deposit = AccountCommand::Deposit {
        account_id: id("a1"),
        amount: 100,
        version: Some(1),
        request_id: "req-1".into(),
    };
    let receipt = accounts.send(deposit.clone()).await.unwrap();
    assert_eq!(receipt.version, 2);
    // The same command id again: the first receipt, nothing written.
    assert_eq!(accounts.send(deposit).await.unwrap(), receipt);

    // A stale expected version is a conflict.
    let stale = AccountCommand::Deposit {
        account_id: id("a1"),
        amount: 5,
        version: Some(1),
        request_id: "req-2".into(),
    };
    assert!(matches!(
        accounts.send(stale).await,
        Err(Error::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));

    let transfer = AccountCommand::Transfer {
        from: id("a1"),
        to: id("b2"),
        amount: 30,
    };
    assert_eq!(accounts.send(transfer).await.unwrap().version, 3);

    // Domain errors and invariants.
    let too_much = AccountCommand::Transfer {
        from: id("a1"),
        to: id("b2"),
        amount: 1000,
    };
    assert!(matches!(
        accounts.send(too_much).await,
        Err(Error::Domain(AccountError::Insufficient { balance: 70 }))
    ));
    let over_limit = AccountCommand::Deposit {
        account_id: id("a1"),
        amount: common::bank::LIMIT,
        version: None,
        request_id: "req-3".into(),
    };
    assert!(matches!(
        accounts.send(over_limit).await,
        Err(Error::Domain(AccountError::OverLimit))
    ));

    let (state, version) = accounts.state(&id("a1")).await.unwrap();
    assert_eq!(version, 3);
    assert_eq!(
        state,
        Account {
            balance: 70,
            owner: Some("Ada".into())
        }
    );

    // Stored as DESIGN.md says: persistence id, manifests, versions, tags, readable JSON.
    let records = journal.read_all(0, 100).await.unwrap();
    let stored: Vec<_> = records
        .iter()
        .map(|r| {
            (
                &*r.persistence_id,
                r.sequence_nr,
                &*r.manifest,
                r.version,
                String::from_utf8(r.payload.clone()).unwrap(),
                r.tags.iter().map(str::to_owned).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            (
                "account-a1",
                1,
                "Opened",
                1,
                r#"{"owner":"Ada"}"#.to_owned(),
                vec!["account".to_owned()]
            ),
            (
                "account-a1",
                2,
                "Deposited",
                2,
                r#"{"amount":100,"currency":"EUR"}"#.to_owned(),
                vec!["account".to_owned(), "large".to_owned()]
            ),
            (
                "account-a1",
                3,
                "money-withdrawn",
                1,
                r#"{"amount":30}"#.to_owned(),
                vec!["account".to_owned()]
            ),
        ]
    );
    assert_eq!(records[1].command_id.as_deref(), Some("req-1"));

    // A new repository over the same journal recovers the same state.
    let again: Repository<Account> = Repository::new(journal);
    assert_eq!(again.state(&id("a1")).await.unwrap(), (state, 3));
}

#[tokio::test]
async fn snapshots_round_trip() {
    assert_eq!(Account::SNAPSHOT_VERSION, Some(1));
    let state = Account {
        balance: 5,
        owner: Some("Bo".into()),
    };
    let value = state.encode_snapshot().unwrap();
    assert_eq!(value, serde_json::json!({ "balance": 5, "owner": "Bo" }));
    assert_eq!(Account::decode_snapshot(value).unwrap(), state);

    let journal = MemoryJournal::new();
    let snapshots = factum::MemorySnapshots::new();
    let accounts: Repository<Account> = Repository::builder(journal.clone())
        .snapshots(snapshots.clone(), factum::SnapshotPolicy::Every(2))
        .build();
    accounts
        .send(AccountCommand::Open {
            account_id: id("s"),
            owner: "Cy".into(),
        })
        .await
        .unwrap();
    for n in 0..3 {
        let deposit = AccountCommand::Deposit {
            account_id: id("s"),
            amount: 10,
            version: None,
            request_id: format!("d{n}"),
        };
        accounts.send(deposit).await.unwrap();
    }
    let recovered: Repository<Account> = Repository::builder(journal)
        .snapshots(snapshots, factum::SnapshotPolicy::Every(2))
        .build();
    let (state, version) = recovered.state(&id("s")).await.unwrap();
    assert_eq!((state.balance, version), (30, 4));
}

#[test]
fn names_and_defaults() {
    assert_eq!(Account::NAME, "account");
    assert_eq!(Account::persistence_id(&id("x")), "account-x");
    let event = AccountEvent::Withdrawn { amount: 1 };
    assert_eq!((event.manifest(), event.version()), ("money-withdrawn", 1));
    // Hand-written methods in the `#[aggregate]` block stay callable.
    assert!(!Account::default().is_open());
}
