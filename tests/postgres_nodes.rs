//! Several processes on one Postgres database serving the same aggregates: two
//! `Repository` instances, each with its own `PostgresJournal` (own connection pool), play
//! the two nodes, while a projection pages through `read_all` and must get every event
//! once. Needs `FACTUM_TEST_POSTGRES` (skipped without it, except under `CI=true`).
#![cfg(feature = "postgres")]

mod support;

use std::collections::HashMap;

use factum::{Error, Journal, PostgresJournal, Repository};
use support::{Account, Deposit, drop_schema, postgres_url, unique};

const TASKS: u64 = 16;
const AGGREGATES: u64 = 20;
const DEPOSITS_PER_TASK: u64 = 25;

async fn node(url: &str, schema: &str) -> (Repository<Account>, PostgresJournal) {
    let journal = PostgresJournal::connect_with_schema(url, schema)
        .await
        .expect("connect");
    (Repository::new(journal.clone()), journal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sixteen_tasks_same_twenty_aggregates() {
    let Some(url) = postgres_url() else { return };
    sixteen_tasks_on_two_nodes(&url).await;
}

/// The same on a database whose default isolation level is SERIALIZABLE: the journal
/// pins READ COMMITTED, under which a lost race is a unique violation (a conflict the
/// gateway retries), not a serialization failure (an error the caller would get).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_a_serializable_database() {
    let Some(url) = postgres_url() else { return };
    let separator = if url.contains('?') { '&' } else { '?' };
    let serializable =
        format!("{url}{separator}options=-c%20default_transaction_isolation%3Dserializable");
    sixteen_tasks_on_two_nodes(&serializable).await;
}

async fn sixteen_tasks_on_two_nodes(url: &str) {
    let url = url.to_owned();
    let schema = unique("factum_t_nodes");
    let nodes = [node(&url, &schema).await.0, node(&url, &schema).await.0];

    // A projection pages through `read_all` while the nodes write, then to the end.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let projection = tokio::spawn({
        let journal = node(&url, &schema).await.1;
        let writing = std::sync::Arc::clone(&writing);
        async move {
            let (mut after, mut seen) = (0, Vec::new());
            loop {
                let done = !writing.load(std::sync::atomic::Ordering::SeqCst);
                let page = journal.read_all(after, 25).await.expect("read_all");
                for event in &page {
                    assert!(event.position > after, "positions increase");
                    after = event.position;
                    seen.push((event.persistence_id.to_string(), event.sequence_nr));
                }
                if page.is_empty() {
                    if done {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    });

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let repo = nodes[(task % 2) as usize].clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut lost_races = 0;
                for i in 0..DEPOSITS_PER_TASK {
                    let account = format!("acc-{}", (task * 7 + i) % AGGREGATES);
                    let amount = task * 1000 + i + 1;
                    match repo.send(Deposit::new(&account, amount)).await {
                        Ok(receipt) => acked.push((account, amount, receipt.version)),
                        // Out of retries: nothing was written.
                        Err(Error::Conflict { .. }) => lost_races += 1,
                        Err(other) => panic!("deposit on {account}: {other}"),
                    }
                }
                (acked, lost_races)
            })
        })
        .collect();

    let mut expected: HashMap<String, (u64, u64)> = HashMap::new();
    let mut versions: HashMap<String, Vec<u64>> = HashMap::new();
    let mut lost_races = 0;
    for task in tasks {
        let (acked, lost) = task.await.expect("task");
        lost_races += lost;
        for (account, amount, version) in acked {
            let entry = expected.entry(account.clone()).or_default();
            entry.0 += amount;
            entry.1 += 1;
            versions.entry(account).or_default().push(version);
        }
    }

    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut seen = projection.await.expect("projection");
    seen.sort();
    let mut journal_events: Vec<(String, u64)> = expected
        .iter()
        .flat_map(|(account, &(_, count))| {
            (1..=count).map(move |seq| (format!("account-{account}"), seq))
        })
        .collect();
    journal_events.sort();
    assert_eq!(seen, journal_events, "the projection got every event once");

    // A third node recovers every aggregate from the journal alone.
    let (fresh, journal) = node(&url, &schema).await;
    for n in 0..AGGREGATES {
        let account = format!("acc-{n}");
        let (sum, count) = expected.get(&account).copied().unwrap_or_default();
        let (state, version) = fresh.state(&account).await.expect("recover");
        assert_eq!(
            state.balance, sum,
            "{account}: every acknowledged deposit, once"
        );
        assert_eq!(
            version, count,
            "{account}: one event per acknowledged deposit"
        );
        let pid = format!("account-{account}");
        let events = journal.read(&pid, 1, u64::MAX, usize::MAX).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.sequence_nr).collect();
        assert_eq!(
            seqs,
            (1..=count).collect::<Vec<_>>(),
            "{account}: versions without gap"
        );
        let mut acked = versions.remove(&account).unwrap_or_default();
        acked.sort_unstable();
        assert_eq!(acked, seqs, "{account}: each receipt names its own version");
        let writers: std::collections::HashSet<_> =
            events.iter().map(|e| e.writer_id.clone()).collect();
        assert!(writers.len() <= 2, "written by the two nodes");
    }
    eprintln!(
        "{} deposits acknowledged, {lost_races} gave up after conflict_retries",
        expected.values().map(|v| v.1).sum::<u64>()
    );
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_race_retries_without_expected_version_and_conflicts_with_one() {
    let Some(url) = postgres_url() else { return };
    let schema = unique("factum_t_race");
    let (a, _) = node(&url, &schema).await;
    let (b, _) = node(&url, &schema).await;

    assert_eq!(a.send(Deposit::new("x", 10)).await.unwrap().version, 1);
    // b writes version 2 behind a's back: a's in-memory state is now stale at 1.
    assert_eq!(b.send(Deposit::new("x", 5)).await.unwrap().version, 2);

    // With an expected version, a's stale write loses the race: Error::Conflict.
    let mut guarded = Deposit::new("x", 7);
    guarded.expected_version = Some(1);
    match a.send(guarded).await {
        Err(Error::Conflict {
            persistence_id,
            expected,
            actual,
        }) => {
            assert_eq!(persistence_id, "account-x");
            assert_eq!(expected, 1);
            assert_eq!(actual, 2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // b moves on again; a (stale again or reloaded) retries a plain command until it lands.
    assert_eq!(b.send(Deposit::new("x", 1)).await.unwrap().version, 3);
    let receipt = a.send(Deposit::new("x", 100)).await.unwrap();
    assert_eq!(receipt.version, 4, "reloaded and retried");
    let (state, version) = b.state(&"x".to_owned()).await.unwrap();
    assert_eq!(version, 3, "b still holds its own state in memory");
    assert_eq!(state.balance, 16);
    b.passivate_idle();
    let (state, version) = b.state(&"x".to_owned()).await.unwrap();
    assert_eq!(
        (state.balance, version),
        (116, 4),
        "nothing lost, nothing doubled"
    );
    drop_schema(&url, &schema).await;
}

/// The server drops the pool's connection: at most the call on that connection fails, and
/// the next call reconnects. Nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_drops_the_connection() {
    let Some(url) = postgres_url() else { return };
    let schema = unique("factum_t_reconnect");
    let app = unique("factum_app");
    let separator = if url.contains('?') { '&' } else { '?' };
    let journal = PostgresJournal::builder(&format!("{url}{separator}application_name={app}"))
        .schema(&schema)
        .pool_size(1)
        .connect()
        .await
        .expect("connect");
    let accounts: Repository<Account> = Repository::new(journal.clone());
    accounts.send(Deposit::new("r", 1)).await.unwrap();

    let admin = support::postgres_client(&url, &schema).await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "the pool's one connection");

    let mut failures = 0;
    let receipt = loop {
        match accounts.send(Deposit::new("r", 2)).await {
            Ok(receipt) => break receipt,
            Err(Error::Journal { .. }) if failures == 0 => failures += 1,
            Err(other) => panic!("after {failures} failures: {other}"),
        }
    };
    assert_eq!(receipt.version, 2);
    assert_eq!(journal.highest_sequence_nr("account-r").await.unwrap(), 2);
    drop_schema(&url, &schema).await;
}

/// `PostgresJournal::connect(url)`, the constructor DESIGN.md names, keeps the tables
/// where the connection's `search_path` puts them: here a schema of the test's own, set
/// through the URL's `options`, so that the test leaves nothing in a shared schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_a_plain_url_creates_the_tables_and_serves_commands() {
    let Some(url) = postgres_url() else { return };
    let schema = unique("factum_t_connect");
    support::postgres_client(&url, "public")
        .await
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .expect("create the schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    let with_path = format!("{url}{separator}options=-csearch_path%3D{schema}");

    let journal = PostgresJournal::connect(&with_path).await.expect("connect");
    let repo: Repository<Account> = Repository::new(journal.clone());
    assert_eq!(repo.send(Deposit::new("a", 5)).await.unwrap().version, 1);
    assert_eq!(repo.send(Deposit::new("a", 7)).await.unwrap().version, 2);
    drop(repo);

    // A second connection (a restart) finds the tables and the events.
    let again: Repository<Account> = Repository::new(
        PostgresJournal::connect(&with_path)
            .await
            .expect("reconnect"),
    );
    let (state, version) = again.state(&"a".to_string()).await.unwrap();
    assert_eq!(version, 2);
    assert_eq!(state.balance, 12);
    let tables: i64 = support::postgres_client(&url, &schema)
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tables >= 2, "the tables are in the URL's schema: {tables}");
    drop(journal);
    drop_schema(&url, &schema).await;
}

