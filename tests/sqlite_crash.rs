//! Crash safety of `SqliteJournal`: a child process sends commands and prints each
//! acknowledged receipt; the test kills it with SIGKILL mid-stream, reopens the file, and
//! finds every acknowledged event, in order, and no partial batch.
//!
//! The child is this test binary itself, re-run with `FACTUM_CRASH_CHILD` set to the
//! database path and filtered to the `crash_child` test.
#![cfg(feature = "sqlite")]

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};

use factum::{Journal, Repository, SqliteJournal};
use support::{Account, Deposit, Deposited, remove_sqlite, sqlite_path};

/// Tasks in the child, each with its own account, so that their writes share commits.
const TASKS: u64 = 8;
/// Events per command: a partial batch would leave a stream at a non-multiple of this.
const SPLIT: u32 = 3;
/// Acknowledged receipts the parent reads before it kills the child.
const KILL_AFTER: usize = 300;

/// The child: sends deposits forever, printing `ack <account> <version> <amount>` once each
/// is acknowledged. Does nothing unless run by `sigkill_loses_no_acknowledged_event`.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("FACTUM_CRASH_CHILD") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let journal = SqliteJournal::open(&path).await.expect("open");
        let accounts: Repository<Account> = Repository::new(journal);
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let accounts = accounts.clone();
                tokio::spawn(async move {
                    let account = format!("crash-{task}");
                    for amount in 1.. {
                        let mut deposit = Deposit::new(&account, amount);
                        deposit.split = SPLIT;
                        let receipt = accounts.send(deposit).await.expect("deposit");
                        // One line per receipt, written whole, only after it is durable.
                        println!("ack {account} {} {amount}", receipt.version);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_event() {
    let path = sqlite_path("crash");
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("FACTUM_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");

    // account -> (highest acknowledged version, its amount)
    let mut acked: HashMap<String, (u64, u64)> = HashMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut count = 0;
    while count < KILL_AFTER {
        let line = lines
            .next()
            .expect("the child stopped before it was killed")
            .unwrap();
        let Some(rest) = line.strip_prefix("ack ") else {
            continue; // the test harness's own lines
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let (version, amount) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let entry = acked.entry(fields[0].to_owned()).or_default();
        assert!(version > entry.0, "receipts of one account arrive in order");
        *entry = (version, amount);
        count += 1;
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();

    let journal = SqliteJournal::open(&path)
        .await
        .expect("reopen after the crash");
    let mut beyond = 0;
    for task in 0..TASKS {
        let account = format!("crash-{task}");
        let pid = format!("account-{account}");
        let events = journal.read(&pid, 1, u64::MAX, usize::MAX).await.unwrap();
        let highest = journal.highest_sequence_nr(&pid).await.unwrap();
        assert_eq!(events.len() as u64, highest, "{pid}: no gap");
        assert_eq!(highest % u64::from(SPLIT), 0, "{pid}: no partial batch");
        for (i, record) in events.iter().enumerate() {
            assert_eq!(record.sequence_nr, i as u64 + 1, "{pid}: in order");
            let event: Deposited = serde_json::from_slice(&record.payload).unwrap();
            let command = i as u64 / u64::from(SPLIT) + 1;
            assert_eq!(
                event.amount,
                command,
                "{pid} #{}: the commands' order",
                i + 1
            );
        }
        if let Some(&(version, amount)) = acked.get(&account) {
            assert!(
                highest >= version,
                "{pid}: acknowledged version {version} (amount {amount}) lost; journal has {highest}"
            );
            beyond += highest - version;
        }
    }
    // The state recovers from the file, too.
    let accounts: Repository<Account> = Repository::new(journal.clone());
    for (account, &(version, amount)) in &acked {
        let (state, at) = accounts.state(account).await.unwrap();
        assert!(at >= version);
        assert!(state.balance >= amount * (amount + 1) / 2 * u64::from(SPLIT));
    }
    eprintln!(
        "{count} receipts acknowledged before SIGKILL, all found; {beyond} more events were durable but unacknowledged"
    );
    drop(accounts);
    drop(journal);
    remove_sqlite(&path);
}

/// The file is in WAL mode, and what it holds is readable with plain SQL (as with the
/// `sqlite3` shell): JSON payloads, tags as a JSON array.
#[tokio::test]
async fn file_is_wal_and_readable_with_sql() {
    let path = sqlite_path("layout");
    let journal = SqliteJournal::open(&path).await.unwrap();
    let accounts: Repository<Account> = Repository::new(journal.clone());
    accounts.send(Deposit::new("sql", 42)).await.unwrap();
    drop(accounts);
    drop(journal);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4, "schema version");
    let (payload, tags, manifest): (String, String, String) = conn
        .query_row(
            "SELECT payload, tags, manifest FROM factum_journal WHERE persistence_id = ?1",
            ["account-sql"],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(payload, r#"{"amount":42}"#);
    assert_eq!(tags, r#"["account"]"#);
    assert_eq!(manifest, "deposited");
    drop(conn);
    remove_sqlite(&path);
}

/// Dropping the last handle stops the writer thread and closes every connection: SQLite
/// then checkpoints the WAL into the file and removes it. Clones share one writer.
#[tokio::test]
async fn dropping_the_last_handle_closes_the_file_cleanly() {
    let path = sqlite_path("close");
    let wal = {
        let mut name = path.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    let journal = SqliteJournal::open(&path).await.unwrap();
    let clone = journal.clone();
    let accounts: Repository<Account> = Repository::new(clone.clone());
    accounts.send(Deposit::new("close", 1)).await.unwrap();
    assert_eq!(
        journal.highest_sequence_nr("account-close").await.unwrap(),
        1
    );
    drop(accounts);
    drop(journal);
    assert!(wal.exists(), "a clone is still open");
    assert_eq!(clone.highest_sequence_nr("account-close").await.unwrap(), 1);
    drop(clone);
    assert!(
        !wal.exists(),
        "the WAL is checkpointed and removed on close"
    );

    let reopened = SqliteJournal::open(&path).await.unwrap();
    assert_eq!(
        reopened.highest_sequence_nr("account-close").await.unwrap(),
        1
    );
    drop(reopened);
    remove_sqlite(&path);
}
