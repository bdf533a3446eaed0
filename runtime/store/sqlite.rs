//! [`SqliteJournal`]: the embedded, durable store. One file holds the journal and the
//! snapshots.
//!
//! # Layout
//!
//! The file is in WAL mode, and a write is acknowledged only after the log holding its
//! commit is synced, so it survives a crash or a power loss (see "Durability" below). Its
//! tables (schema version 4, kept in `PRAGMA user_version`, created on open; a version 1,
//! 2 or 3 file is migrated in the transaction that opens it):
//!
//! - `factum_streams (id, persistence_id, highest)`: one row per stream, its integer `id`
//!   the key that events are indexed by (an integer compares and stores cheaper than the
//!   persistence id's text); `highest` is the stream's highest sequence number when its
//!   events were last deleted, so that deleting never lowers it (a stream's highest is
//!   the larger of this and its newest event's);
//! - `factum_events`: one row per event, keyed by `position` (the global order): `stream`,
//!   `sequence_nr`, `manifest`, `version`, `payload` (JSON text), `tags` (a JSON array),
//!   `command_id`, `timestamp` (milliseconds since the Unix epoch) and `writer_id`;
//! - `factum_stream_index (stream, sequence_nr, position)`: the index for reading a
//!   stream, which lags the journal (see "The stream index" below);
//! - `factum_positions (highest, merged)`: one row: the highest position when the newest
//!   events were deleted, and the last position merged into the stream index. Positions
//!   are never given twice: the writer numbers events after the larger of `highest` and
//!   the newest event's (an `AUTOINCREMENT` key would do the same at the cost of a table
//!   update per insert);
//! - `factum_event_tags (tag, position)`: the index for reading by tag, which lags the
//!   journal like the stream index;
//! - `factum_snapshots (persistence_id, sequence_nr, version, payload, timestamp)`;
//! - the view `factum_journal`: the events with their persistence ids.
//!
//! So `sqlite3 bank.db "select persistence_id, sequence_nr, manifest, payload from
//! factum_journal"` shows the events.
//!
//! # The stream and tag indexes
//!
//! A commit appends its events at the end of `factum_events` and touches no index: with
//! many streams, each command would otherwise dirty a stream index page of its own, and a
//! commit's log grow with the index; and a tag index row costs a commit a page of its own
//! too (D1 in BENCHMARKS.md). The writer merges the events into `factum_stream_index` and
//! `factum_event_tags` once [`SqliteBuilder::index_batch`] of them (32,768 by default) are
//! unmerged, in one sorted pass per index in a transaction of its own, and records the
//! last merged position in `factum_positions.merged`.
//!
//! Reads stay exact. Each connection (the writer's and each reader thread's) keeps the
//! events after the last merge by stream (and a reader's, by tag too), catching up on
//! those written since it last looked by reading the events after the last position it
//! saw (positions only grow). A stream's read takes, in one read transaction, the merge
//! position, its merged events from the index and its later ones by position; a read by
//! tag does the same with the tag index. The writer checks each part against
//! its stream's highest number in the index and in what it keeps, which it brings up to
//! date at the start of a transaction whenever another connection wrote (`PRAGMA
//! data_version`); the write lock keeps that check true until the commit.
//!
//! # Prepared statements
//!
//! The hot queries are cached prepared statements, written so that SQLite does not
//! re-prepare them on every use: with the bundled build's STAT4, a plain `?` compared with
//! an indexed column or used as a `LIMIT` makes the plan depend on the bound value, and
//! rusqlite's statement cache clears bindings, which then forces a re-parse each time
//! (about a third of the writer's time). `CAST(?1 AS TEXT)` and `(SELECT ?2)` keep the
//! same index searches without that dependence.
//!
//! # Writing
//!
//! One thread per handle family owns the write connection and takes its work from a
//! channel. It drains everything queued into one `BEGIN IMMEDIATE` transaction, so the
//! gateway hands it each aggregate's write as soon as it is ready
//! ([`Journal::groups_writes`]). Each aggregate's part is checked against its stream's
//! highest number before any of it is written (the transaction holds the write lock, so
//! the check stays true; see "The stream index" above): a part whose sequence numbers
//! are taken is refused alone as a [`JournalError::Conflict`]; the others commit. The
//! writer remembers the id and highest number of the streams it wrote lately and the last
//! position it gave, so that checking and numbering a part costs no query, and forgets
//! them all when `PRAGMA data_version` shows that another connection wrote to the file,
//! or when a transaction fails. A part that would start a stream the writer does not know
//! adds the stream first, and looks it up only if it was there already. The event insert
//! keeps its bindings from one event to the next and binds again only the values that
//! changed (the manifest, the tags, the writer usually do not).
//! Several processes (or several handles) may write to one file: SQLite's lock
//! serializes their transactions.
//!
//! # Durability
//!
//! SQLite commits without syncing the log (`synchronous = NORMAL`, which still syncs it
//! before each checkpoint), and factum syncs the log file (`fdatasync`) itself after the
//! commit: a write is answered only once a sync that started after its commit returned.
//! With group commit a sync thread does this, and the writer commits the next jobs
//! meanwhile; one sync covers every commit before it. A commit that no job waits behind,
//! made while no sync runs, the writer syncs itself: the hop to the sync thread would only
//! add its wake-up to a lone client's wait. `synchronous = FULL` would sync inside the
//! commit, with the write lock held and the writer idle, and with `fsync`, which also
//! writes the file's times. The log is sequential and checksummed, so a commit that
//! survives a crash brings every earlier one with it. The writer also keeps 4 MiB of
//! zeroes written ahead at the end of the log, so that commits write over space the file
//! already has and their syncs write no new size and blocks (the ext4 journal commit that
//! a growing file costs each sync). D1 in BENCHMARKS.md ran 1.33 times as fast with both
//! as with `synchronous = FULL`.
//!
//! A read returns only durable events: a committed event that no sync has covered yet
//! (its sync is still running) makes the reader sync the log itself before it answers
//! (`highest_sequence_nr` does the same for every event its read saw). Opening a file
//! syncs its log once (its last writer may have stopped before a sync), so that reads of
//! what it held need no sync. When a sync fails, the writes it was to cover fail with
//! [`JournalError::Unknown`], the journal takes no more writes (a failed sync may have
//! dropped log pages, and with them every later commit), and reads refuse the events no
//! sync covered; opening the file again recovers what reached the disk.
//!
//! # Reading
//!
//! Reads run on up to four reader threads, each with a connection of its own, kept open;
//! they take reads from one queue and start as reads need them. A read hops to a thread
//! that is already waiting instead of going through Tokio's blocking pool: 10,000
//! aggregates recovered after a restart by 64 tasks at once came back 2.6 times as fast
//! (BENCHMARKS.md, the cold start).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{
    CachedStatement, Connection, ErrorCode, OptionalExtension, Row, Statement, TransactionBehavior,
    params,
};
use tokio::sync::oneshot;

use crate::hash::KeyedState;

use super::sql::{
    check_sequence, clamp_i64, conflict, corrupt, limit, parse_tags, payload_text, tags_json,
    to_i64, to_u32, to_u64,
};
use super::{
    AtomicWrite, BoxFuture, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore,
};

/// The schema version this code writes and reads (`PRAGMA user_version`). Version 1, 2 and 3
/// files are migrated on open. Version 3 has the same tables, but indexed each event's
/// tags as it was committed: its tag index holds rows above the merge position, which a
/// merge leaves as they are. The version changed so that an older build, which reads a
/// tag from the index alone and would miss the unmerged events, refuses the file.
const SCHEMA_VERSION: i64 = 4;

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many queued jobs share one transaction.
const MAX_JOBS: usize = 1024;

/// Reader threads: at most this many reads run at once, each thread on a connection of
/// its own, kept open (opening one parses the schema; reusing one keeps its prepared
/// statements). Threads start as reads need them and stop with the journal.
const MAX_READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS factum_streams (
    id             INTEGER PRIMARY KEY,
    persistence_id TEXT    NOT NULL UNIQUE,
    highest        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS factum_events (
    position    INTEGER PRIMARY KEY,
    stream      INTEGER NOT NULL,
    sequence_nr INTEGER NOT NULL,
    manifest    TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    payload     TEXT    NOT NULL,
    tags        TEXT    NOT NULL DEFAULT '[]',
    command_id  TEXT,
    timestamp   INTEGER NOT NULL,
    writer_id   TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS factum_stream_index (
    stream      INTEGER NOT NULL,
    sequence_nr INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (stream, sequence_nr)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS factum_positions (
    highest INTEGER NOT NULL,
    merged  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO factum_positions (highest) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM factum_positions);
CREATE TABLE IF NOT EXISTS factum_event_tags (
    tag      TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS factum_snapshots (
    persistence_id TEXT    NOT NULL,
    sequence_nr    INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    timestamp      INTEGER NOT NULL,
    PRIMARY KEY (persistence_id, sequence_nr)
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS factum_journal AS
    SELECT e.position, s.persistence_id, e.sequence_nr, e.manifest, e.version, e.payload,
           e.tags, e.command_id, e.timestamp, e.writer_id
    FROM factum_events e JOIN factum_streams s ON s.id = e.stream;
";

/// From schema version 1 (`factum_events` keyed by the persistence id's text, its
/// positions from `AUTOINCREMENT`) to 2, in the transaction that opens the file. The tag
/// index and the snapshots keep their tables; positions keep their numbers.
const MIGRATE_V1: &str = "
ALTER TABLE factum_events RENAME TO factum_events_v1;
ALTER TABLE factum_streams RENAME TO factum_streams_v1;
";

/// The second half of the migration, after [`SCHEMA`] created the new tables.
const MIGRATE_V1_COPY: &str = "
INSERT INTO factum_streams (persistence_id, highest)
    SELECT persistence_id, MAX(highest) FROM (
        SELECT DISTINCT persistence_id, 0 AS highest FROM factum_events_v1
        UNION ALL SELECT persistence_id, highest FROM factum_streams_v1
    ) GROUP BY persistence_id ORDER BY persistence_id;
INSERT INTO factum_events (position, stream, sequence_nr, manifest, version, payload, tags,
                           command_id, timestamp, writer_id)
    SELECT e.position, s.id, e.sequence_nr, e.manifest, e.version, e.payload, e.tags,
           e.command_id, e.timestamp, e.writer_id
    FROM factum_events_v1 e JOIN factum_streams s ON s.persistence_id = e.persistence_id
    ORDER BY e.position;
DROP TABLE factum_events_v1;
DROP TABLE factum_streams_v1;
";

/// From schema version 2 (`factum_events` with a `UNIQUE (stream, sequence_nr)` key) to
/// 3 (the events table alone, and [`factum_stream_index`](SCHEMA) merged in batches), in
/// the transaction that opens the file. The view goes first, since it names the table
/// that is renamed; [`SCHEMA`] then makes the new tables and the view, and
/// [`MIGRATE_V2_COPY`] moves the events.
const MIGRATE_V2: &str = "
DROP VIEW IF EXISTS factum_journal;
ALTER TABLE factum_events RENAME TO factum_events_v2;
ALTER TABLE factum_positions ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
";

/// The second half of the migration from version 2, after [`SCHEMA`] made the new tables.
const MIGRATE_V2_COPY: &str = "
INSERT INTO factum_events (position, stream, sequence_nr, manifest, version, payload, tags,
                           command_id, timestamp, writer_id)
    SELECT position, stream, sequence_nr, manifest, version, payload, tags, command_id,
           timestamp, writer_id
    FROM factum_events_v2 ORDER BY position;
DROP TABLE factum_events_v2;
";

/// Merges the events after the last merge, up to `?2`, into the stream index; `?1` is the
/// last merged position. In position order: the transaction writes each index page it
/// changes once however many of its rows change, and sorting the rows by the index's key
/// first cost more than it saved. A row whose stream and number are indexed already (two
/// events with one number, which only a file changed by hand can hold) is left out
/// rather than failing every merge from then on: `OR IGNORE`, which also spares the
/// statement a journal of its own (together 20–28 % of a merge; BENCHMARKS.md).
const MERGE: &str = "INSERT OR IGNORE INTO factum_stream_index (stream, sequence_nr, position) \
     SELECT stream, sequence_nr, position FROM factum_events \
     WHERE position > (SELECT ?1) AND position <= (SELECT ?2)";

/// The newest event's position (0 for an empty journal).
const NEWEST_POSITION: &str = "SELECT coalesce(MAX(position), 0) FROM factum_events";

/// The last position merged into the stream index (0 if the row is missing: then every
/// event is looked at as if unmerged, which is slow but right).
const MERGED: &str = "SELECT coalesce(MAX(merged), 0) FROM factum_positions";

/// The events after position `?1`, up to `?2`: their positions and tags.
const EVENTS_BETWEEN: &str = "SELECT position, tags FROM factum_events \
     WHERE position > (SELECT ?1) AND position <= (SELECT ?2)";

/// The events after position `?1`, oldest first: what a [`Tail`] has not seen.
const UNSEEN: &str = "SELECT position, stream, sequence_nr FROM factum_events \
     WHERE position > (SELECT ?1) ORDER BY position";

/// [`UNSEEN`] with the events' tags, for a tail that keeps them.
const UNSEEN_TAGGED: &str = "SELECT position, stream, sequence_nr, tags FROM factum_events \
     WHERE position > (SELECT ?1) ORDER BY position";

/// How many events, by default, the stream and tag indexes lag the journal at most before
/// the writer merges them into them ([`SqliteBuilder::index_batch`]). A merge rewrites
/// most of the stream index's leaves however few events it brings: at W2's 200,000
/// commands, 32,768 made D1 1.06–1.14 times as fast as 8,192, for merges a quarter as
/// frequent and three times as long (57 ms against 18; BENCHMARKS.md).
const INDEX_BATCH: usize = 32_768;

const INSERT_EVENT: &str = "INSERT INTO factum_events (position, stream, sequence_nr, manifest, \
     version, payload, tags, command_id, timestamp, writer_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Indexes tag `?1` at the positions listed in `?2` (a JSON array), in one statement: as
/// fast as multi-row `VALUES` lists, with no value bound per row. A row there already (a
/// version 3 file indexed tags at commit) is left as it is.
const INSERT_TAGGED: &str = "INSERT OR IGNORE INTO factum_event_tags (tag, position) \
     SELECT CAST(?1 AS TEXT), value FROM json_each(?2)";

/// Adds a stream, unless its persistence id has one (then it changes nothing).
const INSERT_STREAM: &str = "INSERT OR IGNORE INTO factum_streams (persistence_id) VALUES (?1)";

/// A stream's id and highest sequence number as far as the stream index knows: its newest
/// merged event's, or the one recorded when its events were deleted, whichever is larger
/// (the caller adds what its [`Tail`] knows). No row for an unknown stream.
const FIND_STREAM: &str = "SELECT s.id, MAX(s.highest, \
     coalesce((SELECT MAX(i.sequence_nr) FROM factum_stream_index i WHERE i.stream = s.id), 0)) \
     FROM factum_streams s WHERE s.persistence_id = CAST(?1 AS TEXT)";

/// A stream's highest sequence number from the tables alone, merged events or not (a scan
/// of the unmerged ones: for deletes, which are rare). `?1` is the stream's id.
const STREAM_HIGHEST: &str = "SELECT MAX(s.highest, \
     coalesce((SELECT MAX(i.sequence_nr) FROM factum_stream_index i WHERE i.stream = s.id), 0), \
     coalesce((SELECT MAX(e.sequence_nr) FROM factum_events e \
               WHERE e.position > (SELECT coalesce(MAX(merged), 0) FROM factum_positions) \
               AND e.stream = s.id), 0)) \
     FROM factum_streams s WHERE s.id = ?1";

/// The highest position ever given: the newest event's, or the one recorded when the
/// newest events were deleted, whichever is larger.
const LAST_POSITION: &str = "SELECT MAX(\
     coalesce((SELECT MAX(position) FROM factum_events), 0), \
     coalesce((SELECT MAX(highest) FROM factum_positions), 0))";

const EVENT_COLUMNS: &str = "e.position, s.persistence_id, e.sequence_nr, e.manifest, e.version, \
     e.payload, e.tags, e.command_id, e.timestamp, e.writer_id";

/// A [`Journal`] and [`SnapshotStore`] in one SQLite file (feature `sqlite`, on by
/// default). A cheap `Clone` handle: clones share the writer thread and the read
/// connections; the writer thread stops when the last clone is dropped.
///
/// See the [module documentation](self) for the tables and the write path.
#[derive(Clone)]
pub struct SqliteJournal {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Whether the writer thread commits everything queued together.
    group_commit: bool,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The reader threads and their queue.
    reads: Arc<Reads>,
    /// The log's sync, and how far it got.
    durability: Arc<Durability>,
}

type Reply<T> = oneshot::Sender<T>;

/// A write's answer: a result per part, and the parts themselves, so that they are freed
/// by the caller rather than by the writer thread (about 7 % of its time in D1).
type Written = (Vec<Result<(), JournalError>>, Vec<AtomicWrite>);

/// The result of [`check_values`] for each part of a write, `None` when every part passed:
/// the caller checks its parts (a payload's UTF-8 is most of it) off the writer thread.
type Checks = Option<Vec<Result<(), JournalError>>>;

/// Work for the writer thread.
enum Job {
    /// Parts to write, and the result of [`check_values`] for each, made by the caller
    /// (`None`: all passed).
    Write(Vec<AtomicWrite>, Checks, Reply<Written>),
    Delete(String, u64, Reply<Result<(), JournalError>>),
    Save(SnapshotRecord, Reply<Result<(), JournalError>>),
    Retain(String, usize, Reply<Result<(), JournalError>>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent across a panic (a channel, a handle, a list).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn backend(error: rusqlite::Error) -> JournalError {
    JournalError::backend(error)
}

fn stopped() -> JournalError {
    JournalError::Unknown("the SQLite writer thread stopped before answering".into())
}

/// Options for [`SqliteJournal`]; made by [`SqliteJournal::builder`].
#[derive(Debug, Clone)]
pub struct SqliteBuilder {
    path: PathBuf,
    group_commit: bool,
    index_batch: usize,
    /// Replaces the sync of the log (tests make it fail or wait).
    #[cfg(test)]
    sync: Option<fn() -> std::io::Result<()>>,
}

impl SqliteBuilder {
    /// Whether the writer thread commits everything queued in one transaction (default
    /// `true`), and a sync thread syncs the log for every commit made meanwhile. `false`
    /// commits each `write` call on its own and syncs the log after it, on the writer
    /// thread: one sync per call, only useful as a baseline in benchmarks.
    pub fn group_commit(mut self, group_commit: bool) -> Self {
        self.group_commit = group_commit;
        self
    }

    /// How many events the stream and tag indexes may lag the journal by (default 32,768;
    /// at least 1). Events are committed with their position only; the writer merges them
    /// into the `(stream, sequence_nr)` and `(tag, position)` indexes once this many are
    /// unmerged, in one pass each, so that a commit writes no index page and a merge
    /// writes each page once. Reads are exact at any lag: a stream's or a tag's unmerged
    /// events are found by position. A smaller batch writes more index pages per event
    /// once the indexes are large, but pauses writes for a shorter merge (at 200,000
    /// events over 10,000 streams, 18 ms at 8,192 against 57 ms at 32,768), and each
    /// connection keeps fewer unmerged events in memory.
    pub fn index_batch(mut self, events: usize) -> Self {
        self.index_batch = events.max(1);
        self
    }

    /// Opens the journal: see [`SqliteJournal::open`].
    pub async fn open(self) -> Result<SqliteJournal, JournalError> {
        SqliteJournal::open_with(self).await
    }
}

impl SqliteJournal {
    /// Opens (or creates) the database file at `path`, switches it to WAL, creates the
    /// schema if needed, and starts the writer thread (and with group commit, the thread
    /// that syncs the log: see the module's "Durability").
    ///
    /// Fails if the file holds a newer schema version than this version of factum knows.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteJournal, JournalError> {
        Self::builder(path).open().await
    }

    /// Starts configuring a journal at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteBuilder {
        SqliteBuilder {
            path: path.as_ref().to_path_buf(),
            group_commit: true,
            index_batch: INDEX_BATCH,
            #[cfg(test)]
            sync: None,
        }
    }

    async fn open_with(options: SqliteBuilder) -> Result<SqliteJournal, JournalError> {
        let SqliteBuilder {
            path,
            group_commit,
            index_batch,
            #[cfg(test)]
                sync: sync_hook,
        } = options;
        let max_jobs = if group_commit { MAX_JOBS } else { 1 };
        let opened = path.clone();
        let (conn, durability, space) = tokio::task::spawn_blocking(move || {
            let conn = open_writer(&opened)?;
            let log = open_log(&conn)?;
            let space = LogSpace::new(log.try_clone().map_err(JournalError::backend)?);
            #[allow(unused_mut)]
            let mut durability = Durability::new(log);
            #[cfg(test)]
            {
                durability.hook = sync_hook;
            }
            // What the file holds may not be durable yet (its last writer may have
            // stopped before its sync): one sync makes it so, and reads of it need none.
            let newest: i64 = conn
                .query_row(NEWEST_POSITION, [], |row| row.get(0))
                .map_err(backend)?;
            durability.committed.store(newest, Ordering::Release);
            durability.sync(newest).map_err(|reason| {
                JournalError::backend(std::io::Error::other(format!(
                    "cannot sync the SQLite log: {reason}"
                )))
            })?;
            Ok::<_, JournalError>((conn, Arc::new(durability), space))
        })
        .await
        .map_err(JournalError::backend)??;
        let log = if group_commit {
            let (committed, to_sync) = mpsc::channel();
            let (spare, spares) = mpsc::channel();
            let synced = Arc::clone(&durability);
            let thread = std::thread::Builder::new()
                .name("factum-sqlite-sync".into())
                .spawn(move || run_syncer(&synced, to_sync, spare))
                .map_err(JournalError::backend)?;
            Log::Pipelined {
                committed,
                spares,
                thread,
            }
        } else {
            Log::Inline
        };
        let synced = Arc::clone(&durability);
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("factum-sqlite-writer".into())
            .spawn(move || run_writer(conn, log, synced, space, rx, max_jobs, index_batch))
            .map_err(JournalError::backend)?;
        Ok(SqliteJournal {
            inner: Arc::new(Inner {
                path,
                group_commit,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                reads: Arc::default(),
                durability,
            }),
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Sends a job to the writer thread and waits for its answer.
    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job, dead: impl FnOnce() -> T) -> T {
        let (reply, answer) = oneshot::channel();
        let sent = match &*lock(&self.inner.jobs) {
            Some(jobs) => jobs.send(job(reply)).is_ok(),
            None => false,
        };
        if !sent {
            return dead();
        }
        answer.await.unwrap_or_else(|_| dead())
    }

    /// Runs `f` on a reader thread's connection, off the async threads.
    async fn read_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (reply, answer) = oneshot::channel();
        Reads::push(
            &self.inner.reads,
            &self.inner.path,
            Box::new(move |conn| {
                // A caller that went away no longer needs its answer.
                let _ = reply.send(conn.map_err(Clone::clone).and_then(f));
            }),
        );
        answer.await.unwrap_or_else(|_| Err(reader_stopped()))
    }
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The reader threads stop once they have run every read queued, and close their
        // connections before the writer closes its own: the last connection to close
        // checkpoints the WAL and removes it.
        self.reads.close();
        // Closing the channel ends the writer's loop once it has answered every job.
        lock(&self.jobs).take();
        if let Some(writer) = lock(&self.writer).take()
            && writer.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "the SQLite writer thread panicked");
        }
    }
}

fn open_writer(path: &Path) -> Result<Connection, JournalError> {
    let mut conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(corrupt(format!(
            "cannot switch `{}` to WAL mode (it is in `{mode}` mode)",
            path.display()
        )));
    }
    // `synchronous = NORMAL`: SQLite does not sync the WAL on commit (it still syncs it
    // before each checkpoint, and the file after it), because the writer syncs it itself
    // before it answers (see "Durability" above). A larger page cache keeps the indexes in
    // memory. The WAL is checkpointed every 10,000 pages (40 MiB) instead of 1,000: a
    // checkpoint copies each page once however often it was rewritten, and hot index pages
    // are rewritten often (D1 in BENCHMARKS.md: about 15 % faster).
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; \
         PRAGMA wal_autocheckpoint = 10000;",
    )
    .map_err(backend)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    match version {
        0 => tx.execute_batch(SCHEMA).map_err(backend)?,
        1 => migrate_v1(&tx)
            .and_then(|()| index_all(&tx))
            .map_err(backend)?,
        2 => migrate_v2(&tx)
            .and_then(|()| index_all(&tx))
            .map_err(backend)?,
        // Every event of a version 3 file has its tag rows already.
        3 | SCHEMA_VERSION => {}
        other => {
            return Err(corrupt(format!(
                "`{}` has schema version {other}; this version of factum knows {SCHEMA_VERSION}",
                path.display()
            )));
        }
    }
    if version != SCHEMA_VERSION {
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok(conn)
}

/// Migrates a version 1 file to version 2 (see [`MIGRATE_V1`]); the caller's transaction
/// makes it all or nothing.
fn migrate_v1(tx: &Connection) -> rusqlite::Result<()> {
    // Version 1 numbered positions with `AUTOINCREMENT`: the highest it ever gave may
    // belong to a deleted event, and must not be given again.
    let given: i64 = tx.query_row(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'factum_events'), 0)",
        [],
        |row| row.get(0),
    )?;
    tx.execute_batch(MIGRATE_V1)?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(MIGRATE_V1_COPY)?;
    tx.execute(
        "UPDATE factum_positions SET highest = MAX(highest, ?1)",
        [given],
    )?;
    tracing::info!("migrated the SQLite journal from schema version 1 to {SCHEMA_VERSION}");
    Ok(())
}