/// An event of `pid` at `seq`, tagged `t`.
fn tagged_part(pid: &str, seq: u64) -> factum::AtomicWrite {
    let event = factum::EventRecord {
        persistence_id: pid.into(),
        sequence_nr: seq,
        manifest: "thing-happened".into(),
        version: 1,
        payload: b"{}".to_vec(),
        tags: factum::Tags::fixed(&["t"]),
        command_id: None,
        timestamp: 1_700_000_000_000,
        writer_id: "writer".into(),
        position: 0,
    };
    factum::AtomicWrite {
        persistence_id: pid.into(),
        events: vec![event],
    }
}

/// Makes an insert of stream `held` wait, once its row has its position, until `client`
/// releases the advisory lock `key` it takes here (a trigger waits for it).
async fn hold_inserts_of_held(client: &tokio_postgres::Client, key: i64) {
    client
        .batch_execute(&format!(
            "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.persistence_id = 'held' THEN PERFORM pg_advisory_xact_lock({key}); \
                 END IF; \
                 RETURN NEW; \
             END $$; \
             CREATE TRIGGER hold BEFORE INSERT ON factum_events \
                 FOR EACH ROW EXECUTE FUNCTION hold(); \
             SELECT pg_advisory_lock({key});"
        ))
        .await
        .unwrap();
}

