//! A payload corrupted in the database directly yields `Error::Decode` naming the
//! persistence id and sequence number, for that aggregate only; others keep working. A
//! command id corrupted likewise is an `Error::Journal` for its aggregate only.

mod support;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use factum::{Error, Journal, Repository};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use support::{Account, Deposit};

/// Two accounts with two deposits each; then `corrupt` damages `account-bad` #2; then a
/// fresh repository (nothing in memory) must fail on `bad` only.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn check<J: Journal + Clone>(journal: J, corrupt: impl AsyncFnOnce()) {
    let before: Repository<Account> = Repository::new(journal.clone());
    for account in ["bad", "good"] {
        before.send(Deposit::new(account, 10)).await.unwrap();
        before.send(Deposit::new(account, 20)).await.unwrap();
    }
    drop(before);
    corrupt().await;

    let accounts: Repository<Account> = Repository::new(journal);
    for _ in 0..2 {
        match accounts.send(Deposit::new("bad", 1)).await {
            Err(Error::Decode(error)) => {
                assert_eq!(error.persistence_id, "account-bad");
                assert_eq!(error.sequence_nr, 2);
                assert_eq!(error.manifest, "deposited");
                let message = Error::<String>::Decode(error).to_string();
                assert!(message.contains("account-bad"), "{message}");
                assert!(message.contains('2'), "{message}");
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
        assert!(matches!(
            accounts.state(&"bad".to_owned()).await,
            Err(Error::Decode(_))
        ));
    }
    let receipt = accounts.send(Deposit::new("good", 5)).await.unwrap();
    assert_eq!(receipt.version, 3);
    let (state, _) = accounts.state(&"good".to_owned()).await.unwrap();
    assert_eq!(state.balance, 35);
    let fresh_account = accounts.send(Deposit::new("new", 1)).await.unwrap();
    assert_eq!(fresh_account.version, 1);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corrupt_payload_is_a_decode_error_for_that_aggregate_only() {
    use support::{remove_sqlite, sqlite_path};
    let path = sqlite_path("corrupt");
    let journal = factum::SqliteJournal::open(&path).await.unwrap();
    check(journal, async || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let changed = conn
            .execute(
                "UPDATE factum_events SET payload = ?1 WHERE sequence_nr = ?3 AND stream = \
                 (SELECT id FROM factum_streams WHERE persistence_id = ?2)",
                rusqlite::params!["{\"amount\": not json", "account-bad", 2],
            )
            .unwrap();
        assert_eq!(changed, 1);
    })
    .await;
    remove_sqlite(&path);
}

/// A command id that is not UTF-8 (a row damaged by hand) is a journal error for its
/// aggregate, not an id read lossily that a resend of the command would no longer match.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corrupt_command_id_is_a_journal_error_for_that_aggregate_only() {
    use support::{remove_sqlite, sqlite_path};
    let path = sqlite_path("corrupt-command-id");
    let journal = factum::SqliteJournal::open(&path).await.unwrap();
    let before: Repository<Account> = Repository::new(journal.clone());
    for account in ["bad", "good"] {
        let mut deposit = Deposit::new(account, 10);
        deposit.request_id = Some(format!("req-{account}"));
        before.send(deposit).await.unwrap();
    }
    drop(before);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed = conn
        .execute(
            "UPDATE factum_events SET command_id = X'FF72' WHERE stream = \
             (SELECT id FROM factum_streams WHERE persistence_id = 'account-bad')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    let accounts: Repository<Account> = Repository::new(journal);
    match accounts.send(Deposit::new("bad", 1)).await {
        Err(error @ Error::Journal { .. }) => {
            let message = error.to_string();
            assert!(message.contains("account-bad"), "{message}");
            assert!(message.contains("command id is not UTF-8"), "{message}");
        }
        other => panic!("expected a journal error, got {other:?}"),
    }
    let mut resend = Deposit::new("good", 10);
    resend.request_id = Some("req-good".into());
    let receipt = accounts.send(resend).await.unwrap();
    assert_eq!(receipt.version, 1, "deduplicated after the restart");
    remove_sqlite(&path);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_corrupt_payload_is_a_decode_error_for_that_aggregate_only() {
    use support::{drop_schema, postgres_client, postgres_url, unique};
    let Some(url) = postgres_url() else { return };
    let schema = unique("factum_t_corrupt");
    let journal = factum::PostgresJournal::connect_with_schema(&url, &schema)
        .await
        .unwrap();
    check(journal, async || {
        let client = postgres_client(&url, &schema).await;
        let changed = client
            .execute(
                "UPDATE factum_events SET payload = $1 \
                 WHERE persistence_id = $2 AND sequence_nr = $3",
                &[&"{\"amount\": not json", &"account-bad", &2i64],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
    })
    .await;
    drop_schema(&url, &schema).await;
}