/// Migrates a version 2 file to version 3 (see [`MIGRATE_V2`]); the caller's transaction
/// makes it all or nothing.
fn migrate_v2(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute_batch(MIGRATE_V2)?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(MIGRATE_V2_COPY)?;
    tracing::info!("migrated the SQLite journal from schema version 2 to {SCHEMA_VERSION}");
    Ok(())
}

/// Indexes every event of a migrated file (whose stream index is empty).
fn index_all(tx: &Connection) -> rusqlite::Result<()> {
    let upto = tx.query_row(NEWEST_POSITION, [], |row| row.get(0))?;
    merge_into_index(tx, 0, upto)
}

/// Merges the events after position `merged`, up to `upto`, into the stream index and the
/// tag index, and records `upto` as the last merged position.
fn merge_into_index(tx: &Connection, merged: i64, upto: i64) -> rusqlite::Result<()> {
    let indexed = tx.prepare_cached(MERGE)?.execute(params![merged, upto])?;
    // By tag, each tag's positions in order; a tag repeated in one event once.
    let mut tagged: HashMap<Box<str>, Vec<i64>> = HashMap::new();
    let mut events_merged = 0;
    {
        let mut parser = TagParser::default();
        let mut select = tx.prepare_cached(EVENTS_BETWEEN)?;
        let mut events = select.query(params![merged, upto])?;
        while let Some(event) = events.next()? {
            events_merged += 1;
            let position: i64 = event.get(0)?;
            // An event whose tags are not a list of strings is not indexed (reading it
            // reports the corruption); it must not stop every later merge.
            let tags = match event.get_ref(1)? {
                ValueRef::Text(json) => parser.parse(json),
                _ => None,
            };
            let Some(tags) = tags else {
                tracing::warn!(position, "an event's tags are corrupt; not indexed");
                continue;
            };
            for tag in tags {
                add_tagged(&mut tagged, tag, position);
            }
        }
    }
    if indexed < events_merged {
        tracing::error!(
            merged,
            upto,
            left_out = events_merged - indexed,
            "events share a stream and a sequence number with earlier ones; \
             the stream index keeps the earlier"
        );
    }
    // In the index's order, so that each of its pages is written once.
    let mut tagged: Vec<_> = tagged.into_iter().collect();
    tagged.sort_unstable();
    let mut insert = tx.prepare_cached(INSERT_TAGGED)?;
    for (tag, positions) in &tagged {
        insert.execute(params![&**tag, positions_json(positions)])?;
    }
    tx.prepare_cached("UPDATE factum_positions SET merged = ?1")?
        .execute([upto])?;
    Ok(())
}

fn reader_stopped() -> JournalError {
    JournalError::Unknown("the SQLite reader thread stopped before answering".into())
}

/// A read for a reader thread: it gets the thread's connection, or why the thread could
/// not open one.
type ReadJob = Box<dyn FnOnce(Result<&Reader, &JournalError>) + Send>;

/// A reader thread's connection, and what it has seen of the events not merged into the
/// stream index yet (refreshed by each read of a stream, in the read's transaction).
struct Reader {
    conn: Connection,
    tail: RefCell<Tail>,
}

impl std::ops::Deref for Reader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// The reads waiting for a reader thread, and the threads.
#[derive(Default)]
struct Reads {
    queue: Mutex<ReadQueue>,
    /// Signalled when a read is queued or the journal closes.
    ready: Condvar,
}

#[derive(Default)]
struct ReadQueue {
    jobs: VecDeque<ReadJob>,
    /// Reader threads running, and how many of them wait for a read.
    threads: usize,
    idle: usize,
    /// Every reader thread started, to be joined on close.
    started: Vec<JoinHandle<()>>,
    closed: bool,
}

impl Reads {
    fn queue(&self) -> MutexGuard<'_, ReadQueue> {
        lock(&self.queue)
    }

    /// Queues a read, and starts a reader thread for it when none is idle and fewer than
    /// [`MAX_READERS`] run.
    fn push(reads: &Arc<Reads>, path: &Path, job: ReadJob) {
        let mut queue = reads.queue();
        queue.jobs.push_back(job);
        // Each waiting thread takes one queued read.
        if queue.jobs.len() <= queue.idle {
            reads.ready.notify_one();
            return;
        }
        if queue.threads >= MAX_READERS {
            return;
        }
        queue.threads += 1;
        drop(queue);
        let (thread_reads, path) = (Arc::clone(reads), path.to_path_buf());
        let started = std::thread::Builder::new()
            .name("factum-sqlite-reader".into())
            .spawn(move || run_reader(&path, &thread_reads));
        match started {
            Ok(thread) => reads.queue().started.push(thread),
            Err(error) => reads.stopped(&JournalError::backend(error)),
        }
    }

    /// A reader thread stopped (or did not start) because of `error`: if it was the last
    /// one, the reads queued fail with `error`, since no thread is left to run them.
    fn stopped(&self, error: &JournalError) {
        let mut queue = self.queue();
        queue.threads -= 1;
        if queue.threads == 0 {
            let jobs = std::mem::take(&mut queue.jobs);
            drop(queue);
            jobs.into_iter().for_each(|job| job(Err(error)));
        }
    }

    /// The next read, waiting for one; `None` once the journal is closed and every read
    /// has run.
    fn next(&self) -> Option<ReadJob> {
        let mut queue = self.queue();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue.idle += 1;
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.idle -= 1;
        }
    }

    /// Stops the reader threads once they have run every read queued, and waits for them:
    /// their connections are closed when it returns.
    fn close(&self) {
        let started = {
            let mut queue = self.queue();
            queue.closed = true;
            std::mem::take(&mut queue.started)
        };
        self.ready.notify_all();
        for thread in started {
            if thread.join().is_err() {
                tracing::error!("an SQLite reader thread panicked");
            }
        }
    }
}

/// A reader thread: opens its connection, then runs reads until the journal closes. If
/// the connection cannot be opened, it fails one read with the reason (every read queued,
/// when no other thread runs) and stops, so that the next read starts a thread that tries
/// again. A read that panics loses its answer (its caller gets an error), not the thread.
fn run_reader(path: &Path, reads: &Reads) {
    match open_reader(path) {
        Ok(conn) => {
            let reader = Reader {
                conn,
                tail: RefCell::new(Tail::with_tags()),
            };
            while let Some(job) = reads.next() {
                let read = std::panic::AssertUnwindSafe(|| job(Ok(&reader)));
                if std::panic::catch_unwind(read).is_err() {
                    tracing::error!("an SQLite read panicked");
                    // It may have left its tail half refreshed.
                    reader.tail.borrow_mut().reset();
                }
            }
            reads.queue().threads -= 1;
        }
        Err(error) => {
            let job = reads.queue().jobs.pop_front();
            if let Some(job) = job {
                job(Err(&error));
            }
            reads.stopped(&error);
        }
    }
}

/// Opens the write-ahead log of the writer's database (`<file>-wal`, which SQLite made
/// when `conn` switched to WAL mode and keeps while `conn` is open), for syncing it.
fn open_log(conn: &Connection) -> Result<std::fs::File, JournalError> {
    let db = conn
        .path()
        .filter(|path| !path.is_empty())
        .ok_or_else(|| corrupt("an SQLite journal needs a file, not a memory database".into()))?;
    let path = format!("{db}-wal");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|error| {
            JournalError::backend(std::io::Error::new(
                error.kind(),
                format!("cannot open the SQLite log `{path}` to sync it: {error}"),
            ))
        })
}

fn open_reader(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(backend)?;
    Ok(conn)
}