/// The pid of the session waiting for the test's advisory lock `key` (so holding a write
/// of stream `held`), once there is one, for at most ten seconds.
async fn held_by(client: &tokio_postgres::Client, key: i64) -> i32 {
    let waiting = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                   AND classid = 0 AND objid = $1::int8::oid AND objsubid = 1";
    poll("a write is held", async || {
        let row = client.query_opt(waiting, &[&key]).await.unwrap();
        row.map(|row| row.get::<_, i32>(0))
    })
    .await
}

/// Polls until `task` has finished or `sessions` sessions wait for a writer lock of this
/// schema's events table (see `PostgresJournal`), for at most ten seconds.
async fn until_done_or_waiting<T>(
    client: &tokio_postgres::Client,
    task: &tokio::task::JoinHandle<T>,
    sessions: i64,
) {
    let waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                   AND objsubid = 2 AND classid = 'factum_events'::regclass::oid";
    poll("a task finishes or waits", async || {
        let n: i64 = client.query_one(waiting, &[]).await.unwrap().get(0);
        (task.is_finished() || n >= sessions).then_some(())
    })
    .await
}

/// Calls `f` every 10 ms until it answers, for at most ten seconds.
async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(answer) = f().await {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A reader that pages through `read_all` or `read_tag` never skips an event: a write
/// that drew a lower position and commits later is seen before any higher position.
/// The first write here is held after its row has its position (a trigger waits for an
/// advisory lock of the test's), while a second write of another stream goes on; reads
/// then wait for the first, and a third write is not held back by them. The first write
/// takes the one-statement path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_skips_a_position_that_commits_late() {
    let Some(url) = postgres_url() else { return };
    never_skips(&url, 4242, None).await;
}

/// The same, the first write taking the batched path: another part of its batch does not
/// continue its stream, so the one-statement path writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_skips_a_late_position_of_the_batched_path() {
    let Some(url) = postgres_url() else { return };
    never_skips(&url, 4243, Some(tagged_part("a-stale", 5))).await;
}

/// The same, the first write taking the part-by-part path: another part of its batch has
/// a payload the server refuses (a NUL character), which fails the batched statements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_skips_a_late_position_of_the_part_by_part_path() {
    let Some(url) = postgres_url() else { return };
    let mut refused = tagged_part("a-refused", 1);
    refused.events[0].payload = b"\"\0\"".to_vec();
    never_skips(&url, 4244, Some(refused)).await;
}

