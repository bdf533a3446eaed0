//! The story of `cargo run --example bank`, run several times on one SQLite file: every
//! later run recovers the accounts (from a snapshot and the events after it) and goes on.
//! The same on the custom store of `cargo run --example custom_journal`.

#[path = "../examples/bank/domain.rs"]
mod domain;
#[path = "../examples/custom_journal/jsonl.rs"]
mod jsonl;
#[path = "../examples/bank/story.rs"]
mod story;
mod support;

use std::io::Write;
use std::path::Path;

#[cfg(feature = "sqlite")]
async fn run(path: &Path) -> String {
    let journal = factum::SqliteJournal::open(path).await.expect("open");
    let mut out = Vec::new();
    story::run(journal.clone(), journal, &mut out)
        .await
        .expect("the story runs");
    String::from_utf8(out).expect("utf-8")
}

fn assert_lines(out: &str, expected: &[&str]) {
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    for line in expected {
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().eq(line.split_whitespace())),
            "missing `{line}` in:\n{out}"
        );
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_story_runs_twice_and_recovers() {
    let path = support::sqlite_path("example-bank");

    let first = run(&path).await;
    assert_lines(
        &first,
        &[
            "open account alice for Alice -> Opened, version 1",
            "open account bob for Bob -> Opened, version 1",
            "deposit 100 to alice at version 1 -> Deposited, version 2",
            "retry deposit-alice-1 -> same receipt, version 2: deduplicated",
            "deposit 5 to alice at version 1 -> conflict: alice is at version 2",
            "deposit 5 to alice at version 2 -> Deposited, version 3",
            "transfer 30 from alice to bob -> alice: money-withdrawn, version 4; bob: Deposited, version 2",
            "transfer 31 from bob to alice -> rejected: insufficient funds: the balance is 30",
            "balance of alice: 75 EUR (version 4)",
            "balance of bob: 30 EUR (version 2)",
        ],
    );

    let second = run(&path).await;
    assert_lines(
        &second,
        &[
            "recovered account alice -> from snapshot at 3 + 1 event: version 4, balance 75 EUR",
            "recovered account bob -> from 2 events (no snapshot yet): version 2, balance 30 EUR",
            "retry transfer-alice-4 (last run) -> same receipt, version 2: deduplicated",
            "deposit 100 to alice at version 4 -> Deposited, version 5",
            "balance of alice: 150 EUR (version 7)",
            "balance of bob: 60 EUR (version 3)",
        ],
    );
    assert!(!second.contains("open account"), "{second}");

    let third = run(&path).await;
    assert_lines(
        &third,
        &["recovered account alice -> from snapshot at 6 + 1 event: version 7, balance 150 EUR"],
    );
    support::remove_sqlite(&path);
}

async fn run_jsonl(path: &Path) -> String {
    let journal = jsonl::JsonlJournal::open(path).expect("open");
    let mut out = Vec::new();
    story::run(journal.clone(), journal, &mut out)
        .await
        .expect("the story runs");
    String::from_utf8(out).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_journal_recovers_from_its_file_and_cuts_a_torn_line() {
    let path = support::sqlite_path("example-jsonl").with_extension("jsonl");
    run_jsonl(&path).await;

    // A crash in the middle of a write leaves half a line: it is cut off on open.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"op":"write","persistence_id":"account-alice","ev"#)
        .unwrap();
    drop(file);

    let second = run_jsonl(&path).await;
    assert_lines(
        &second,
        &[
            "recovered account alice -> from snapshot at 3 + 1 event: version 4, balance 75 EUR",
            "recovered account bob -> from 2 events (no snapshot yet): version 2, balance 30 EUR",
            "retry transfer-alice-4 (last run) -> same receipt, version 2: deduplicated",
            "balance of alice: 150 EUR (version 7)",
        ],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n') && !text.contains(r#""ev{"#), "{text}");
    let _ = std::fs::remove_file(&path);
}