/// The writer thread: takes everything queued (up to `max_jobs`), commits it in one
/// transaction, and has it answered once the log is synced ([`Log`]). When the journal
/// closes, it waits for the sync thread to answer everything before it closes the
/// connection.
fn run_writer(
    conn: Connection,
    log: Log,
    durability: Arc<Durability>,
    space: LogSpace,
    jobs: mpsc::Receiver<Job>,
    max_jobs: usize,
    index_batch: usize,
) {
    let mut writer = Writer {
        conn,
        log,
        durability,
        space,
        memory: Memory::default(),
        data_version: None,
        tail: Tail::default(),
        index_batch,
        merge_at: index_batch,
        done: Vec::new(),
    };
    // Kept from one transaction to the next: growing a new one each time took the
    // allocator's slow path.
    let mut batch = Vec::new();
    loop {
        // A transaction may have left the job it found waiting in `batch`.
        if batch.is_empty() {
            match jobs.recv() {
                Ok(first) => batch.push(first),
                Err(_) => break,
            }
        }
        while batch.len() < max_jobs {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        writer.run(&mut batch, &jobs);
    }
    let Writer {
        conn,
        log,
        durability,
        space,
        ..
    } = writer;
    if let Log::Pipelined {
        committed, thread, ..
    } = log
    {
        // Ends the sync thread's loop once it has answered everything sent to it.
        drop(committed);
        if thread.join().is_err() {
            tracing::error!("the SQLite sync thread panicked");
        }
    }
    // The log files go before the connection, which may remove the log as it closes.
    drop(space);
    durability.close();
    drop(conn);
}

/// How the writer's commits are made durable before their callers are answered. SQLite
/// commits without syncing the log (`synchronous = NORMAL`); the log is synced after the
/// commit ([`Durability`]), and only then are the commit's jobs answered.
enum Log {
    /// Group commit: the sync thread syncs the log and answers the commits sent to it
    /// since its last sync, while the writer commits the next jobs. One sync covers
    /// every commit before it, so under load each sync answers several transactions.
    Pipelined {
        /// Each commit's answers, with the highest position it saw, to the sync thread.
        committed: mpsc::Sender<(Vec<Done>, i64)>,
        /// The answer lists back from the sync thread, emptied, for their memory.
        spares: mpsc::Receiver<Vec<Done>>,
        thread: JoinHandle<()>,
    },
    /// One commit per call ([`SqliteBuilder::group_commit`]`(false)`): the writer syncs
    /// the log after each commit itself, so that each call pays a sync of its own.
    Inline,
}

/// The sync of the log, shared by the writer, the sync thread and the readers, and how far
/// it got.
struct Durability {
    /// The log file, synced with `fdatasync`; `None` once the writer closed the journal
    /// (SQLite removes the log when its last connection closes, and the file must not
    /// be held open then).
    log: RwLock<Option<std::fs::File>>,
    /// Replaces the sync of the log file (tests make it fail or wait).
    #[cfg(test)]
    hook: Option<fn() -> std::io::Result<()>>,
    /// Every event up to this position is durable: a sync covered it.
    synced: AtomicI64,
    /// Why a sync failed, once one did. The journal then takes no more writes, and what
    /// no earlier sync covered has an unknown fate: the failed sync may have dropped the
    /// log's unwritten pages, and a commit after lost log pages is lost with them, however
    /// its own sync went.
    failed: OnceLock<String>,
    /// Answer lists handed to the sync thread and not answered yet (0: it is idle).
    handed: AtomicUsize,
    /// The highest position the writer committed (or found in the file at open).
    committed: AtomicI64,
}

impl Durability {
    fn new(log: std::fs::File) -> Self {
        Durability {
            log: RwLock::new(Some(log)),
            #[cfg(test)]
            hook: None,
            handed: AtomicUsize::new(0),
            committed: AtomicI64::new(0),
            synced: AtomicI64::new(0),
            failed: OnceLock::new(),
        }
    }

    /// Syncs the log, which then holds every event up to `covering` (the highest position
    /// committed before the call), unless a sync failed before. `Err` holds why a sync
    /// failed, this one or an earlier one.
    fn sync(&self, covering: i64) -> Result<(), &str> {
        if let Some(reason) = self.failed.get() {
            return Err(reason);
        }
        match self.sync_log() {
            Ok(()) => {
                self.synced.fetch_max(covering, Ordering::Release);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "syncing the SQLite log failed: the journal takes no more writes");
                let _ = self.failed.set(error.to_string());
                Err(self.failed.get().map_or("", String::as_str))
            }
        }
    }

    /// Syncs the log file.
    fn sync_log(&self) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(hook) = self.hook {
            return hook();
        }
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        match &*log {
            Some(file) => file.sync_data(),
            None => Err(std::io::Error::other("the journal is closed")),
        }
    }

    /// Lets the log file go, before the writer closes its connection.
    fn close(&self) {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        *log = None;
    }

    /// Syncs the log, then answers `done` (the answers of commits made before the call, the
    /// last of which saw positions up to `covering`); every write among them fails with an
    /// unknown outcome if the log could not be synced.
    fn settle<'a>(&self, done: impl IntoIterator<Item = &'a mut Vec<Done>>, covering: i64) {
        let failed = self.sync(covering).err().map(|reason| {
            JournalError::Unknown(format!(
                "syncing the SQLite log failed ({reason}): the write may or may not survive a \
                 crash, and the journal takes no more writes until it is opened again"
            ))
        });
        for done in done {
            if let Some(error) = &failed {
                Done::each_result(done, |result| {
                    if result.is_ok() {
                        *result = Err(error.clone());
                    }
                });
            }
            answer(done);
        }
    }

    /// Makes sure that `events`, just read, are durable before they are returned: a read
    /// sees what is committed, and a commit's sync may still be running. When one of them
    /// is newer than what the last sync covered, the log is synced here (which covers
    /// everything committed before it, whichever connection committed it).
    fn before_returning(&self, events: &[EventRecord]) -> Result<(), JournalError> {
        let newest = events.iter().map(|event| event.position).max().unwrap_or(0);
        self.before_returning_up_to(clamp_i64(newest))
    }

    /// [`Durability::before_returning`] for what a read learned from the events up to
    /// position `newest`.
    fn before_returning_up_to(&self, newest: i64) -> Result<(), JournalError> {
        if newest <= self.synced.load(Ordering::Acquire) {
            return Ok(());
        }
        // Committed before the sync starts, so covered by it.
        let committed = self.committed.load(Ordering::Acquire);
        self.sync(newest.max(committed)).map_err(|reason| {
            JournalError::backend(std::io::Error::other(format!(
                "syncing the SQLite log failed ({reason}): events written since may be lost, \
                 and are not read; open the journal again"
            )))
        })
    }
}

/// How much the writer grows the log by ahead of SQLite's writes ([`LogSpace`]).
const LOG_CHUNK: u64 = 4 << 20;

/// Keeps zeroed space at the end of the log, ahead of SQLite's writes. A commit that
/// grows the log makes its sync write the file's new size and blocks too (an ext4
/// journal commit), while one that overwrites space already written syncs its data
/// alone: until the first checkpoint lets SQLite start the log over, every commit grows
/// it. D1 in BENCHMARKS.md: syncs of a growing log took 230 µs on average, of a log
/// written over 145 µs. Zeroes past SQLite's last frame are never read as frames (they
/// fail the frames' checksums, as the stale frames SQLite itself leaves past a restart
/// do).
struct LogSpace {
    file: std::fs::File,
    /// The log's length after the last growth: SQLite writes inside it until the file
    /// grows past it (or another connection truncates the log).
    end: u64,
}

impl LogSpace {
    fn new(file: std::fs::File) -> Self {
        LogSpace { file, end: 0 }
    }

    /// Grows the log by [`LOG_CHUNK`] zeroes once SQLite has written past the last growth
    /// (or the log was truncated). Called with the write lock held, so that no connection
    /// appends to the log meanwhile. A failure only costs the syncs their speed.
    fn reserve(&mut self) {
        use std::io::{Seek, SeekFrom, Write};
        static ZEROES: [u8; 64 << 10] = [0; 64 << 10];
        let mut grow = || -> std::io::Result<u64> {
            let len = self.file.seek(SeekFrom::End(0))?;
            if len == self.end {
                return Ok(len);
            }
            for _ in 0..LOG_CHUNK / ZEROES.len() as u64 {
                (&self.file).write_all(&ZEROES)?;
            }
            Ok(len + LOG_CHUNK)
        };
        match grow() {
            Ok(end) => self.end = end,
            Err(error) => {
                tracing::warn!(%error, "growing the SQLite log ahead of its writes failed");
            }
        }
    }
}

/// The sync thread: takes the answers of every commit made since its last sync, syncs the
/// log once for them all, answers them, and hands the emptied lists back through `spare`.
fn run_syncer(
    durability: &Durability,
    committed: mpsc::Receiver<(Vec<Done>, i64)>,
    spare: mpsc::Sender<Vec<Done>>,
) {
    let mut runs = Vec::new();
    while let Ok(first) = committed.recv() {
        let mut covering = first.1;
        runs.push(first.0);
        while let Ok((done, seen)) = committed.try_recv() {
            covering = covering.max(seen);
            runs.push(done);
        }
        durability.settle(&mut runs, covering);
        durability.handed.fetch_sub(runs.len(), Ordering::AcqRel);
        for done in runs.drain(..) {
            // A writer that stopped no longer needs it.
            let _ = spare.send(done);
        }
    }
}

/// Sends each answer in `done` to its caller, emptying it.
fn answer(done: &mut Vec<Done>) {
    for item in done.drain(..) {
        // A caller that went away no longer needs its answer.
        match item {
            Done::Write(results, parts, reply) => {
                let _ = reply.send((results, parts));
            }
            Done::One(result, reply) => {
                let _ = reply.send(result);
            }
        }
    }
}

/// The writer forgets the streams' highest sequence numbers when it remembers more than
/// this many (at the start of a transaction, so that none is forgotten midway).
const MAX_REMEMBERED: usize = 1 << 16;

/// The write connection, and what the writer thread remembers between transactions.
struct Writer {
    conn: Connection,
    /// How commits are made durable before they are answered.
    log: Log,
    durability: Arc<Durability>,
    space: LogSpace,
    memory: Memory,
    /// `PRAGMA data_version` as of the last transaction (`None`: not read yet).
    data_version: Option<i64>,
    /// The events not merged into the stream index yet, as of the last transaction.
    tail: Tail,
    /// How many unmerged events make the writer merge them ([`SqliteBuilder::index_batch`]).
    index_batch: usize,
    /// How many unmerged events the tail must hold for the next merge: `index_batch`, or
    /// more after a merge failed.
    merge_at: usize,
    /// The answers of a transaction's jobs, kept (empty) from one to the next for its
    /// memory: a new one each time took the allocator's slow path.
    done: Vec<Done>,
}

/// What the writer remembers of the file, so that checking and numbering a part costs no
/// query. It is right only while no other connection writes to the file: each
/// transaction starts by comparing `PRAGMA data_version` (which changes when another
/// connection commits) and forgets everything when it moved; a transaction that fails
/// forgets everything too.
#[derive(Default)]
struct Memory {
    /// The streams this connection wrote or checked lately.
    streams: HashMap<Arc<str>, Stream, KeyedState>,
    /// The highest position given so far (`None`: not read yet).
    position: Option<i64>,
}

impl Memory {
    fn forget(&mut self) {
        self.streams.clear();
        self.position = None;
    }
}

/// The events after the last merge into the indexes, by stream (and by tag, in a reader's
/// tail), as one connection has seen them: where the indexes do not reach, a stream's or
/// a tag's events are found here.
///
/// Positions only grow (the writer numbers events after the highest position ever given),
/// so what a connection has seen of the journal is everything up to a position, and it
/// catches up by reading the events after it ([`Tail::refresh`]). Entries of events
/// deleted since are only candidates: a read looks each event up by its position and
/// skips those that are gone.
#[derive(Debug, Default)]
struct Tail {
    /// Whether `merged` and `seen` hold; `false` before the first refresh, and after a
    /// transaction that may have added entries and failed.
    valid: bool,
    /// The last merged position: events at or below it are in the index, not here.
    merged: i64,
    /// Every event above `merged` and at or below `seen` is here.
    seen: i64,
    /// By stream id: `(sequence_nr, position)` in the order of both, for the events added
    /// before those in `pending`.
    streams: HashMap<i64, Vec<(i64, i64)>>,
    /// The events added since `streams` was last brought up to date, `(stream,
    /// sequence_nr, position)`, oldest first: sorted into it only when a stream's entries
    /// are asked for, so that the writer, which rarely asks, only appends.
    pending: Vec<(i64, i64, i64)>,
    /// By tag: the positions of the events carrying it, in order; `None` in the writer's
    /// tail, which never reads by tag.
    tags: Option<HashMap<Box<str>, Vec<i64>>>,
    /// How many entries `streams` and `pending` hold.
    len: usize,
}

impl Tail {
    /// A tail that keeps the events by tag too (a reader's).
    fn with_tags() -> Self {
        Tail {
            tags: Some(HashMap::new()),
            ..Tail::default()
        }
    }

    /// Catches up with the file as `conn`'s transaction sees it: drops what was merged
    /// since, and adds the events written since (by another connection, for the writer).
    fn refresh(&mut self, conn: &Connection) -> Result<(), JournalError> {
        let merged: i64 = conn
            .prepare_cached(MERGED)
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(backend)?;
        if !self.valid || merged < self.merged {
            self.reset();
            (self.merged, self.seen, self.valid) = (merged, merged, true);
        } else {
            self.merged_to(merged);
        }
        let tagged = self.tags.is_some();
        let sql = if tagged { UNSEEN_TAGGED } else { UNSEEN };
        let mut parser = TagParser::default();
        let mut unseen = conn.prepare_cached(sql).map_err(backend)?;
        let mut rows = unseen.query([self.seen]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let value = |i: usize| match row.get_ref(i) {
                Ok(ValueRef::Integer(v)) => Ok(v),
                _ => Err(corrupt(format!(
                    "corrupt `factum_events` row: column {i} is not an integer"
                ))),
            };
            let position = value(0)?;
            self.add(value(1)?, value(2)?, position);
            if let (Some(tags), Ok(ValueRef::Text(json))) = (&mut self.tags, row.get_ref(3)) {
                // As in a merge, tags that are not a list of strings are not indexed.
                for tag in parser.parse(json).unwrap_or_default() {
                    add_tagged(tags, tag, position);
                }
            }
        }
        Ok(())
    }

    /// Forgets everything: the next refresh reads the whole tail again.
    fn reset(&mut self) {
        self.streams.clear();
        self.pending.clear();
        if let Some(tags) = &mut self.tags {
            tags.clear();
        }
        self.len = 0;
        self.valid = false;
    }

    /// Adds an event seen (or written) after every one here.
    fn add(&mut self, stream: i64, sequence_nr: i64, position: i64) {
        self.pending.push((stream, sequence_nr, position));
        self.len += 1;
        self.seen = self.seen.max(position);
    }

    /// Drops the entries that a merge up to `merged` put into the index.
    fn merged_to(&mut self, merged: i64) {
        if merged <= self.merged {
            return;
        }
        self.pending.retain(|&(_, _, position)| position > merged);
        let mut len = self.pending.len();
        self.streams.retain(|_, entries| {
            entries.retain(|&(_, position)| position > merged);
            len += entries.len();
            !entries.is_empty()
        });
        if let Some(tags) = &mut self.tags {
            tags.retain(|_, positions| {
                positions.retain(|&position| position > merged);
                !positions.is_empty()
            });
        }
        self.len = len;
        self.merged = merged;
        self.seen = self.seen.max(merged);
    }

    /// The unmerged events of a stream, `(sequence_nr, position)`, oldest first.
    fn of(&mut self, stream: i64) -> &[(i64, i64)] {
        for (stream, sequence_nr, position) in self.pending.drain(..) {
            self.streams
                .entry(stream)
                .or_default()
                .push((sequence_nr, position));
        }
        self.streams.get(&stream).map_or(&[], Vec::as_slice)
    }

    /// The positions of the unmerged events carrying `tag`, oldest first (none in a tail
    /// that does not keep tags).
    fn tagged(&self, tag: &str) -> &[i64] {
        self.tags
            .as_ref()
            .and_then(|tags| tags.get(tag))
            .map_or(&[], Vec::as_slice)
    }
}

/// `positions` as a JSON array, for `json_each` ([`INSERT_TAGGED`], [`LISTED`]).
fn positions_json(positions: &[i64]) -> String {
    let mut list = String::with_capacity(positions.len() * 8 + 2);
    list.push('[');
    for (i, position) in positions.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        // Writing to a `String` cannot fail.
        let _ = write!(list, "{position}");
    }
    list.push(']');
    list
}

/// Adds the event at `position`, newer than every one in `tags`, to `tag`'s positions
/// (once, if the event repeats the tag).
fn add_tagged(tags: &mut HashMap<Box<str>, Vec<i64>>, tag: &str, position: i64) {
    match tags.get_mut(tag) {
        Some(positions) if positions.last() == Some(&position) => {}
        Some(positions) => positions.push(position),
        None => {
            tags.insert(Box::from(tag), vec![position]);
        }
    }
}

/// Parses events' `tags` column, once for a run of events with the same text (most
/// events of a type carry the same tags).
#[derive(Default)]
struct TagParser {
    /// The text parsed last, and what it parsed to (`None`: not a list of strings).
    last: Option<(Vec<u8>, Option<Vec<String>>)>,
}

impl TagParser {
    /// The tags in `json`, or `None` if it is not a JSON list of strings.
    fn parse(&mut self, json: &[u8]) -> Option<&[String]> {
        if self
            .last
            .as_ref()
            .is_none_or(|(text, _)| text.as_slice() != json)
        {
            let tags = serde_json::from_slice::<Vec<String>>(json).ok();
            self.last = Some((json.to_vec(), tags));
        }
        self.last.as_ref().and_then(|(_, tags)| tags.as_deref())
    }
}

/// A stream's row id in `factum_streams` and its highest sequence number.
#[derive(Debug, Clone, Copy)]
struct Stream {
    id: i64,
    highest: u64,
}

/// A job's result, waiting for the commit before it is sent.
enum Done {
    Write(
        Vec<Result<(), JournalError>>,
        Vec<AtomicWrite>,
        Reply<Written>,
    ),
    One(Result<(), JournalError>, Reply<Result<(), JournalError>>),
}

impl Job {
    /// This job's answer, with placeholder results: for a job of a transaction that failed
    /// before it ran, whose results are all replaced with the failure.
    fn unanswered(self) -> Done {
        let placeholder = || Err(JournalError::Unknown("not run".into()));
        match self {
            Job::Write(parts, _, reply) => {
                Done::Write(parts.iter().map(|_| placeholder()).collect(), parts, reply)
            }
            Job::Delete(_, _, reply) | Job::Save(_, reply) | Job::Retain(_, _, reply) => {
                Done::One(placeholder(), reply)
            }
        }
    }
}

impl Done {
    /// Calls `f` on every result of `done`.
    fn each_result(done: &mut [Done], mut f: impl FnMut(&mut Result<(), JournalError>)) {
        for item in done {
            match item {
                Done::Write(results, ..) => results.iter_mut().for_each(&mut f),
                Done::One(result, _) => f(result),
            }
        }
    }
}

impl Writer {
    /// Runs a batch of jobs in one transaction and answers them.
    fn run(&mut self, batch: &mut Vec<Job>, queue: &mpsc::Receiver<Job>) {
        self.transaction(batch, queue);
        if self.tail.valid && self.tail.len >= self.merge_at {
            self.merge();
        }
    }

    /// Merges the unmerged events into the stream and tag indexes, in a transaction of its
    /// own after the jobs' (whose callers have their answers): one pass per index that
    /// writes each index page it changes once, however many of the merged events it
    /// holds. A failure is logged and fails nothing (reads find the events in the tail
    /// meanwhile); the next merge is tried after another batch.
    fn merge(&mut self) {
        let merged = merge(&mut self.conn);
        match merged {
            Ok(to) => {
                self.tail.merged_to(to);
                self.merge_at = self.index_batch;
            }
            Err(error) => {
                self.merge_at = self.tail.len.saturating_add(self.index_batch);
                // The commit may have happened: read the tail again before using it.
                self.tail.reset();
                tracing::error!(%error, "merging the SQLite journal's stream index failed");
            }
        }
    }