/// `held` (with `other`, a part that fails, in its batch) is held while `free` is written;
/// `key` is the test's own advisory lock (tests run at once on one database).
async fn never_skips(url: &str, key: i64, other: Option<factum::AtomicWrite>) {
    let schema = unique("factum_t_order");
    let journal = PostgresJournal::connect_with_schema(url, &schema)
        .await
        .expect("connect");
    let client = support::postgres_client(url, &schema).await;
    hold_inserts_of_held(&client, key).await;

    let held = tokio::spawn({
        let journal = journal.clone();
        let batch = std::iter::once(tagged_part("held", 1))
            .chain(other)
            .collect();
        async move { journal.write(batch).await }
    });
    held_by(&client, key).await;
    let free = tokio::spawn({
        let journal = journal.clone();
        async move { journal.write(vec![tagged_part("free", 1)]).await }
    });
    // The second write either commits or waits for the first (for its position).
    until_done_or_waiting(&client, &free, 1).await;
    // Reads that start now either return at once or wait for the first write.
    let early_all = tokio::spawn({
        let journal = journal.clone();
        async move { journal.read_all(0, 100).await }
    });
    until_done_or_waiting(&client, &early_all, 1).await;
    let early_tag = tokio::spawn({
        let journal = journal.clone();
        async move { journal.read_tag("t", 0, 100).await }
    });
    let waiting = if early_all.is_finished() { 1 } else { 2 };
    until_done_or_waiting(&client, &early_tag, waiting).await;

    // A read that waits holds no write back: a third write goes through meanwhile.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        journal.write(vec![tagged_part("later", 1)]),
    )
    .await
    .expect("a write waited for a read")
    .into_iter()
    .for_each(|result| result.expect("the third write"));

    client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    let early_all = early_all.await.unwrap().unwrap();
    let early_tag = early_tag.await.unwrap().unwrap();
    let held = held.await.unwrap();
    assert!(held[0].is_ok(), "{held:?}");
    assert!(held[1..].iter().all(Result::is_err), "{held:?}");
    assert!(free.await.unwrap().into_iter().all(|r| r.is_ok()));

    for (early, late) in [
        (
            early_all.clone(),
            journal
                .read_all(early_all.last().map_or(0, |e| e.position), 100)
                .await
                .unwrap(),
        ),
        (
            early_tag.clone(),
            journal
                .read_tag("t", early_tag.last().map_or(0, |e| e.position), 100)
                .await
                .unwrap(),
        ),
    ] {
        let pids: Vec<&str> = early
            .iter()
            .chain(&late)
            .map(|e| &*e.persistence_id)
            .collect();
        assert_eq!(
            pids,
            ["held", "free", "later"],
            "read while the first write was held: {early:?}, then: {late:?}"
        );
    }
    drop_schema(url, &schema).await;
}

/// A batch on the part-by-part path whose connection dies in the middle (here while a part
/// is being inserted, so that rolling back to its savepoint fails too): every part fails,
/// also the one written before in the same transaction, and nothing is in the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_savepoint_cannot_be_rolled_back_fails_every_part() {
    let Some(url) = postgres_url() else { return };
    let schema = unique("factum_t_savepoint");
    let journal = PostgresJournal::connect_with_schema(&url, &schema)
        .await
        .expect("connect");
    let client = support::postgres_client(&url, &schema).await;
    hold_inserts_of_held(&client, 4343).await;
    // In persistence-id order: `a-ok` is written, `a-refused` (a NUL character, which
    // also fails the batched statements) is refused on its own, `held` waits.
    let mut refused = tagged_part("a-refused", 1);
    refused.events[0].payload = b"\"\0\"".to_vec();
    let batch = vec![tagged_part("held", 1), refused, tagged_part("a-ok", 1)];
    let write = tokio::spawn({
        let journal = journal.clone();
        async move { journal.write(batch).await }
    });
    let pid = held_by(&client, 4343).await;
    client
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();

    let results = write.await.unwrap();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(Result::is_err), "{results:?}");
    for pid in ["a-ok", "a-refused", "held"] {
        assert_eq!(journal.highest_sequence_nr(pid).await.unwrap(), 0, "{pid}");
    }
    drop_schema(&url, &schema).await;
}