    /// Runs a batch of jobs in one transaction and answers them.
    fn transaction(&mut self, batch: &mut Vec<Job>, queue: &mpsc::Receiver<Job>) {
        let Writer {
            conn,
            log,
            durability,
            space,
            memory,
            data_version,
            tail,
            done,
            ..
        } = self;
        if let Some(reason) = durability.failed.get() {
            let error = JournalError::backend(std::io::Error::other(format!(
                "the SQLite journal takes no more writes: syncing its log failed ({reason}); \
                 open it again"
            )));
            for job in batch.drain(..) {
                fail(job, &error);
            }
            return;
        }
        let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(error) => {
                let error = backend(error);
                for job in batch.drain(..) {
                    fail(job, &error);
                }
                return;
            }
        };
        // The write lock is ours: no other connection appends to the log until the commit.
        space.reserve();
        // Another connection may have written since our last transaction: then what we
        // remember may be stale.
        let version = tx
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0)))
            .ok();
        let moved = version.is_none() || version != *data_version;
        if moved || memory.streams.len() > MAX_REMEMBERED {
            memory.forget();
        }
        *data_version = version;
        if (moved || !tail.valid)
            && let Err(error) = tail.refresh(&tx)
        {
            drop(tx);
            memory.forget();
            tail.reset();
            for job in batch.drain(..) {
                fail(job, &error);
            }
            return;
        }
        // The events this transaction writes, `(stream, sequence_nr, position)`: added to
        // the tail once they are committed.
        let mut added = Vec::new();

        done.reserve(batch.len());
        let mut failed: Option<JournalError> = None;
        let mut jobs = batch.drain(..).peekable();
        while let Some(job) = jobs.next() {
            if failed.is_some() {
                // The transaction is lost: nothing more runs in it (after some errors
                // SQLite has rolled it back itself, and a statement would then commit on
                // its own). The results are all replaced with the error below.
                done.push(job.unanswered());
                continue;
            }
            match job {
                Job::Write(parts, checks, reply) => {
                    // This write and those right after it share the prepared statements.
                    let mut writes = Vec::with_capacity(jobs.len() + 1);
                    writes.push((parts, checks, reply));
                    while let Some(Job::Write(..)) = jobs.peek() {
                        if let Some(Job::Write(parts, checks, reply)) = jobs.next() {
                            writes.push((parts, checks, reply));
                        }
                    }
                    let mut statements = Statements::prepare(&tx);
                    let mut run = Run::default();
                    let mut written = Vec::with_capacity(writes.len());
                    for (parts, checks, _) in &writes {
                        let result = match (&failed, &mut statements) {
                            (Some(error), _) => Err(error.clone()),
                            (None, Err(error)) => Err(error.clone()),
                            (None, Ok(statements)) => {
                                let checks = checks.as_deref();
                                write_parts(&tx, statements, parts, checks, memory, tail, &mut run)
                            }
                        };
                        if let Err(error) = &result {
                            failed.get_or_insert_with(|| error.clone());
                        }
                        written.push(result);
                    }
                    added.append(&mut run.added);
                    drop(run);
                    for ((parts, _, reply), written) in writes.into_iter().zip(written) {
                        let results = written.unwrap_or_else(|error| {
                            // Every result is replaced with the error below.
                            let results = parts.iter().map(|_| Err(error.clone())).collect();
                            failed.get_or_insert(error);
                            results
                        });
                        done.push(Done::Write(results, parts, reply));
                    }
                }
                Job::Delete(pid, to, reply) => {
                    let result = in_savepoint(&mut tx, |c| delete_to(c, &pid, to));
                    done.push(Done::One(result, reply));
                }
                Job::Save(snapshot, reply) => {
                    let result = in_savepoint(&mut tx, |c| save(c, &snapshot));
                    done.push(Done::One(result, reply));
                }
                Job::Retain(pid, keep, reply) => {
                    let result = in_savepoint(&mut tx, |c| retain(c, &pid, keep));
                    done.push(Done::One(result, reply));
                }
            }
            if failed.is_none() && tx.is_autocommit() {
                // A failed statement made SQLite roll the whole transaction back (an I/O
                // error, a full disk, a trigger's `RAISE(ROLLBACK)`).
                failed = Some(JournalError::backend(std::io::Error::other(
                    "SQLite rolled the transaction back",
                )));
            }
        }
        drop(jobs);
        if let Some(error) = failed {
            // Nothing of this transaction is kept: every part of every job fails with the
            // error, and what was remembered during it is forgotten.
            drop(tx);
            memory.forget();
            Done::each_result(done, |result| *result = Err(error.clone()));
        } else if let Err(error) = tx.commit() {
            // The commit may have reached the disk or not.
            memory.forget();
            tail.reset();
            let error = JournalError::Unknown(format!("the SQLite commit failed: {error}"));
            Done::each_result(done, |result| {
                if result.is_ok() {
                    *result = Err(error.clone());
                }
            });
        } else {
            // Committed: the tail holds every event up to the last this transaction wrote
            // (it was refreshed at the start if another connection had written).
            for (stream, sequence_nr, position) in added {
                tail.add(stream, sequence_nr, position);
            }
            durability.committed.fetch_max(tail.seen, Ordering::AcqRel);
        }
        // Even a failed transaction's answers wait for the sync: a commit that failed may
        // have reached the log (its outcome is unknown), and answers leave in order.
        match log {
            Log::Inline => durability.settle([&mut *done], tail.seen),
            Log::Pipelined {
                committed, spares, ..
            } => {
                // Left in `batch` for the next transaction.
                let waiting = queue.try_recv().ok();
                if waiting.is_none() && durability.handed.load(Ordering::Acquire) == 0 {
                    // Nothing to commit meanwhile and no sync running: a hop to the sync
                    // thread would only add its wake-up to the wait (a client alone waits
                    // for each of its commands).
                    durability.settle([&mut *done], tail.seen);
                } else {
                    durability.handed.fetch_add(1, Ordering::AcqRel);
                    let next = spares.try_recv().unwrap_or_default();
                    let done = std::mem::replace(done, next);
                    if let Err(mpsc::SendError((mut done, _))) = committed.send((done, tail.seen)) {
                        // The sync thread is gone (it panicked): nothing can be synced.
                        durability.handed.fetch_sub(1, Ordering::AcqRel);
                        let error = JournalError::Unknown("the SQLite sync thread stopped".into());
                        Done::each_result(&mut done, |result| *result = Err(error.clone()));
                        answer(&mut done);
                    }
                }
                batch.extend(waiting);
            }
        }
    }
}

fn fail(job: Job, error: &JournalError) {
    match job {
        Job::Write(parts, _, reply) => {
            let results = parts.iter().map(|_| Err(error.clone())).collect();
            let _ = reply.send((results, parts));
        }
        Job::Delete(_, _, reply) | Job::Save(_, reply) | Job::Retain(_, _, reply) => {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// Runs `f` in a savepoint of `tx`: released on success, rolled back on failure.
fn in_savepoint(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<(), JournalError>,
) -> Result<(), JournalError> {
    let savepoint = tx.savepoint().map_err(backend)?;
    // Dropping the savepoint unreleased rolls it back.
    f(&savepoint)?;
    savepoint.commit().map_err(backend)
}

/// The prepared statements of a run of write jobs.
struct Statements<'conn> {
    event: CachedStatement<'conn>,
    stream: CachedStatement<'conn>,
    find: CachedStatement<'conn>,
}

impl<'conn> Statements<'conn> {
    fn prepare(conn: &'conn Connection) -> Result<Self, JournalError> {
        Ok(Statements {
            event: conn.prepare_cached(INSERT_EVENT).map_err(backend)?,
            stream: conn.prepare_cached(INSERT_STREAM).map_err(backend)?,
            find: conn.prepare_cached(FIND_STREAM).map_err(backend)?,
        })
    }
}

/// What a run of write jobs gathers as its events are inserted.
#[derive(Default)]
struct Run<'a> {
    /// The event inserted last. The insert statement keeps its bindings from one event
    /// to the next, so the values that usually repeat (manifest, version, tags, command
    /// id, writer) are bound again only when they differ from this event's.
    previous: Option<&'a EventRecord>,
    /// The events inserted, `(stream, sequence_nr, position)`, for the writer's [`Tail`].
    added: Vec<(i64, i64, i64)>,
}

/// Checks and inserts each part of one write job: one result per part. A part that
/// failed its caller's [`check_values`] (`checks`) or conflicts is refused before any of
/// it is written, so it needs no savepoint; any other failure is returned as `Err`, and
/// the whole transaction must fail.
fn write_parts<'a>(
    conn: &Connection,
    statements: &mut Statements<'_>,
    parts: &'a [AtomicWrite],
    checks: Option<&[Result<(), JournalError>]>,
    memory: &mut Memory,
    tail: &mut Tail,
    run: &mut Run<'a>,
) -> Result<Vec<Result<(), JournalError>>, JournalError> {
    let mut results = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let pid = &part.persistence_id;
        if let Some(Err(error)) = checks.and_then(|checks| checks.get(i)) {
            results.push(Err(error.clone()));
            continue;
        }
        let known = match memory.streams.get(pid) {
            Some(&stream) => Some(stream),
            // A part that would start a stream first tries to add it: for a new stream
            // (an aggregate's first command) that is the whole check, with no lookup.
            None if !part.events.is_empty()
                && check_sequence(pid, 0, &part.events).is_ok()
                && statements.stream.execute([&**pid]).map_err(backend)? == 1 =>
            {
                Some(Stream {
                    id: conn.last_insert_rowid(),
                    highest: 0,
                })
            }
            None => find_stream(&mut statements.find, pid, tail)?,
        };
        let highest = known.map_or(0, |stream| stream.highest);
        if let Err(conflict) = check_sequence(pid, highest, &part.events) {
            results.push(Err(conflict));
            continue;
        }
        let Some(last) = part.events.last() else {
            results.push(Ok(()));
            continue;
        };
        // A part that passed its check on a stream not known here tried to add it above.
        let Some(Stream { id, .. }) = known else {
            return Err(corrupt(format!(
                "`factum_streams` refused a row for `{pid}` but has none"
            )));
        };
        let position = match memory.position {
            Some(position) => position,
            None => conn
                .prepare_cached(LAST_POSITION)
                .and_then(|mut s| s.query_row([], |row| row.get(0)))
                .map_err(backend)?,
        };
        memory.position = Some(insert_part(statements, id, position, part, run)?);
        let stream = Stream {
            id,
            highest: last.sequence_nr,
        };
        // Updated in place when known: no second copy of the key to make and drop.
        match memory.streams.get_mut(pid) {
            Some(known) => *known = stream,
            None => {
                memory.streams.insert(Arc::clone(pid), stream);
            }
        }
        results.push(Ok(()));
    }
    Ok(results)
}

/// Checks the values of a part that SQLite cannot store (a sequence number above
/// `i64::MAX`, a payload that is not UTF-8, a row over [`MAX_ROW`] bytes) before any of it
/// is written, so that they fail that part alone rather than the transaction it shares
/// with other aggregates' writes.
///
/// `limit` is the largest row, [`MAX_ROW`] (smaller in tests).
fn check_values(part: &AtomicWrite, limit: usize) -> Result<(), JournalError> {
    for event in &part.events {
        to_i64(event.sequence_nr, "sequence number")?;
        let payload = payload_text(event)?;
        // An upper bound of the row's size: its text values (a tag's JSON string at most
        // six bytes a character, with quotes and a comma), and 64 bytes for the integers
        // and the record's header.
        let tags: usize = event.tags.iter().map(|tag| tag.len() * 6 + 3).sum();
        let size = [
            payload.len(),
            event.manifest.len(),
            event.command_id.as_deref().map_or(0, str::len),
            event.writer_id.len(),
            tags,
            64,
        ]
        .into_iter()
        .fold(0usize, usize::saturating_add);
        if size > limit {
            return Err(JournalError::Encode(format!(
                "event {} of `{}` needs up to {size} bytes, more than SQLite stores in one row \
                 ({limit})",
                event.sequence_nr, event.persistence_id
            )));
        }
    }
    Ok(())
}

/// The largest string, BLOB or row the bundled SQLite stores (`SQLITE_MAX_LENGTH`, one
/// billion bytes): a larger event row fails its statement, and with it the transaction.
const MAX_ROW: usize = 1_000_000_000;

/// Inserts a checked part into stream `id`, its events at the positions after `position`,
/// and adds their tag index rows to the run's; returns the last position it gave. A
/// failure here (even a unique-key conflict, which the check makes impossible unless the
/// tables were edited by hand) fails the whole transaction.
fn insert_part<'a>(
    statements: &mut Statements<'_>,
    id: i64,
    mut position: i64,
    part: &'a AtomicWrite,
    run: &mut Run<'a>,
) -> Result<i64, JournalError> {
    let insert = &mut statements.event;
    for event in &part.events {
        position = position
            .checked_add(1)
            .ok_or_else(|| corrupt("the journal has run out of positions".to_string()))?;
        // Forgotten until this event is in: after a failure, everything is bound again.
        let previous = run.previous.take();
        let changed = |same: fn(&EventRecord, &EventRecord) -> bool| {
            previous.is_none_or(|previous| !same(previous, event))
        };
        insert.raw_bind_parameter(1, position).map_err(backend)?;
        insert.raw_bind_parameter(2, id).map_err(backend)?;
        let sequence_nr = to_i64(event.sequence_nr, "sequence number")?;
        insert.raw_bind_parameter(3, sequence_nr).map_err(backend)?;
        if changed(|a, b| a.manifest == b.manifest) {
            insert
                .raw_bind_parameter(4, &*event.manifest)
                .map_err(backend)?;
        }
        if changed(|a, b| a.version == b.version) {
            insert
                .raw_bind_parameter(5, event.version)
                .map_err(backend)?;
        }
        // Bound as text without checking it again: the caller's `check_values` found it
        // UTF-8.
        let payload = ToSqlOutput::Borrowed(ValueRef::Text(&event.payload));
        insert.raw_bind_parameter(6, payload).map_err(backend)?;
        if changed(|a, b| a.tags == b.tags) {
            insert
                .raw_bind_parameter(7, tags_json(&event.tags))
                .map_err(backend)?;
        }
        if changed(|a, b| a.command_id == b.command_id) {
            let command_id = event.command_id.as_deref();
            insert.raw_bind_parameter(8, command_id).map_err(backend)?;
        }
        let timestamp = clamp_i64(event.timestamp);
        insert.raw_bind_parameter(9, timestamp).map_err(backend)?;
        if changed(|a, b| a.writer_id == b.writer_id) {
            insert
                .raw_bind_parameter(10, &*event.writer_id)
                .map_err(backend)?;
        }
        match insert.raw_execute() {
            Ok(_) => {
                run.previous = Some(event);
                run.added.push((id, sequence_nr, position));
            }
            Err(error) if is_unique_violation(&error) => {
                return Err(conflict(&part.persistence_id, &part.events));
            }
            Err(error) => return Err(backend(error)),
        }
    }
    Ok(position)
}

/// A unique-key violation: the sequence number is taken. Other constraint failures (a
/// trigger's `RAISE`, a `CHECK` added by hand) are failures of the store, not conflicts
/// to retry.
fn is_unique_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error().is_some_and(|e| {
        e.code == ErrorCode::ConstraintViolation
            && matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            )
    })
}

/// The stream's id and highest sequence number (`None` for a stream never written): the
/// index's, the deleted events', or the newest in `tail`, whichever is largest.
fn find_stream(
    find: &mut Statement<'_>,
    pid: &str,
    tail: &mut Tail,
) -> Result<Option<Stream>, JournalError> {
    let mut rows = find.query([pid]).map_err(backend)?;
    let Some(row) = rows.next().map_err(backend)? else {
        return Ok(None);
    };
    let bad = || corrupt(format!("corrupt `factum_streams` row of `{pid}`"));
    let id = match row.get_ref(0).map_err(backend)? {
        ValueRef::Integer(id) => id,
        _ => return Err(bad()),
    };
    let highest = match row.get_ref(1).map_err(backend)? {
        ValueRef::Integer(highest) => highest,
        _ => return Err(bad()),
    };
    let unmerged = tail
        .of(id)
        .last()
        .map_or(0, |&(sequence_nr, _)| sequence_nr);
    let highest = to_u64(highest.max(unmerged), "highest", pid, 0)?;
    Ok(Some(Stream { id, highest }))
}

/// A stream's id (`None` for a stream never written).
fn stream_id(conn: &Connection, pid: &str) -> Result<Option<i64>, JournalError> {
    conn.prepare_cached("SELECT id FROM factum_streams WHERE persistence_id = CAST(?1 AS TEXT)")
        .and_then(|mut s| s.query_row([pid], |row| row.get(0)).optional())
        .map_err(backend)
}

/// The positions of a stream's events up to a sequence number, merged or not: `?1` is the
/// stream's id, `?2` the sequence number.
const POSITIONS_TO: &str = "SELECT position FROM factum_stream_index \
     WHERE stream = ?1 AND sequence_nr <= ?2 \
     UNION ALL SELECT position FROM factum_events \
     WHERE position > (SELECT coalesce(MAX(merged), 0) FROM factum_positions) \
     AND stream = ?1 AND sequence_nr <= ?2";

/// Deletes a stream's events up to `to`, merged or not, keeping its highest number and
/// the highest position given. It reads the tables alone (not the writer's tail), since
/// it may follow writes of the same transaction.
fn delete_to(conn: &Connection, pid: &str, to: u64) -> Result<(), JournalError> {
    let Some(id) = stream_id(conn, pid)? else {
        // A stream never written has nothing to delete, and its highest stays 0.
        return Ok(());
    };
    let to = clamp_i64(to);
    // Remember the stream's highest and the highest position before their events may go.
    let highest: i64 = conn
        .query_row(STREAM_HIGHEST, [id], |row| row.get(0))
        .map_err(backend)?;
    conn.execute(
        "UPDATE factum_streams SET highest = MAX(highest, ?2) WHERE id = ?1",
        params![id, highest],
    )
    .map_err(backend)?;
    conn.execute(
        &format!("UPDATE factum_positions SET highest = ({LAST_POSITION})"),
        [],
    )
    .map_err(backend)?;
    conn.execute(
        &format!("DELETE FROM factum_event_tags WHERE position IN ({POSITIONS_TO})"),
        params![id, to],
    )
    .map_err(backend)?;
    conn.execute(
        &format!("DELETE FROM factum_events WHERE position IN ({POSITIONS_TO})"),
        params![id, to],
    )
    .map_err(backend)?;
    conn.execute(
        "DELETE FROM factum_stream_index WHERE stream = ?1 AND sequence_nr <= ?2",
        params![id, to],
    )
    .map_err(backend)?;
    Ok(())
}

/// Merges every unmerged event into the stream index ([`MERGE`]) in a transaction of its
/// own; returns the last merged position.
fn merge(conn: &mut Connection) -> Result<i64, JournalError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let merged: i64 = tx
        .query_row(MERGED, [], |row| row.get(0))
        .map_err(backend)?;
    let upto: i64 = tx
        .query_row(NEWEST_POSITION, [], |row| row.get(0))
        .map_err(backend)?;
    if upto <= merged {
        return Ok(merged);
    }
    merge_into_index(&tx, merged, upto).map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(upto)
}

fn save(conn: &Connection, snapshot: &SnapshotRecord) -> Result<(), JournalError> {
    let payload = std::str::from_utf8(&snapshot.payload).map_err(|_| {
        JournalError::Encode(format!(
            "the snapshot payload of `{}` is not UTF-8 text",
            snapshot.persistence_id
        ))
    })?;
    conn.execute(
        "INSERT INTO factum_snapshots (persistence_id, sequence_nr, version, payload, timestamp) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (persistence_id, sequence_nr) DO UPDATE SET \
         version = excluded.version, payload = excluded.payload, timestamp = excluded.timestamp",
        params![
            &*snapshot.persistence_id,
            to_i64(snapshot.sequence_nr, "sequence number")?,
            snapshot.version,
            payload,
            clamp_i64(snapshot.timestamp),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn retain(conn: &Connection, pid: &str, keep: usize) -> Result<(), JournalError> {
    conn.execute(
        "DELETE FROM factum_snapshots WHERE persistence_id = ?1 AND sequence_nr NOT IN \
         (SELECT sequence_nr FROM factum_snapshots WHERE persistence_id = ?1 \
          ORDER BY sequence_nr DESC LIMIT ?2)",
        params![pid, limit(keep)],
    )
    .map_err(backend)?;
    Ok(())
}

/// Text or blob bytes of a column; other values as their SQL text, NULL as nothing.
fn bytes(value: ValueRef<'_>) -> Vec<u8> {
    match value {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    }
}

fn text(value: ValueRef<'_>) -> String {
    String::from_utf8_lossy(&bytes(value)).into_owned()
}

/// One `factum_events` row (columns in [`EVENT_COLUMNS`] order) as a record. Never
/// panics: a value of the wrong type or range is an error naming the row.
fn event_record(row: &Row<'_>) -> Result<EventRecord, JournalError> {
    let get = |i: usize| row.get_ref(i).map_err(backend);
    let integer = |i: usize| -> Result<Option<i64>, JournalError> {
        Ok(match get(i)? {
            ValueRef::Integer(v) => Some(v),
            _ => None,
        })
    };
    let persistence_id = text(get(1)?);
    let raw_seq = integer(2)?.unwrap_or(-1);
    let bad = |column: &str| {
        corrupt(format!(
            "corrupt row {raw_seq} of `{persistence_id}`: {column} is not an integer"
        ))
    };
    let position = integer(0)?.ok_or_else(|| bad("position"))?;
    let sequence_nr = to_u64(raw_seq, "sequence_nr", &persistence_id, raw_seq)?;
    let version = integer(4)?.ok_or_else(|| bad("version"))?;
    let timestamp = integer(8)?.ok_or_else(|| bad("timestamp"))?;
    let tags = parse_tags(&text(get(6)?), &persistence_id, raw_seq)?;
    // Read strictly: a command id read lossily would no longer match the id it was
    // written for, and a resend of that command would run again instead of being
    // deduplicated.
    let command_id = match get(7)? {
        ValueRef::Null => None,
        ValueRef::Text(id) | ValueRef::Blob(id) => {
            Some(Box::from(std::str::from_utf8(id).map_err(|_| {
                corrupt(format!(
                    "corrupt row {raw_seq} of `{persistence_id}`: its command id is not UTF-8"
                ))
            })?))
        }
        value => Some(Box::from(text(value))),
    };
    Ok(EventRecord {
        sequence_nr,
        manifest: text(get(3)?).into(),
        version: to_u32(version, "version", &persistence_id, raw_seq)?,
        payload: bytes(get(5)?),
        tags,
        command_id,
        timestamp: to_u64(timestamp, "timestamp", &persistence_id, raw_seq)?,
        writer_id: Arc::from(text(get(9)?)),
        position: to_u64(position, "position", &persistence_id, raw_seq)?,
        persistence_id: Arc::from(persistence_id),
    })
}

/// A read transaction on a reader's connection: the queries of one read see one state of
/// the file. It begins and ends with cached statements (`Connection::transaction` parses
/// its `BEGIN` and `COMMIT` each time).
struct ReadTransaction<'c>(&'c Connection);

impl<'c> ReadTransaction<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, JournalError> {
        conn.prepare_cached("BEGIN")
            .and_then(|mut begin| begin.execute([]))
            .map_err(backend)?;
        Ok(ReadTransaction(conn))
    }
}

impl std::ops::Deref for ReadTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.0
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        if self.0.is_autocommit() {
            return;
        }
        // A read changed nothing: ending it either way releases its snapshot, which the
        // next read must not keep.
        let ended = self
            .0
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]));
        if ended.is_err() && !self.0.is_autocommit() {
            let rolled_back = self.0.execute_batch("ROLLBACK");
            if let Err(error) = rolled_back {
                tracing::error!(%error, "an SQLite read transaction could not be ended");
            }
        }
    }
}

/// A stream's events from `from` to `to`, at most `max`: those merged into the stream
/// index, then those after the last merge, found by the reader's tail, all in one read
/// transaction, so that the merge position, the index and the events agree.
fn read_stream(
    reader: &Reader,
    pid: &str,
    from: u64,
    to: u64,
    max: usize,
) -> Result<Vec<EventRecord>, JournalError> {
    let tx = ReadTransaction::begin(reader)?;
    let Some(id) = stream_id(&tx, pid)? else {
        return Ok(Vec::new());
    };
    let mut tail = reader.tail.borrow_mut();
    tail.refresh(&tx)?;
    let (from, to) = (clamp_i64(from), clamp_i64(to));
    let mut events = query_events(&tx, &INDEXED, params![id, from, to, limit(max)])?;
    // A stream's unmerged events come after its merged ones: its numbers grow with the
    // positions. At or below the merge position, an event is in the index (the tail keeps
    // none there; checked all the same, since a duplicate would be worse than a lookup).
    let merged = tail.merged;
    let candidates = tail
        .of(id)
        .iter()
        .filter(|&&(sequence_nr, position)| (from..=to).contains(&sequence_nr) && position > merged)
        .map(|&(_, position)| position);
    read_candidates(&mut events, max, candidates, |wanted| {
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
            return Ok(Vec::new());
        };
        if wanted.len() >= DENSE_MIN && (last - first) / 4 < wanted.len() as i64 {
            // Dense: one scan of the positions they span (the tail has seen every event up
            // to `last`, so the stream's rows there are these, less any deleted since).
            query_events(&tx, &SPANNED, params![first, last, id])
        } else {
            let mut found = Vec::with_capacity(wanted.len());
            for &position in wanted {
                found.extend(query_events(&tx, &AT, [position])?);
            }
            Ok(found)
        }
    })?;
    Ok(events)
}

/// Reads the unmerged events at `candidates` (positions a tail has seen, oldest first)
/// with `fetch` until `events` holds `max`. An event deleted since the tail saw it is not
/// found: the next candidates are read in its place, so that a read returns fewer than
/// `max` only when there are no more.
fn read_candidates(
    events: &mut Vec<EventRecord>,
    max: usize,
    mut candidates: impl Iterator<Item = i64>,
    mut fetch: impl FnMut(&[i64]) -> Result<Vec<EventRecord>, JournalError>,
) -> Result<(), JournalError> {
    loop {
        let room = max.saturating_sub(events.len());
        let wanted: Vec<i64> = candidates.by_ref().take(room).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let found = fetch(&wanted)?;
        let complete = found.len() >= wanted.len();
        events.extend(found);
        if complete {
            return Ok(());
        }
    }
}

/// The events carrying `tag` after position `after`, at most `max`: those merged into the
/// tag index, then those after the last merge, found by the reader's tail, all in one read
/// transaction (as in [`read_stream`]).
fn read_tag(
    reader: &Reader,
    tag: &str,
    after: u64,
    max: usize,
) -> Result<Vec<EventRecord>, JournalError> {
    let tx = ReadTransaction::begin(reader)?;
    let mut tail = reader.tail.borrow_mut();
    tail.refresh(&tx)?;
    let after = clamp_i64(after);
    // Only the merged rows: a version 3 file has rows above the merge position too, which
    // the tail has as well.
    let mut events = query_events(
        &tx,
        &TAG_INDEXED,
        params![tag, after, tail.merged, limit(max)],
    )?;
    let candidates = tail
        .tagged(tag)
        .iter()
        .copied()
        .filter(|&position| position > after && position > tail.merged);
    read_candidates(&mut events, max, candidates, |wanted| {
        // Looked up by position, in one statement.
        query_events(&tx, &LISTED, [positions_json(wanted)])
    })?;
    Ok(events)
}

/// The merged events carrying tag `?1` with a position above `?2`, up to `?3` (the last
/// merged position), at most `?4`.
static TAG_INDEXED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM factum_event_tags t \
         JOIN factum_events e ON e.position = t.position \
         JOIN factum_streams s ON s.id = e.stream \
         WHERE t.tag = CAST(?1 AS TEXT) AND t.position > (SELECT ?2) \
         AND t.position <= (SELECT ?3) ORDER BY t.position LIMIT (SELECT ?4)"
    )
});

/// The events at the positions listed in `?1` (a JSON array), in order.
static LISTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM factum_events e \
         JOIN factum_streams s ON s.id = e.stream \
         WHERE e.position IN (SELECT value FROM json_each(?1)) ORDER BY e.position"
    )
});

/// A stream's merged events from `?2` to `?3`, at most `?4`; `?1` is the stream's id.
static INDEXED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM factum_stream_index i \
         JOIN factum_events e ON e.position = i.position \
         JOIN factum_streams s ON s.id = e.stream \
         WHERE i.stream = (SELECT ?1) AND i.sequence_nr >= (SELECT ?2) \
         AND i.sequence_nr <= (SELECT ?3) \
         ORDER BY i.sequence_nr LIMIT (SELECT ?4)"
    )
});

/// A stream's events at positions `?1` to `?2`; `?3` is the stream's id.
static SPANNED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM factum_events e \
         JOIN factum_streams s ON s.id = e.stream \
         WHERE e.position >= (SELECT ?1) AND e.position <= (SELECT ?2) \
         AND e.stream = (SELECT ?3) ORDER BY e.position"
    )
});

/// The event at position `?1`.
static AT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {EVENT_COLUMNS} FROM factum_events e \
         JOIN factum_streams s ON s.id = e.stream WHERE e.position = (SELECT ?1)"
    )
});

/// A read takes a stream's unmerged events in one scan of the positions they span when
/// there are at least this many and they are at least a quarter of those positions; one
/// by one otherwise.
const DENSE_MIN: usize = 16;

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<EventRecord>, JournalError> {
    let mut statement = conn.prepare_cached(sql).map_err(backend)?;
    let mut rows = statement.query(params).map_err(backend)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        events.push(event_record(row)?);
    }
    Ok(events)
}

impl Journal for SqliteJournal {
    /// With group commit, the writer thread drains every queued call into one
    /// transaction: the gateway need not gather writes for it.
    fn groups_writes(&self) -> bool {
        self.inner.group_commit
    }

    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>> {
        Box::pin(async move {
            let parts = batch.len();
            let checks = batch
                .iter()
                .any(|part| check_values(part, MAX_ROW).is_err())
                .then(|| {
                    let check = |part| check_values(part, MAX_ROW);
                    batch.iter().map(check).collect()
                });
            let (results, _parts) = self
                .submit(
                    |reply| Job::Write(batch, checks, reply),
                    || ((0..parts).map(|_| Err(stopped())).collect(), Vec::new()),
                )
                .await;
            results
        })
    }

    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        let pid = persistence_id.to_owned();
        let durability = Arc::clone(&self.inner.durability);
        Box::pin(self.read_with(move |reader| {
            let events = read_stream(reader, &pid, from, to, max)?;
            durability.before_returning(&events)?;
            Ok(events)
        }))
    }

    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        let pid = persistence_id.to_owned();
        let durability = Arc::clone(&self.inner.durability);
        Box::pin(self.read_with(move |reader| {
            let tx = ReadTransaction::begin(reader)?;
            let mut tail = reader.tail.borrow_mut();
            tail.refresh(&tx)?;
            let mut find = tx.prepare_cached(FIND_STREAM).map_err(backend)?;
            let highest = find_stream(&mut find, &pid, &mut tail)?.map_or(0, |s| s.highest);
            // The number may be that of any event this read saw (which one is not known
            // without another query): all of them must be durable.
            durability.before_returning_up_to(tail.seen)?;
            Ok(highest)
        }))
    }

    fn delete_to<'a>(
        &'a self,
        persistence_id: &'a str,
        to: u64,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        let pid = persistence_id.to_owned();
        Box::pin(self.submit(move |reply| Job::Delete(pid, to, reply), || Err(stopped())))
    }

    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        let durability = Arc::clone(&self.inner.durability);
        Box::pin(self.read_with(move |conn| {
            let events = query_events(
                conn,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM factum_events e \
                     JOIN factum_streams s ON s.id = e.stream WHERE e.position > (SELECT ?1) \
                     ORDER BY e.position LIMIT (SELECT ?2)"
                ),
                params![clamp_i64(after), limit(max)],
            )?;
            durability.before_returning(&events)?;
            Ok(events)
        }))
    }

    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        let tag = tag.to_owned();
        let durability = Arc::clone(&self.inner.durability);
        Box::pin(self.read_with(move |reader| {
            let events = read_tag(reader, &tag, after, max)?;
            durability.before_returning(&events)?;
            Ok(events)
        }))
    }
}

impl SnapshotStore for SqliteJournal {
    fn save(&self, snapshot: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(self.submit(|reply| Job::Save(snapshot, reply), || Err(stopped())))
    }

    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        max_sequence_nr: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>> {
        let pid = persistence_id.to_owned();
        Box::pin(self.read_with(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT sequence_nr, version, payload, timestamp FROM factum_snapshots \
                     WHERE persistence_id = CAST(?1 AS TEXT) AND sequence_nr <= (SELECT ?2) \
                     ORDER BY sequence_nr DESC LIMIT 1",
                )
                .map_err(backend)?;
            let mut rows = statement
                .query(params![pid, clamp_i64(max_sequence_nr)])
                .map_err(backend)?;
            let Some(row) = rows.next().map_err(backend)? else {
                return Ok(None);
            };
            let integer = |i: usize| match row.get_ref(i) {
                Ok(ValueRef::Integer(v)) => Ok(v),
                _ => Err(corrupt(format!(
                    "corrupt snapshot of `{pid}`: column {i} is not an integer"
                ))),
            };
            let sequence_nr = integer(0)?;
            Ok(Some(SnapshotRecord {
                sequence_nr: to_u64(sequence_nr, "sequence_nr", &pid, sequence_nr)?,
                version: to_u32(integer(1)?, "version", &pid, sequence_nr)?,
                payload: bytes(row.get_ref(2).map_err(backend)?),
                timestamp: to_u64(integer(3)?, "timestamp", &pid, sequence_nr)?,
                persistence_id: Arc::from(pid.as_str()),
            }))
        }))
    }

    fn retain<'a>(
        &'a self,
        persistence_id: &'a str,
        keep: usize,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        let pid = persistence_id.to_owned();
        Box::pin(self.submit(
            move |reply| Job::Retain(pid, keep, reply),
            || Err(stopped()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Tags;

    /// A fresh database path under the system's temporary directory.
    fn temp_path(name: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("factum-{name}-{}-{n}.db", std::process::id()))
    }

    fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    fn part(pid: &str, sequence_nr: u64, payload: &[u8]) -> AtomicWrite {
        let pid: Arc<str> = Arc::from(pid);
        AtomicWrite {
            persistence_id: Arc::clone(&pid),
            events: vec![EventRecord {
                persistence_id: pid,
                sequence_nr,
                manifest: "Deposited".into(),
                version: 1,
                payload: payload.to_vec(),
                tags: Tags::NONE,
                command_id: None,
                timestamp: 0,
                writer_id: Arc::from("test"),
                position: 0,
            }],
        }
    }

    /// A transaction that fails forgets the highest numbers the writer noted during it: a
    /// part it had accepted was never written, so the stream's next write is checked
    /// against the file again (and not refused as a conflict).
    #[tokio::test]
    async fn a_failed_transaction_forgets_the_numbers_it_noted() {
        let path = temp_path("forget");
        let journal = SqliteJournal::open(&path).await.unwrap();
        // A failure the checks cannot foresee: a trigger refuses one payload.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER boom BEFORE INSERT ON factum_events WHEN NEW.payload = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom'); END;",
            )
            .unwrap();
        let results = journal
            .write(vec![part("kept", 1, b"{}"), part("other", 1, b"boom")])
            .await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(e) if e.to_string().contains("boom"))),
            "the whole transaction fails: {results:?}"
        );
        assert_eq!(journal.highest_sequence_nr("kept").await.unwrap(), 0);
        let again = journal.write(vec![part("kept", 1, b"{}")]).await;
        assert!(matches!(again[..], [Ok(())]), "{again:?}");
        assert_eq!(journal.highest_sequence_nr("kept").await.unwrap(), 1);
        drop(journal);
        remove(&path);
    }

    /// The writer's connection (the one every write commits on) is in WAL mode with
    /// `synchronous = NORMAL`: SQLite does not sync the log on commit, factum does
    /// (the tests below), and SQLite still syncs it before a checkpoint.
    #[test]
    fn the_writer_commits_to_the_log_and_leaves_its_sync_to_factum() {
        let path = temp_path("durable");
        let conn = open_writer(&path).unwrap();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Integer(i) => i.to_string(),
                    other => String::from_utf8_lossy(other.as_bytes()?).into_owned(),
                })
            })
            .unwrap()
        };
        assert_eq!(pragma("synchronous"), "1", "1 is NORMAL");
        assert_eq!(pragma("journal_mode"), "wal");
        drop(conn);
        remove(&path);
    }

    /// The writer grows the log ahead of SQLite's writes, which then land in space
    /// already written instead of growing the file with each commit; and the log's zeroes
    /// past the last frame do not stop a copy of the files (as a crash leaves them) from
    /// opening with every event.
    #[tokio::test]
    async fn the_log_is_grown_ahead_and_recovers_past_its_zeroes() {
        let path = temp_path("grown");
        let journal = SqliteJournal::open(&path).await.unwrap();
        let log = PathBuf::from(format!("{}-wal", path.display()));
        let written = journal.write(vec![part("s", 1, b"{}")]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        let grown = std::fs::metadata(&log).unwrap().len();
        assert!(grown >= LOG_CHUNK, "{grown}");
        for n in 2..=50 {
            let written = journal.write(vec![part("s", n, b"{}")]).await;
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
        }
        assert_eq!(std::fs::metadata(&log).unwrap().len(), grown);
        // Another connection truncates the log: the writer grows it again.
        let conn = Connection::open(&path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        for n in 51..=60 {
            let written = journal.write(vec![part("s", n, b"{}")]).await;
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
            assert!(std::fs::metadata(&log).unwrap().len() >= LOG_CHUNK);
        }
        let copy = temp_path("grown-copy");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::copy(&log, format!("{}-wal", copy.display())).unwrap();
        let reopened = SqliteJournal::open(&copy).await.unwrap();
        assert_eq!(numbers(&reopened, "s").await, (1..=60).collect::<Vec<_>>());
        drop((journal, reopened, conn));
        remove(&path);
        remove(&copy);
    }

    /// A gate that test syncs of the log wait at until it opens.
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        const fn new() -> Self {
            Gate {
                open: Mutex::new(false),
                opened: Condvar::new(),
            }
        }

        fn wait(&self) {
            let open = lock(&self.open);
            drop(self.opened.wait_while(open, |open| !*open).unwrap());
        }

        fn set(&self, open: bool) {
            *lock(&self.open) = open;
            self.opened.notify_all();
        }

        /// Closes the gate until the guard is dropped, so that a failing test opens it
        /// again as it unwinds instead of hanging on a sync that waits.
        fn closed(&'static self) -> impl Drop {
            struct Opens(&'static Gate);
            impl Drop for Opens {
                fn drop(&mut self) {
                    self.0.set(true);
                }
            }
            self.set(false);
            Opens(self)
        }
    }

    /// How many events are committed to `path`, as another connection sees them.
    fn committed(path: &Path) -> i64 {
        let conn = Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM factum_events", [], |row| row.get(0))
            .unwrap()
    }

    /// A write is answered only once a sync of the log that started after its commit has
    /// returned, with group commit (the sync thread syncs) and without (the writer does).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_only_after_the_log_is_synced() {
        static GATE: Gate = Gate::new();
        static SYNCS: AtomicI64 = AtomicI64::new(0);
        fn gated() -> std::io::Result<()> {
            // Not the sync at open.
            if let Some("factum-sqlite-sync" | "factum-sqlite-writer") =
                std::thread::current().name()
            {
                GATE.wait();
                SYNCS.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
        for group_commit in [true, false] {
            let path = temp_path("synced");
            let mut builder = SqliteJournal::builder(&path).group_commit(group_commit);
            builder.sync = Some(gated);
            let journal = builder.open().await.unwrap();
            let gate = GATE.closed();
            let syncs = SYNCS.load(Ordering::SeqCst);
            let writing = {
                let journal = journal.clone();
                tokio::spawn(async move { journal.write(vec![part("s", 1, b"{}")]).await })
            };
            while committed(&path) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!writing.is_finished(), "answered before the log was synced");
            drop(gate);
            let written = writing.await.unwrap();
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
            assert!(SYNCS.load(Ordering::SeqCst) > syncs);
            drop(journal);
            remove(&path);
        }
    }

    /// A failed sync of the log fails the writes it was to cover with an unknown outcome
    /// (they were committed, and may or may not survive a crash); after it the journal
    /// takes no more writes, and reads refuse the events no sync covered.
    #[tokio::test]
    async fn a_failed_sync_fails_its_writes_and_refuses_later_ones() {
        /// Syncs before it fails: open's sync of what the file holds succeeds.
        static SYNCS_LEFT: AtomicI64 = AtomicI64::new(0);
        fn failing() -> std::io::Result<()> {
            if SYNCS_LEFT.fetch_sub(1, Ordering::SeqCst) > 0 {
                return Ok(());
            }
            Err(std::io::Error::other("the disk is gone"))
        }
        for group_commit in [true, false] {
            let path = temp_path("sync-fails");
            let mut builder = SqliteJournal::builder(&path).group_commit(group_commit);
            builder.sync = Some(failing);
            SYNCS_LEFT.store(0, Ordering::SeqCst);
            let error = builder.clone().open().await.unwrap_err();
            assert!(error.to_string().contains("the disk is gone"), "{error}");
            SYNCS_LEFT.store(1, Ordering::SeqCst);
            let journal = builder.open().await.unwrap();
            let written = journal.write(vec![part("s", 1, b"{}")]).await;
            match &written[..] {
                [Err(JournalError::Unknown(message))] => {
                    assert!(message.contains("the disk is gone"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(committed(&path), 1, "committed, but not known durable");
            let written = journal.write(vec![part("t", 1, b"{}")]).await;
            match &written[..] {
                [Err(error @ JournalError::Backend(_))] => {
                    let message = error.to_string();
                    assert!(message.contains("takes no more writes"), "{message}");
                    assert!(message.contains("the disk is gone"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(committed(&path), 1, "a refused write writes nothing");
            let read = journal.read_all(0, 10).await.unwrap_err();
            assert!(read.to_string().contains("the disk is gone"), "{read}");
            drop(journal);
            remove(&path);
        }
    }

    /// A read returns events only once they are durable: when the sync of their commit
    /// has not returned yet, the reader syncs the log itself, once, before answering. Each
    /// of the three reads of events does, and so does `highest_sequence_nr`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_returns_only_synced_events() {
        static GATE: Gate = Gate::new();
        static BY_READERS: AtomicI64 = AtomicI64::new(0);
        fn gated() -> std::io::Result<()> {
            match std::thread::current().name() {
                // The syncs that answer commits.
                Some("factum-sqlite-sync" | "factum-sqlite-writer") => GATE.wait(),
                Some("factum-sqlite-reader") => {
                    BY_READERS.fetch_add(1, Ordering::SeqCst);
                }
                // The sync at open.
                _ => {}
            }
            Ok(())
        }
        let path = temp_path("read-synced");
        let mut builder = SqliteJournal::builder(&path);
        builder.sync = Some(gated);
        let journal = builder.open().await.unwrap();
        for n in 1..=4 {
            let gate = GATE.closed();
            let writing = {
                let journal = journal.clone();
                tokio::spawn(async move { journal.write(vec![tagged("s", n, n, &["t"])]).await })
            };
            while committed(&path) < i64::try_from(n).unwrap() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if n == 4 {
                assert_eq!(journal.highest_sequence_nr("s").await.unwrap(), 4);
            } else {
                let events = match n {
                    1 => journal.read_all(0, 10).await.unwrap(),
                    2 => journal.read("s", 1, u64::MAX, 10).await.unwrap(),
                    _ => journal.read_tag("t", 0, 10).await.unwrap(),
                };
                let numbers: Vec<_> = events.iter().map(|e| e.sequence_nr).collect();
                assert_eq!(numbers, (1..=n).collect::<Vec<_>>());
            }
            assert_eq!(BY_READERS.load(Ordering::SeqCst), i64::try_from(n).unwrap());
            // Now synced: reading them again syncs nothing.
            journal.read_all(0, 10).await.unwrap();
            assert_eq!(BY_READERS.load(Ordering::SeqCst), i64::try_from(n).unwrap());
            assert!(!writing.is_finished());
            drop(gate);
            let written = writing.await.unwrap();
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
        }
        drop(journal);
        remove(&path);
    }

    /// Opening a file syncs its log once, so that reading what it held syncs nothing more
    /// (before, a read of events newer than any read before synced the log each time).
    #[tokio::test]
    async fn reads_of_what_a_file_held_at_open_sync_nothing() {
        static SYNCS: AtomicI64 = AtomicI64::new(0);
        fn counted() -> std::io::Result<()> {
            SYNCS.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        let path = temp_path("reopened");
        let journal = SqliteJournal::open(&path).await.unwrap();
        for n in 1..=20 {
            let written = journal.write(vec![part(&format!("s-{n}"), 1, b"{}")]).await;
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
        }
        drop(journal);
        let mut builder = SqliteJournal::builder(&path);
        builder.sync = Some(counted);
        let journal = builder.open().await.unwrap();
        assert_eq!(SYNCS.load(Ordering::SeqCst), 1, "open syncs once");
        for n in 1..=20 {
            assert_eq!(numbers(&journal, &format!("s-{n}")).await, [1]);
        }
        assert_eq!(journal.read_all(0, 100).await.unwrap().len(), 20);
        assert_eq!(SYNCS.load(Ordering::SeqCst), 1, "reads sync nothing");
        drop(journal);
        remove(&path);
    }

    /// The sync thread answers the lists handed to it only once its sync has returned.
    #[test]
    fn the_sync_thread_answers_only_after_its_sync() {
        static GATE: Gate = Gate::new();
        static WAITING: AtomicI64 = AtomicI64::new(0);
        fn gated() -> std::io::Result<()> {
            WAITING.fetch_add(1, Ordering::SeqCst);
            GATE.wait();
            Ok(())
        }
        let path = temp_path("sync-thread");
        let mut durability = Durability::new(std::fs::File::create(&path).unwrap());
        durability.hook = Some(gated);
        let durability = Arc::new(durability);
        let gate = GATE.closed();
        let (committed, to_sync) = mpsc::channel();
        let (spare, spares) = mpsc::channel();
        let syncing = Arc::clone(&durability);
        let thread = std::thread::spawn(move || run_syncer(&syncing, to_sync, spare));
        let (reply, mut answer) = oneshot::channel();
        committed.send((vec![Done::One(Ok(()), reply)], 7)).unwrap();
        while WAITING.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            answer.try_recv().is_err(),
            "answered before the sync returned"
        );
        assert_eq!(durability.synced.load(Ordering::SeqCst), 0);
        drop(gate);
        drop(committed);
        thread.join().unwrap();
        assert!(matches!(answer.try_recv(), Ok(Ok(()))));
        assert_eq!(durability.synced.load(Ordering::SeqCst), 7);
        assert_eq!(
            spares.try_recv().map(|list| list.len()),
            Ok(0),
            "the list comes back"
        );
        remove(&path);
    }

    /// With group commit, a commit made while others wait goes to the sync thread, and the
    /// writer commits the next meanwhile; those commits are answered only once the sync
    /// thread's sync has returned. (A commit with nothing waiting behind it, and no sync
    /// running, is synced by the writer itself: the hop would only add a wake-up.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_handed_to_the_sync_thread_are_answered_after_its_sync() {
        static GATE: Gate = Gate::new();
        static WAITING: AtomicI64 = AtomicI64::new(0);
        fn gated() -> std::io::Result<()> {
            if std::thread::current().name() == Some("factum-sqlite-sync") {
                WAITING.fetch_add(1, Ordering::SeqCst);
                GATE.wait();
            }
            Ok(())
        }
        let path = temp_path("handed");
        let mut builder = SqliteJournal::builder(&path);
        builder.sync = Some(gated);
        let journal = builder.open().await.unwrap();
        let gate = GATE.closed();
        let answered = Arc::new(AtomicI64::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let (journal, answered) = (journal.clone(), Arc::clone(&answered));
                tokio::spawn(async move {
                    for n in 1..=200 {
                        let written = journal
                            .write(vec![part(&format!("s-{task}"), n, b"{}")])
                            .await;
                        assert!(matches!(written[..], [Ok(())]), "{written:?}");
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        while WAITING.load(Ordering::SeqCst) == 0 {
            let done = tasks.iter().all(tokio::task::JoinHandle::is_finished);
            assert!(!done, "no commit was handed to the sync thread");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The sync thread waits: from now on every commit is handed to it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let answered_now = answered.load(Ordering::SeqCst);
        assert!(
            committed(&path) > answered_now,
            "every commit answered while the sync thread had not synced"
        );
        drop(gate);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(committed(&path), 16 * 200);
        drop(journal);
        remove(&path);
    }

    /// When a failed statement makes SQLite roll the whole transaction back itself, nothing
    /// more runs in it: before, the tag rows of the parts written until then went in on
    /// their own (SQLite was back in autocommit), pointing at positions the next events
    /// would take.
    #[tokio::test]
    async fn nothing_runs_after_sqlite_rolled_the_transaction_back() {
        let path = temp_path("rolled-back");
        let journal = SqliteJournal::open(&path).await.unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER gone BEFORE INSERT ON factum_events \
                 WHEN NEW.payload = 'roll back' BEGIN SELECT RAISE(ROLLBACK, 'gone'); END;",
            )
            .unwrap();
        let mut tagged = part("tagged", 1, b"{}");
        tagged.events[0].tags = Tags::fixed(&["t"]);
        let results = journal
            .write(vec![tagged, part("doomed", 1, b"roll back")])
            .await;
        assert!(results.iter().all(Result::is_err), "{results:?}");
        // The next event takes the position the tagged one had for a moment.
        let later = journal.write(vec![part("untagged", 1, b"{}")]).await;
        assert!(matches!(later[..], [Ok(())]), "{later:?}");
        assert_eq!(journal.read_tag("t", 0, 100).await.unwrap(), []);
        assert_eq!(journal.highest_sequence_nr("tagged").await.unwrap(), 0);
        drop(journal);
        remove(&path);
    }

    /// The same when the statement that made SQLite roll back was a snapshot save's, in a
    /// savepoint of its own: the write queued behind it in the same transaction does not
    /// run (in autocommit it would have been committed alone, then reported unknown).
    #[tokio::test]
    async fn nothing_runs_after_a_snapshot_save_rolled_the_transaction_back() {
        let path = temp_path("rolled-back-save");
        let journal = SqliteJournal::open(&path).await.unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "CREATE TRIGGER gone BEFORE INSERT ON factum_snapshots \
                 BEGIN SELECT RAISE(ROLLBACK, 'gone'); END;",
            )
            .unwrap();
        // Another connection holds the write lock: the writer waits in its first
        // transaction, and the save and the write behind it queue up for the next one.
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let first = tokio::spawn({
            let journal = journal.clone();
            async move { journal.write(vec![part("first", 1, b"{}")]).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let save = tokio::spawn({
            let journal = journal.clone();
            async move {
                journal
                    .save(SnapshotRecord {
                        persistence_id: Arc::from("saved"),
                        sequence_nr: 1,
                        version: 1,
                        payload: b"{}".to_vec(),
                        timestamp: 0,
                    })
                    .await
            }
        });
        let write = tokio::spawn({
            let journal = journal.clone();
            async move { journal.write(vec![part("queued", 1, b"{}")]).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        other.execute_batch("COMMIT").unwrap();
        assert!(matches!(first.await.unwrap()[..], [Ok(())]));
        assert!(save.await.unwrap().is_err());
        let written = write.await.unwrap();
        assert!(
            matches!(&written[..], [Err(JournalError::Backend(e))] if e.to_string().contains("rolled")),
            "{written:?}"
        );
        assert_eq!(journal.highest_sequence_nr("queued").await.unwrap(), 0);
        drop(journal);
        remove(&path);
    }

    /// A value SQLite cannot store (a payload that is not UTF-8, a sequence number above
    /// `i64::MAX`) fails its own part, not the other aggregates' parts committed with it.
    #[tokio::test]
    async fn values_it_cannot_store_fail_only_their_part() {
        let path = temp_path("bad-values");
        let journal = SqliteJournal::open(&path).await.unwrap();
        let results = journal
            .write(vec![
                part("a", 1, b"{}"),
                part("not-utf8", 1, &[0xff, 0xfe]),
                part("too-large", u64::MAX, b"{}"),
                part("b", 1, b"{}"),
            ])
            .await;
        assert!(
            matches!(
                &results[..],
                [Ok(()), Err(JournalError::Encode(utf8)), Err(JournalError::Encode(large)), Ok(())]
                    if utf8.contains("not UTF-8") && large.contains("too large")
            ),
            "{results:?}"
        );
        for (pid, highest) in [("a", 1), ("b", 1), ("not-utf8", 0), ("too-large", 0)] {
            assert_eq!(
                journal.highest_sequence_nr(pid).await.unwrap(),
                highest,
                "{pid}"
            );
        }
        drop(journal);
        remove(&path);
    }

    /// A row larger than SQLite stores fails its own part: the bound is checked before
    /// anything is written (here with a small bound; SQLite's own is a billion bytes).
    #[test]
    fn a_row_over_the_bound_is_refused_before_it_is_written() {
        let mut event = part("big", 1, &[b'x'; 900]);
        event.events[0].tags = Tags::fixed(&["t"]);
        // 900 payload + 9 manifest + 4 writer + 9 tag + 64 = 986 bytes at most.
        assert!(check_values(&event, 986).is_ok());
        let refused = check_values(&event, 985).unwrap_err();
        assert!(
            matches!(&refused, JournalError::Encode(m) if m.contains("event 1 of `big`")
                && m.contains("more than SQLite stores in one row")),
            "{refused:?}"
        );
        assert_eq!(
            MAX_ROW, 1_000_000_000,
            "SQLITE_MAX_LENGTH of the bundled build"
        );
    }

    /// The event insert binds again only the values that differ from the event before
    /// it: whichever values change from one event to the next, in one part or across
    /// parts, each event reads back as it was written.
    #[tokio::test]
    async fn each_event_keeps_its_own_values() {
        let path = temp_path("values");
        let journal = SqliteJournal::open(&path).await.unwrap();
        let base = part("x", 1, br#"{"n":0}"#).events.remove(0);
        let edits: [fn(&mut EventRecord); 8] = [
            |_| {},
            |_| {},
            |e| e.manifest = "Withdrawn".into(),
            |e| e.version = 2,
            |e| e.tags = Tags::owned(vec!["t".into()]),
            |e| e.command_id = Some("cmd-1".into()),
            |e| e.writer_id = Arc::from("other"),
            |e| e.timestamp = 9,
        ];
        // Each edit alone, then all of them, then none again: every value changes back.
        let mut events: Vec<EventRecord> = edits
            .iter()
            .chain(&edits[..1])
            .map(|edit| {
                let mut event = base.clone();
                edit(&mut event);
                event
            })
            .collect();
        let mut all = base.clone();
        edits.iter().for_each(|edit| edit(&mut all));
        events.insert(7, all);
        for (n, event) in events.iter_mut().enumerate() {
            event.payload = format!(r#"{{"n":{n}}}"#).into_bytes();
        }
        // The first five in one part of stream `x`, the rest one part each of `y`, `z`...
        let mut parts = vec![AtomicWrite {
            persistence_id: Arc::from("x"),
            events: events[..5]
                .iter()
                .enumerate()
                .map(|(i, e)| EventRecord {
                    persistence_id: Arc::from("x"),
                    sequence_nr: i as u64 + 1,
                    ..e.clone()
                })
                .collect(),
        }];
        for (i, event) in events[5..].iter().enumerate() {
            let pid: Arc<str> = Arc::from(format!("p{i}"));
            parts.push(AtomicWrite {
                persistence_id: Arc::clone(&pid),
                events: vec![EventRecord {
                    persistence_id: pid,
                    ..event.clone()
                }],
            });
        }
        let written = journal.write(parts.clone()).await;
        assert!(written.iter().all(Result::is_ok), "{written:?}");
        let read = journal.read_all(0, 100).await.unwrap();
        let expected: Vec<_> = parts.iter().flat_map(|p| p.events.iter()).collect();
        assert_eq!(read.len(), expected.len());
        for (read, expected) in read.iter().zip(expected) {
            let fields = |e: &EventRecord| {
                (
                    e.persistence_id.to_string(),
                    e.sequence_nr,
                    e.manifest.to_string(),
                    e.version,
                    e.payload.clone(),
                    e.tags.iter().map(str::to_owned).collect::<Vec<_>>(),
                    e.command_id.clone(),
                    e.timestamp,
                    e.writer_id.to_string(),
                )
            };
            assert_eq!(fields(read), fields(expected));
        }
        drop(journal);
        remove(&path);
    }

    /// A part that would start a stream adds the stream first. A stream that another
    /// handle wrote (this one's writer does not know it) is found instead, and checked:
    /// its events go on in the same stream; and a part that cannot start a stream adds
    /// none.
    #[tokio::test]
    async fn a_stream_is_added_once() {
        let path = temp_path("streams");
        let first = SqliteJournal::open(&path).await.unwrap();
        let written = first
            .write(vec![part("s", 1, b"{}"), part("t", 1, b"{}")])
            .await;
        assert!(written.iter().all(Result::is_ok), "{written:?}");
        let second = SqliteJournal::open(&path).await.unwrap();
        assert!(matches!(
            second.write(vec![part("s", 1, b"{}")]).await[..],
            [Err(JournalError::Conflict { .. })]
        ));
        assert!(matches!(
            second.write(vec![part("s", 2, b"{}")]).await[..],
            [Ok(())]
        ));
        assert!(matches!(
            second.write(vec![part("u", 2, b"{}")]).await[..],
            [Err(JournalError::Conflict { .. })]
        ));
        let s = first.read("s", 1, u64::MAX, 10).await.unwrap();
        assert_eq!(s.iter().map(|e| e.sequence_nr).collect::<Vec<_>>(), [1, 2]);
        drop((first, second));
        let conn = Connection::open(&path).unwrap();
        let streams: Vec<String> = conn
            .prepare("SELECT persistence_id FROM factum_streams ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(streams, ["s", "t"]);
        drop(conn);
        remove(&path);
    }

    /// `pid`'s events `from..=to`, each carrying `tags`.
    fn tagged(pid: &str, from: u64, to: u64, tags: &[&str]) -> AtomicWrite {
        let mut write = part(pid, from, b"{}");
        let first = write.events.pop().unwrap();
        write.events = (from..=to)
            .map(|seq| EventRecord {
                sequence_nr: seq,
                tags: Tags::owned(tags.iter().map(|t| t.to_string()).collect()),
                ..first.clone()
            })
            .collect();
        write
    }

    /// Waits until the writer has done what it does after its last answer (a merge): it
    /// runs a job at a time, and this one changes nothing.
    async fn settle(journal: &SqliteJournal) {
        journal.delete_to("no such stream", 1).await.unwrap();
    }

    /// `(persistence id, sequence number)` of each event `journal` reads for `tag`, paged
    /// `page` at a time.
    async fn by_tag(journal: &SqliteJournal, tag: &str, page: usize) -> Vec<(String, u64)> {
        let mut read = Vec::new();
        let mut after = 0;
        loop {
            let events = journal.read_tag(tag, after, page).await.unwrap();
            assert!(events.len() <= page);
            let Some(last) = events.last() else {
                return read;
            };
            after = last.position;
            read.extend(
                events
                    .iter()
                    .map(|e| (e.persistence_id.to_string(), e.sequence_nr)),
            );
        }
    }

    /// A commit writes no tag index row: a merge indexes the tags, each of its rows once in
    /// one multi-row statement or more (85 = 64 + 16 + 4 + 1 rows of a tag), a tag repeated
    /// in one event once. Every tag reads back whole and in order, from the writing handle
    /// and from another one, paged or not, before the merge, across it and after it, and
    /// after a delete that spans merged and unmerged events.
    #[tokio::test]
    async fn tags_read_back_whole_merged_or_not() {
        let path = temp_path("tags");
        let journal = SqliteJournal::builder(&path)
            .index_batch(100)
            .open()
            .await
            .unwrap();
        let other = SqliteJournal::open(&path).await.unwrap();
        let conn = Connection::open(&path).unwrap();
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        let tricky = "quote \" nul \u{0} ünïcødé";
        let written = journal
            .write(vec![
                tagged("x", 1, 85, &["a", tricky, "a"]),
                tagged("y", 1, 2, &["a"]),
            ])
            .await;
        assert!(written.iter().all(Result::is_ok), "{written:?}");
        let x = |range: std::ops::RangeInclusive<u64>| range.map(|s| ("x".to_string(), s));
        let mut a: Vec<_> = x(1..=85)
            .chain([("y".into(), 1), ("y".into(), 2)])
            .collect();
        let journals = [&journal, &other];
        let check = |a: Vec<(String, u64)>, tricky_x: Vec<(String, u64)>| async move {
            for page in [1, 7, 1000] {
                for j in journals {
                    assert_eq!(by_tag(j, "a", page).await, a, "page {page}");
                    assert_eq!(by_tag(j, tricky, page).await, tricky_x, "page {page}");
                    assert_eq!(by_tag(j, "none", page).await, []);
                }
            }
        };
        check(a.clone(), x(1..=85).collect()).await;
        assert_eq!(one("SELECT merged FROM factum_positions"), 0);
        assert_eq!(one("SELECT count(*) FROM factum_event_tags"), 0);

        // 20 more events of `y`: 107 in all, over the batch of 100, so the writer merges.
        let written = journal.write(vec![tagged("y", 3, 22, &["a"])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        settle(&journal).await;
        a.extend((3..=22).map(|s| ("y".to_string(), s)));
        assert_eq!(one("SELECT merged FROM factum_positions"), 107);
        assert_eq!(
            one("SELECT count(*) FROM factum_event_tags WHERE tag = 'a'"),
            107
        );
        assert_eq!(one("SELECT count(*) FROM factum_event_tags"), 107 + 85);
        check(a.clone(), x(1..=85).collect()).await;

        // Unmerged events after the merged ones, then a delete spanning both.
        let written = journal.write(vec![tagged("x", 86, 90, &[tricky])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        assert_eq!(one("SELECT count(*) FROM factum_event_tags"), 107 + 85);
        check(a.clone(), x(1..=90).collect()).await;
        journal.delete_to("x", 88).await.unwrap();
        a.retain(|(pid, _)| pid != "x");
        check(a.clone(), x(89..=90).collect()).await;
        drop((conn, journal, other));
        remove(&path);
    }

    /// A reader's tail keeps the events it saw until they are merged, deleted or not: a
    /// read whose first candidates were deleted since reads the next ones in their place,
    /// and returns fewer than asked only when there are no more.
    #[tokio::test]
    async fn a_read_skips_events_deleted_since_its_tail_saw_them() {
        let path = temp_path("deleted-candidates");
        let journal = SqliteJournal::open(&path).await.unwrap();
        let written = journal.write(vec![tagged("s", 1, 5, &["t"])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        // The reads run one at a time, on the thread that is waiting: its tail sees 1..=5.
        assert_eq!(numbers(&journal, "s").await, [1, 2, 3, 4, 5]);
        journal.delete_to("s", 3).await.unwrap();
        let read = |max: usize| journal.read("s", 1, u64::MAX, max);
        let seqs = |events: Vec<EventRecord>| -> Vec<u64> {
            events.iter().map(|e| e.sequence_nr).collect()
        };
        assert_eq!(seqs(read(1).await.unwrap()), [4]);
        assert_eq!(seqs(read(2).await.unwrap()), [4, 5]);
        assert_eq!(seqs(read(3).await.unwrap()), [4, 5]);
        let tag = |max: usize| journal.read_tag("t", 0, max);
        assert_eq!(seqs(tag(1).await.unwrap()), [4]);
        assert_eq!(seqs(tag(2).await.unwrap()), [4, 5]);
        assert_eq!(seqs(tag(3).await.unwrap()), [4, 5]);
        drop(journal);
        remove(&path);
    }

    /// An event whose tags are not a list of strings (written by hand into the file) stops
    /// no merge: the others are indexed, and read by tag as before.
    #[tokio::test]
    async fn corrupt_tags_stop_no_merge() {
        let path = temp_path("corrupt-tags");
        let journal = SqliteJournal::builder(&path)
            .index_batch(4)
            .open()
            .await
            .unwrap();
        let written = journal.write(vec![tagged("s", 1, 2, &["t"])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO factum_streams (persistence_id) VALUES ('bad');
             INSERT INTO factum_events (position, stream, sequence_nr, manifest, version,
                 payload, tags, timestamp, writer_id)
             SELECT 3, id, 1, 'Deposited', 1, '{}', '[\"t\", 1', 0, 'test'
             FROM factum_streams WHERE persistence_id = 'bad';",
        )
        .unwrap();
        let written = journal.write(vec![tagged("s", 3, 4, &["t"])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        settle(&journal).await;
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("SELECT merged FROM factum_positions"), 5);
        let indexed: String = conn
            .query_row(
                "SELECT group_concat(position) FROM factum_event_tags",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(indexed, "1,2,4,5");
        let s = |range: std::ops::RangeInclusive<u64>| range.map(|n| ("s".to_string(), n));
        assert_eq!(
            by_tag(&journal, "t", 10).await,
            s(1..=4).collect::<Vec<_>>()
        );
        drop((conn, journal));
        remove(&path);
    }

    /// Two events with one stream and number (a row copied by hand into the file) stop no
    /// merge: the index keeps the earlier, and the stream reads as before.
    #[tokio::test]
    async fn a_duplicate_number_stops_no_merge() {
        let path = temp_path("duplicate");
        let journal = SqliteJournal::builder(&path)
            .index_batch(4)
            .open()
            .await
            .unwrap();
        let written = journal.write(vec![tagged("s", 1, 2, &[])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO factum_events (position, stream, sequence_nr, manifest, version,
                 payload, tags, timestamp, writer_id)
             SELECT 3, stream, sequence_nr, manifest, version, '{\"copy\":1}', tags,
                 timestamp, writer_id FROM factum_events WHERE position = 2;",
        )
        .unwrap();
        let written = journal.write(vec![tagged("s", 3, 4, &[])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        settle(&journal).await;
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("SELECT merged FROM factum_positions"), 5);
        assert_eq!(
            one("SELECT CAST(group_concat(position, '') AS INTEGER) FROM \
                 (SELECT position FROM factum_stream_index ORDER BY position)"),
            1245
        );
        let events = journal.read("s", 1, u64::MAX, 10).await.unwrap();
        let read: Vec<_> = events.iter().map(|e| (e.sequence_nr, e.position)).collect();
        assert_eq!(read, [(1, 1), (2, 2), (3, 4), (4, 5)]);
        drop((conn, journal));
        remove(&path);
    }

    /// A version 3 file indexed tags as they were committed, unmerged events' too: opened
    /// by this version, it is version 4, and each tagged event is read once, before and
    /// after its rows are merged again.
    #[tokio::test]
    async fn a_version_3_file_reads_each_tag_once() {
        let path = temp_path("v3");
        let journal = SqliteJournal::builder(&path)
            .index_batch(6)
            .open()
            .await
            .unwrap();
        let written = journal.write(vec![tagged("s", 1, 4, &["t"])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        drop(journal);
        // What version 3 left: a row per event and tag, merged or not.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO factum_event_tags (tag, position) VALUES ('t', 1), ('t', 2),
                 ('t', 3), ('t', 4);
             PRAGMA user_version = 3;",
        )
        .unwrap();
        let journal = SqliteJournal::builder(&path)
            .index_batch(6)
            .open()
            .await
            .unwrap();
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("PRAGMA user_version"), SCHEMA_VERSION);
        let s = |range: std::ops::RangeInclusive<u64>| range.map(|n| ("s".to_string(), n));
        assert_eq!(
            by_tag(&journal, "t", 10).await,
            s(1..=4).collect::<Vec<_>>()
        );
        assert_eq!(by_tag(&journal, "t", 3).await, s(1..=4).collect::<Vec<_>>());
        let written = journal.write(vec![tagged("s", 5, 6, &["t"])]).await;
        assert!(matches!(written[..], [Ok(())]), "{written:?}");
        settle(&journal).await;
        assert_eq!(one("SELECT merged FROM factum_positions"), 6);
        assert_eq!(one("SELECT count(*) FROM factum_event_tags"), 6);
        assert_eq!(
            by_tag(&journal, "t", 10).await,
            s(1..=6).collect::<Vec<_>>()
        );
        drop((conn, journal));
        remove(&path);
    }

    /// Schema version 1, as earlier builds created it: the fixture of the migration test.
    const SCHEMA_V1: &str = "
        CREATE TABLE factum_events (
            position INTEGER PRIMARY KEY AUTOINCREMENT, persistence_id TEXT NOT NULL,
            sequence_nr INTEGER NOT NULL, manifest TEXT NOT NULL, version INTEGER NOT NULL,
            payload TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', command_id TEXT,
            timestamp INTEGER NOT NULL, writer_id TEXT NOT NULL,
            UNIQUE (persistence_id, sequence_nr));
        CREATE TABLE factum_event_tags (tag TEXT NOT NULL, position INTEGER NOT NULL,
            PRIMARY KEY (tag, position)) WITHOUT ROWID;
        CREATE TABLE factum_streams (persistence_id TEXT NOT NULL PRIMARY KEY,
            highest INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE factum_snapshots (persistence_id TEXT NOT NULL,
            sequence_nr INTEGER NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL,
            timestamp INTEGER NOT NULL, PRIMARY KEY (persistence_id, sequence_nr)) WITHOUT ROWID;
        PRAGMA user_version = 1;";

    /// A version 1 file is migrated on open and loses nothing: events with their positions,
    /// tags, command ids and the tag index; the highest number of a stream whose events were
    /// deleted; the snapshots; and the positions of deleted events stay given.
    #[tokio::test]
    async fn a_version_1_file_is_migrated_on_open() {
        let path = temp_path("v1");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            let event = "INSERT INTO factum_events (persistence_id, sequence_nr, manifest, \
                         version, payload, tags, command_id, timestamp, writer_id) \
                         VALUES (?1, ?2, 'Deposited', 1, ?3, ?4, ?5, 7, 'old')";
            for (pid, seq, tags, command_id) in [
                ("a", 1, "[]", None),
                ("a", 2, "[]", None),
                ("a", 3, "[]", Some("cmd-a3")),
                ("b", 1, r#"["t"]"#, None),
                ("b", 2, r#"["t"]"#, None),
                ("c", 1, "[]", None),
            ] {
                let payload = format!(r#"{{"n":{seq}}}"#);
                conn.execute(event, params![pid, seq, payload, tags, command_id])
                    .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO factum_event_tags VALUES ('t', 4), ('t', 5);
                 DELETE FROM factum_events WHERE persistence_id = 'a' AND sequence_nr <= 2;
                 DELETE FROM factum_events WHERE persistence_id = 'c';
                 INSERT INTO factum_streams VALUES ('a', 3), ('c', 1);
                 INSERT INTO factum_snapshots VALUES ('a', 2, 1, '{\"n\":2}', 9);",
            )
            .unwrap();
        }

        let journal = SqliteJournal::open(&path).await.unwrap();
        let a = journal.read("a", 1, u64::MAX, 10).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].sequence_nr, a[0].position), (3, 3));
        assert_eq!(a[0].command_id.as_deref(), Some("cmd-a3"));
        assert_eq!(a[0].payload, br#"{"n":3}"#);
        assert_eq!((&*a[0].persistence_id, &*a[0].writer_id), ("a", "old"));
        assert_eq!(journal.highest_sequence_nr("a").await.unwrap(), 3);
        assert_eq!(journal.highest_sequence_nr("c").await.unwrap(), 1);
        let all: Vec<_> = journal.read_all(0, 10).await.unwrap();
        let all: Vec<_> = all
            .iter()
            .map(|e| (&*e.persistence_id, e.position))
            .collect();
        assert_eq!(all, [("a", 3), ("b", 4), ("b", 5)]);
        let tagged = journal.read_tag("t", 0, 10).await.unwrap();
        assert_eq!(
            tagged.iter().map(|e| e.position).collect::<Vec<_>>(),
            [4, 5]
        );
        let snapshot = journal.load("a", u64::MAX).await.unwrap().unwrap();
        assert_eq!(
            (snapshot.sequence_nr, &snapshot.payload[..]),
            (2, &br#"{"n":2}"#[..])
        );

        // `c`'s deleted event had position 6: the next event gets 7, and `c` goes on at 2.
        assert!(matches!(
            journal.write(vec![part("c", 1, b"{}")]).await[..],
            [Err(JournalError::Conflict { .. })]
        ));
        assert!(matches!(
            journal.write(vec![part("c", 2, b"{}")]).await[..],
            [Ok(())]
        ));
        let c = journal.read("c", 1, u64::MAX, 10).await.unwrap();
        assert_eq!((c[0].sequence_nr, c[0].position), (2, 7));
        drop(journal);

        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM factum_journal", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 4);
        drop(conn);
        // Opening the migrated file again changes nothing.
        let journal = SqliteJournal::open(&path).await.unwrap();
        assert_eq!(journal.read_all(0, 10).await.unwrap().len(), 4);
        drop(journal);
        remove(&path);
    }

    /// Schema version 2 as it was: the events with a `UNIQUE (stream, sequence_nr)` key.
    const SCHEMA_V2: &str = "
        CREATE TABLE factum_streams (id INTEGER PRIMARY KEY, persistence_id TEXT NOT NULL UNIQUE,
            highest INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE factum_events (position INTEGER PRIMARY KEY, stream INTEGER NOT NULL,
            sequence_nr INTEGER NOT NULL, manifest TEXT NOT NULL, version INTEGER NOT NULL,
            payload TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', command_id TEXT,
            timestamp INTEGER NOT NULL, writer_id TEXT NOT NULL, UNIQUE (stream, sequence_nr));
        CREATE TABLE factum_positions (highest INTEGER NOT NULL);
        INSERT INTO factum_positions (highest) VALUES (0);
        CREATE TABLE factum_event_tags (tag TEXT NOT NULL, position INTEGER NOT NULL,
            PRIMARY KEY (tag, position)) WITHOUT ROWID;
        CREATE TABLE factum_snapshots (persistence_id TEXT NOT NULL,
            sequence_nr INTEGER NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL,
            timestamp INTEGER NOT NULL, PRIMARY KEY (persistence_id, sequence_nr)) WITHOUT ROWID;
        CREATE VIEW factum_journal AS
            SELECT e.position, s.persistence_id, e.sequence_nr, e.manifest, e.version, e.payload,
                   e.tags, e.command_id, e.timestamp, e.writer_id
            FROM factum_events e JOIN factum_streams s ON s.id = e.stream;
        PRAGMA user_version = 2;";

    /// A version 2 file is migrated on open and loses nothing: its events, with their
    /// positions, command ids and tags, all merged into the stream index; the highest
    /// number and position of deleted events; the snapshots; and the view.
    #[tokio::test]
    async fn a_version_2_file_is_migrated_on_open() {
        let path = temp_path("v2");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V2).unwrap();
            conn.execute_batch(
                "INSERT INTO factum_streams (id, persistence_id, highest)
                     VALUES (1, 'a', 2), (2, 'b', 0), (3, 'c', 1);
                 INSERT INTO factum_events VALUES
                     (3, 1, 3, 'Deposited', 1, '{\"n\":3}', '[]', 'cmd-a3', 7, 'old'),
                     (4, 2, 1, 'Deposited', 1, '{\"n\":1}', '[\"t\"]', NULL, 7, 'old'),
                     (5, 2, 2, 'Deposited', 1, '{\"n\":2}', '[\"t\"]', NULL, 7, 'old');
                 INSERT INTO factum_event_tags VALUES ('t', 4), ('t', 5);
                 UPDATE factum_positions SET highest = 6;
                 INSERT INTO factum_snapshots VALUES ('a', 2, 1, '{\"n\":2}', 9);",
            )
            .unwrap();
        }

        let journal = SqliteJournal::open(&path).await.unwrap();
        let a = journal.read("a", 1, u64::MAX, 10).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].sequence_nr, a[0].position), (3, 3));
        assert_eq!(a[0].command_id.as_deref(), Some("cmd-a3"));
        assert_eq!(a[0].payload, br#"{"n":3}"#);
        let b = journal.read("b", 1, u64::MAX, 10).await.unwrap();
        assert_eq!(b.iter().map(|e| e.sequence_nr).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(journal.highest_sequence_nr("c").await.unwrap(), 1);
        let tagged = journal.read_tag("t", 0, 10).await.unwrap();
        assert_eq!(
            tagged.iter().map(|e| e.position).collect::<Vec<_>>(),
            [4, 5]
        );
        let snapshot = journal.load("a", u64::MAX).await.unwrap().unwrap();
        assert_eq!(snapshot.sequence_nr, 2);
        // The numbers taken stay taken; the next event gets the position after 6.
        assert!(matches!(
            journal.write(vec![part("b", 2, b"{}")]).await[..],
            [Err(JournalError::Conflict { .. })]
        ));
        assert!(matches!(
            journal.write(vec![part("c", 1, b"{}")]).await[..],
            [Err(JournalError::Conflict { .. })]
        ));
        assert!(matches!(
            journal.write(vec![part("c", 2, b"{}")]).await[..],
            [Ok(())]
        ));
        let c = journal.read("c", 1, u64::MAX, 10).await.unwrap();
        assert_eq!((c[0].sequence_nr, c[0].position), (2, 7));
        drop(journal);

        let conn = Connection::open(&path).unwrap();
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("PRAGMA user_version"), SCHEMA_VERSION);
        assert_eq!(one("SELECT count(*) FROM factum_journal"), 4);
        // Every event the file had when it was migrated is in the index.
        assert_eq!(one("SELECT merged FROM factum_positions"), 5);
        assert_eq!(
            one("SELECT count(*) FROM factum_stream_index i \
                 JOIN factum_events e ON e.position = i.position \
                 AND e.stream = i.stream AND e.sequence_nr = i.sequence_nr"),
            3
        );
        drop(conn);
        remove(&path);
    }

    /// The numbers of a stream's events, as read from `journal`.
    async fn numbers(journal: &SqliteJournal, pid: &str) -> Vec<u64> {
        let events = journal.read(pid, 1, u64::MAX, usize::MAX).await.unwrap();
        events.iter().map(|e| e.sequence_nr).collect()
    }

    /// With a small batch, the writer merges the stream index again and again: every
    /// stream reads back whole and in order from its own handle and from another one (whose
    /// reads catch up with writes it did not make), before and after merges, and after a
    /// delete that spans merged and unmerged events; a taken number is refused whether its
    /// event is merged or not.
    #[tokio::test]
    async fn merges_keep_every_event_readable() {
        let path = temp_path("merges");
        let journal = SqliteJournal::builder(&path)
            .index_batch(5)
            .open()
            .await
            .unwrap();
        let other = SqliteJournal::open(&path).await.unwrap();
        let streams = ["a", "b", "c"];
        for n in 1..=20u64 {
            for (i, pid) in streams.iter().enumerate() {
                // The streams move at different speeds: `c` writes every third round.
                if i == 2 && n % 3 != 0 {
                    continue;
                }
                let next = numbers(&journal, pid).await.len() as u64 + 1;
                let written = journal.write(vec![part(pid, next, b"{}")]).await;
                assert!(matches!(written[..], [Ok(())]), "{written:?}");
                let expected: Vec<u64> = (1..=next).collect();
                assert_eq!(numbers(&journal, pid).await, expected, "{pid} after {n}");
                assert_eq!(numbers(&other, pid).await, expected, "{pid} after {n}");
                assert_eq!(other.highest_sequence_nr(pid).await.unwrap(), next);
                assert!(matches!(
                    journal.write(vec![part(pid, next, b"{}")]).await[..],
                    [Err(JournalError::Conflict { .. })]
                ));
            }
        }
        let merged: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT merged FROM factum_positions", [], |row| row.get(0))
            .unwrap();
        assert!(merged >= 40, "merged up to {merged}");
        // `a` has 20 events, most merged, the last ones perhaps not: delete up to 18.
        journal.delete_to("a", 18).await.unwrap();
        assert_eq!(numbers(&journal, "a").await, [19, 20]);
        assert_eq!(numbers(&other, "a").await, [19, 20]);
        assert_eq!(journal.highest_sequence_nr("a").await.unwrap(), 20);
        journal.delete_to("a", 20).await.unwrap();
        assert_eq!(numbers(&other, "a").await, Vec::<u64>::new());
        assert!(matches!(
            other.write(vec![part("a", 20, b"{}")]).await[..],
            [Err(JournalError::Conflict { .. })]
        ));
        assert!(matches!(
            other.write(vec![part("a", 21, b"{}")]).await[..],
            [Ok(())]
        ));
        assert_eq!(numbers(&journal, "a").await, [21]);
        drop((journal, other));
        remove(&path);
    }

    /// A merge that fails fails no write and loses no event: the events stay readable from
    /// the tail, and a later merge, once it can, indexes them all.
    #[tokio::test]
    async fn a_failing_merge_fails_no_write() {
        let path = temp_path("merge-fails");
        let journal = SqliteJournal::builder(&path)
            .index_batch(2)
            .open()
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER no_merge BEFORE INSERT ON factum_stream_index \
             BEGIN SELECT RAISE(ABORT, 'no merge'); END;",
        )
        .unwrap();
        let merged = || -> i64 {
            conn.query_row("SELECT merged FROM factum_positions", [], |row| row.get(0))
                .unwrap()
        };
        for n in 1..=6 {
            let written = journal.write(vec![part("s", n, b"{}")]).await;
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
            assert_eq!(numbers(&journal, "s").await, (1..=n).collect::<Vec<_>>());
        }
        assert_eq!(merged(), 0);
        conn.execute_batch("DROP TRIGGER no_merge").unwrap();
        let mut n = 6;
        while merged() == 0 {
            n += 1;
            assert!(n <= 20, "no merge after the trigger went");
            let written = journal.write(vec![part("s", n, b"{}")]).await;
            assert!(matches!(written[..], [Ok(())]), "{written:?}");
        }
        let indexed: i64 = conn
            .query_row("SELECT count(*) FROM factum_stream_index", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(indexed, merged());
        assert_eq!(numbers(&journal, "s").await, (1..=n).collect::<Vec<_>>());
        drop((conn, journal));
        remove(&path);
    }

    /// A stream's unmerged events are read one by one when they are few or spread out, and
    /// in one scan of the positions they span when they are many and close together: both
    /// give exactly the stream's events in the range asked for, up to the count asked
    /// for, and skip those deleted.
    #[tokio::test]
    async fn unmerged_events_read_alone_or_by_scan() {
        let path = temp_path("unmerged");
        let journal = SqliteJournal::open(&path).await.unwrap();
        // `dense` writes every other position; `sparse` one in eleven.
        for n in 1..=100u64 {
            let mut parts = vec![part("filler", n, b"{}")];
            if n <= 40 {
                parts.push(part("dense", n, b"{}"));
            }
            if n % 10 == 0 {
                parts.push(part("sparse", n / 10, b"{}"));
            }
            let written = journal.write(parts).await;
            assert!(written.iter().all(Result::is_ok), "{written:?}");
        }
        let read = |pid: &'static str, from: u64, to: u64, max: usize| {
            let journal = journal.clone();
            async move {
                let events = journal.read(pid, from, to, max).await.unwrap();
                assert!(events.iter().all(|e| &*e.persistence_id == pid));
                events.iter().map(|e| e.sequence_nr).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            read("dense", 1, u64::MAX, usize::MAX).await,
            (1..=40).collect::<Vec<_>>()
        );
        assert_eq!(
            read("dense", 10, 30, usize::MAX).await,
            (10..=30).collect::<Vec<_>>()
        );
        assert_eq!(
            read("dense", 10, 30, 17).await,
            (10..=26).collect::<Vec<_>>()
        );
        assert_eq!(read("dense", 35, 50, 3).await, [35, 36, 37]);
        assert_eq!(
            read("sparse", 1, u64::MAX, usize::MAX).await,
            (1..=10).collect::<Vec<_>>()
        );
        assert_eq!(read("sparse", 3, 5, usize::MAX).await, [3, 4, 5]);
        journal.delete_to("dense", 20).await.unwrap();
        assert_eq!(
            read("dense", 1, u64::MAX, usize::MAX).await,
            (21..=40).collect::<Vec<_>>()
        );
        drop(journal);
        remove(&path);
    }

    /// Reads that run while the writer merges see each event once: the merge position, the
    /// index and the events are read in one transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_during_merges_see_each_event_once() {
        let path = temp_path("merging");
        let journal = SqliteJournal::builder(&path)
            .index_batch(3)
            .open()
            .await
            .unwrap();
        let writer = journal.clone();
        let writes = tokio::spawn(async move {
            for n in 1..=300u64 {
                let written = writer.write(vec![part("s", n, b"{}")]).await;
                assert!(matches!(written[..], [Ok(())]), "{written:?}");
            }
        });
        let mut reads = 0;
        while !writes.is_finished() {
            let seen = numbers(&journal, "s").await;
            let expected: Vec<u64> = (1..=seen.len() as u64).collect();
            assert_eq!(seen, expected);
            reads += 1;
        }
        writes.await.unwrap();
        assert!(reads > 1);
        assert_eq!(numbers(&journal, "s").await, (1..=300).collect::<Vec<_>>());
        drop(journal);
        remove(&path);
    }

    /// A file of a newer schema version is refused, and left as it was.
    #[tokio::test]
    async fn a_newer_schema_version_is_refused() {
        let path = temp_path("newer");
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {newer};"))
            .unwrap();
        let error = SqliteJournal::open(&path).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("schema version {newer}")),
            "{error}"
        );
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, newer);
        remove(&path);
    }

    /// With group commit, the writer thread commits every queued call together, so the
    /// journal tells the gateway to pass each write on at once; without it, it does not.
    #[tokio::test]
    async fn groups_writes_when_it_commits_them_together() {
        for group_commit in [true, false] {
            let path = temp_path("groups");
            let journal = SqliteJournal::builder(&path)
                .group_commit(group_commit)
                .open()
                .await
                .unwrap();
            assert_eq!(journal.groups_writes(), group_commit);
            drop(journal);
            remove(&path);
        }
    }

    /// Queues `job` on `reads` (at `path`) and returns a receiver of what it sent.
    fn read_job<T: Send + 'static>(
        reads: &Arc<Reads>,
        path: &Path,
        job: impl FnOnce(Result<&Reader, &JournalError>) -> T + Send + 'static,
    ) -> mpsc::Receiver<T> {
        let (tx, rx) = mpsc::channel();
        Reads::push(
            reads,
            path,
            Box::new(move |conn| {
                let _ = tx.send(job(conn));
            }),
        );
        rx
    }

    const PATIENCE: Duration = Duration::from_secs(30);

    /// As many reads as there are reader threads run at once: reads that each wait for
    /// all the others finish only if every one of them got a thread of its own.
    #[test]
    fn reads_run_side_by_side_on_their_own_threads() {
        let path = temp_path("readers");
        let reads = Arc::new(Reads::default());
        let all = Arc::new(std::sync::Barrier::new(MAX_READERS));
        let answers: Vec<_> = (0..MAX_READERS)
            .map(|_| {
                let all = Arc::clone(&all);
                read_job(&reads, &path, move |conn| {
                    let one: i64 = conn
                        .unwrap()
                        .query_row("SELECT 1", [], |r| r.get(0))
                        .unwrap();
                    all.wait();
                    one
                })
            })
            .collect();
        for answer in answers {
            assert_eq!(answer.recv_timeout(PATIENCE), Ok(1));
        }
        assert_eq!(reads.queue().threads, MAX_READERS);
        reads.close();
        remove(&path);
    }

    /// More reads than threads queued at once, then reads one at a time: every one is
    /// answered, no thread more than `MAX_READERS` starts, and closing stops them all.
    #[test]
    fn every_queued_read_is_answered() {
        let path = temp_path("queued");
        let reads = Arc::new(Reads::default());
        let answers: Vec<_> = (0..200_i64)
            .map(|i| {
                read_job(&reads, &path, move |conn| {
                    conn.unwrap()
                        .query_row("SELECT ?1", [i], |r| r.get::<_, i64>(0))
                        .unwrap()
                })
            })
            .collect();
        for (i, answer) in (0..).zip(answers) {
            assert_eq!(answer.recv_timeout(PATIENCE), Ok(i));
        }
        // One at a time, each to a thread that waits for it.
        for i in 0..20_i64 {
            let answer = read_job(&reads, &path, move |conn| {
                conn.unwrap()
                    .query_row("SELECT ?1", [i], |r| r.get::<_, i64>(0))
                    .unwrap()
            });
            assert_eq!(answer.recv_timeout(PATIENCE), Ok(i));
        }
        assert!((1..=MAX_READERS).contains(&reads.queue().threads));
        reads.close();
        assert_eq!(
            reads.queue().threads,
            0,
            "closing waits for the threads to stop"
        );
        remove(&path);
    }

    /// A reader that cannot open its connection fails the reads with the reason instead
    /// of leaving them waiting, and the next read tries again.
    #[test]
    fn a_reader_without_a_connection_fails_its_reads() {
        let missing = std::env::temp_dir().join(format!("factum-no-dir-{}", std::process::id()));
        let path = missing.join("journal.db");
        let reads = Arc::new(Reads::default());
        // More reads than threads: the last thread to stop fails those left queued.
        let answers: Vec<_> = (0..3 * MAX_READERS)
            .map(|_| {
                read_job(&reads, &path, |conn| {
                    conn.map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for answer in answers {
            let error = answer.recv_timeout(PATIENCE).unwrap().unwrap_err();
            assert!(error.contains("unable to open"), "{error}");
        }
        // Once the directory exists, a new read gets a connection.
        std::fs::create_dir_all(&missing).unwrap();
        let answer = read_job(&reads, &path, |conn| conn.is_ok());
        assert_eq!(answer.recv_timeout(PATIENCE), Ok(true));
        reads.close();
        remove(&path);
        let _ = std::fs::remove_dir(&missing);
    }

    /// A read that panics costs its caller an answer, not the reader thread: after as many
    /// panics as there are threads, reads are still answered.
    #[test]
    fn a_panicking_read_keeps_its_thread() {
        let path = temp_path("panicking");
        let reads = Arc::new(Reads::default());
        for _ in 0..MAX_READERS {
            let answer = read_job(&reads, &path, |_| -> () { panic!("a read panics") });
            assert_eq!(
                answer.recv_timeout(PATIENCE),
                Err(mpsc::RecvTimeoutError::Disconnected)
            );
        }
        let answer = read_job(&reads, &path, |conn| conn.is_ok());
        assert_eq!(answer.recv_timeout(PATIENCE), Ok(true));
        reads.close();
        remove(&path);
    }

    /// Reads through the journal's own API, many at once, and after the last handle is
    /// dropped a read cannot hang: it is answered before the threads stop.
    #[tokio::test]
    async fn many_concurrent_reads_through_the_journal() {
        let path = temp_path("many-reads");
        let journal = SqliteJournal::open(&path).await.unwrap();
        let results = journal
            .write(
                (1..=50)
                    .map(|i| part(&format!("s-{i}"), 1, b"{}"))
                    .collect(),
            )
            .await;
        assert!(results.iter().all(Result::is_ok));
        let reads = (1..=50).map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.highest_sequence_nr(&format!("s-{i}")).await })
        });
        for read in reads.collect::<Vec<_>>() {
            assert_eq!(read.await.unwrap().unwrap(), 1);
        }
        let last = journal.read("s-7", 1, u64::MAX, 10);
        let events = tokio::time::timeout(PATIENCE, last).await.unwrap().unwrap();
        assert_eq!(events.len(), 1);
        drop(journal);
        remove(&path);
    }
}
