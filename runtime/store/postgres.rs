//! [`PostgresJournal`]: the store for users who outgrow one machine. Several processes on
//! one database may serve the same aggregates.
//!
//! # Layout
//!
//! Tables (schema version 1, kept in `factum_schema_version`, created on connect under an
//! advisory lock so that concurrent processes do not race):
//!
//! - `factum_events`: one row per event: `position` (`bigserial`, the global order),
//!   `persistence_id`, `sequence_nr` (unique together), `manifest`, `version`, `payload`
//!   (JSON text: `select payload::jsonb from factum_events` in `psql`), `tags` (`text[]`),
//!   `command_id`, `timestamp` (milliseconds since the Unix epoch) and `writer_id`;
//! - `factum_event_tags (tag, position)`: the index for reading by tag;
//! - `factum_streams (persistence_id, highest)`: for a stream whose events were deleted,
//!   its highest sequence number at the time, so that deleting never lowers it (a
//!   stream's highest is the larger of this and its newest event's; writes touch only
//!   `factum_events` and the tag index);
//! - `factum_snapshots (persistence_id, sequence_nr, version, payload, timestamp)`.
//!
//! The tables live in the connection's `search_path` (normally `public`). To keep several
//! applications (or test runs) apart in one database, give each its own schema with
//! [`PostgresJournal::connect_with_schema`] or [`PostgresBuilder::schema`] (the schema is
//! created if needed), or put `options=-csearch_path%3Dname` in the URL.
//!
//! # Writing
//!
//! One transaction per [`Journal::write`] call, in a constant number of round trips
//! whatever the batch's size. No stream row is locked or updated: the unique
//! `(persistence_id, sequence_nr)` key is what keeps two writers of a stream apart. A part
//! is written only if it starts right after its stream's highest number, and a number
//! taken in the meantime by a concurrent writer fails the insert (the second inserter
//! waits for the first to commit, then fails). Events are inserted in persistence-id and
//! sequence order, so concurrent batches wait on each other's keys in one order and never
//! deadlock.
//!
//! First, if every part of the batch can be encoded and continues the part before it of its
//! stream, the whole batch is one statement, one round trip: it checks that each stream's
//! highest number is the one the batch continues and only then inserts the events of every
//! part (`unnest` of one array per column, so that positions increase in every stream) and
//! their tag index rows. If a stream has moved on, it writes nothing, and:
//!
//! 1. in a transaction (`BEGIN`, two statements, `COMMIT`), one statement reads the
//!    batch's streams' highest numbers;
//! 2. each part is checked in Rust, in persistence-id order (parts of one stream in batch
//!    order, a later one continuing from an earlier one): a part whose sequence numbers do
//!    not continue its stream is a [`JournalError::Conflict`] and nothing of it is
//!    written; the others are not affected;
//! 3. one statement inserts the accepted parts' events and tags, as above.
//!
//! When an insert finds a number taken (a concurrent writer got there first), or the
//! server refuses a statement for another reason (such as a NUL character), the
//! transaction is rolled back and the batch is written again by the next path, in the end
//! part by part: a savepoint per part, which checks its stream and inserts its events, so
//! that the failure is isolated to its part (a taken number is a conflict there). A commit
//! whose answer is lost (the connection dropped) is [`JournalError::Unknown`].
//!
//! # Global order
//!
//! `position` comes from a sequence when a row is inserted. Transactions that drew their
//! numbers concurrently may commit in another order: a reader of [`Journal::read_all`] or
//! [`Journal::read_tag`] that pages with `after` could see position 12 while 11 is not
//! committed yet, and skip 11 for good. So:
//!
//! - a writing transaction holds a *writer lock* (a transaction-level advisory lock
//!   keyed by its events table and its server process, so that writers never wait for
//!   each other) from before it draws its first position until it commits or rolls back;
//! - a read first takes the *horizon*: the highest position committed as it starts.
//!   Then it waits for every writer lock held at that moment, one at a time, taking each
//!   shared and releasing it at once: every transaction that drew a position up to the
//!   horizon has then ended. The read returns positions up to the horizon only, all of
//!   them settled: committed, or rolled back for good (a gap).
//!
//! A read thus waits for the writes in progress, but holds no write back: a write that
//! starts meanwhile takes a lock of its own process, which the read is not waiting for
//! (or waits only for the instant the read holds it). Positions beyond the horizon are
//! read by the next call. A read cannot wait for a writer that takes no writer lock: a
//! process running an earlier version of factum, or rows inserted by hand.
//!
//! # Limits
//!
//! PostgreSQL `text` cannot hold the NUL character: a persistence id, tag or payload
//! containing `\0` is refused with a backend error. TLS is not supported (`NoTls`).
//! Connections come from a small built-in pool ([`PostgresBuilder::pool_size`], default 4);
//! a connection found closed is replaced on next use.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement, Transaction};

use super::sql::{
    check_sequence, clamp_i64, conflict, corrupt, distinct_tags, limit, payload_text, to_i64,
    to_u32, to_u64,
};
use super::{
    AtomicWrite, BoxFuture, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore,
};

/// The schema version this code writes and reads.
const SCHEMA_VERSION: i32 = 1;

/// The advisory lock key held while creating the schema ("factum" in ASCII).
const SCHEMA_LOCK: i64 = 0x6661_6374_756d;

/// The first key of the writer locks of an events table (see the module documentation):
/// `(this, pg_backend_pid())`, PostgreSQL's two-key form of advisory locks. It is the
/// table's OID, so that schemas of one database do not wait for each other, as the
/// `int4` the lock functions take (in `pg_locks`, `classid` shows it as the OID again).
fn writer_lock(table_oid: u32) -> i32 {
    table_oid.cast_signed()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS factum_events (
    position       BIGSERIAL PRIMARY KEY,
    persistence_id TEXT      NOT NULL,
    sequence_nr    BIGINT    NOT NULL,
    manifest       TEXT      NOT NULL,
    version        BIGINT    NOT NULL,
    payload        TEXT      NOT NULL,
    tags           TEXT[]    NOT NULL DEFAULT '{}',
    command_id     TEXT,
    timestamp      BIGINT    NOT NULL,
    writer_id      TEXT      NOT NULL,
    UNIQUE (persistence_id, sequence_nr)
);
CREATE TABLE IF NOT EXISTS factum_event_tags (
    tag      TEXT   NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (tag, position)
);
CREATE TABLE IF NOT EXISTS factum_streams (
    persistence_id TEXT   NOT NULL PRIMARY KEY,
    highest        BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS factum_snapshots (
    persistence_id TEXT   NOT NULL,
    sequence_nr    BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    payload        TEXT   NOT NULL,
    timestamp      BIGINT NOT NULL,
    PRIMARY KEY (persistence_id, sequence_nr)
);
CREATE TABLE IF NOT EXISTS factum_schema_version (
    version INTEGER NOT NULL
);
";

/// A stream's highest sequence number (NULL for a stream never written): its newest
/// event's, or the one kept when its events were deleted, whichever is larger.
macro_rules! highest_of {
    ($pid:literal) => {
        concat!(
            "GREATEST((SELECT max(sequence_nr) FROM factum_events WHERE persistence_id = ",
            $pid,
            "), (SELECT highest FROM factum_streams WHERE persistence_id = ",
            $pid,
            "))"
        )
    };
}

/// The batched insert: every event of the batch (in stream order, each stream's events in
/// sequence order, so that positions increase in every stream) and their tag index rows,
/// in one statement. An event's `tags` are the slice `$11[from:to]` of one flat array (SQL
/// arrays of arrays must be rectangular). It takes its writer lock (`$12`, see
/// [`writer_lock`]) before it produces a row, so before it draws a position (a one-time
/// filter, evaluated once before the first row).
const WRITE_EVENTS: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[],
                         $6::int4[], $7::int4[], $8::text[], $9::int8[], $10::text[])
        WITH ORDINALITY AS u(persistence_id, sequence_nr, manifest, version, payload,
                             tags_from, tags_to, command_id, timestamp, writer_id, ord)
    WHERE (SELECT pg_advisory_xact_lock($12, pg_backend_pid()) IS NOT NULL)
), events AS (
    INSERT INTO factum_events (persistence_id, sequence_nr, manifest, version, payload,
                               tags, command_id, timestamp, writer_id)
    SELECT persistence_id, sequence_nr, manifest, version, payload,
           ($11::text[])[tags_from:tags_to], command_id, timestamp, writer_id
    FROM input ORDER BY ord
    RETURNING position, tags
)
INSERT INTO factum_event_tags (tag, position)
SELECT t.tag, e.position FROM events e, unnest(e.tags) AS t(tag)
ON CONFLICT DO NOTHING
";

/// [`WRITE_EVENTS`] as one statement of its own (no explicit transaction: one round trip)
/// that writes only if every stream `$12` has the highest number `$13` (0 for a new
/// stream), the number the batch continues, under its writer lock (`$14`, see
/// [`writer_lock`]). Answers whether it wrote.
///
/// The check is one index probe per stream: the event `$13` exists, or (all its events
/// deleted, or a new stream) the kept highest is `$13`. That is "the highest is at least
/// `$13`"; a stream that is further on has `$13 + 1` taken, which fails the insert.
const WRITE_IF_FITS: &str = "
WITH fits AS (
    SELECT bool_and(
        EXISTS (SELECT 1 FROM factum_events e
                WHERE e.persistence_id = s.persistence_id AND e.sequence_nr = s.expected)
        OR COALESCE((SELECT highest FROM factum_streams t
                     WHERE t.persistence_id = s.persistence_id), 0) = s.expected
    ) AS ok
    FROM unnest($12::text[], $13::int8[]) AS s(persistence_id, expected)
), input AS (
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[],
                         $6::int4[], $7::int4[], $8::text[], $9::int8[], $10::text[])
        WITH ORDINALITY AS u(persistence_id, sequence_nr, manifest, version, payload,
                             tags_from, tags_to, command_id, timestamp, writer_id, ord)
    WHERE (SELECT ok FROM fits)
      AND (SELECT pg_advisory_xact_lock($14, pg_backend_pid()) IS NOT NULL)
), events AS (
    INSERT INTO factum_events (persistence_id, sequence_nr, manifest, version, payload,
                               tags, command_id, timestamp, writer_id)
    SELECT persistence_id, sequence_nr, manifest, version, payload,
           ($11::text[])[tags_from:tags_to], command_id, timestamp, writer_id
    FROM input ORDER BY ord
    RETURNING position, tags
), tagged AS (
    INSERT INTO factum_event_tags (tag, position)
    SELECT t.tag, e.position FROM events e, unnest(e.tags) AS t(tag)
    ON CONFLICT DO NOTHING
)
SELECT ok FROM fits
";

/// Deletes a stream's events up to `$2` with their tag index rows, and keeps the highest
/// sequence number it deleted in `factum_streams`, so that deleting never lowers the
/// stream's highest. One statement: what it deletes is exactly what it keeps the highest
/// of, even while a writer appends to the stream.
///
/// It runs under a `SHARE ROW EXCLUSIVE` lock on `factum_events`, which waits for the
/// writes in progress and holds new ones back until it commits. A write takes its own
/// (`ROW EXCLUSIVE`) lock before it reads anything: the one-statement batch as it starts,
/// the other paths as their first statement. Without that, a writer that had seen an
/// event before its deletion could insert a number the deletion had just freed in the
/// unique key, and a deleted number must stay taken.
const DELETE_TO: &str = "
WITH deleted AS (
    DELETE FROM factum_events WHERE persistence_id = $1 AND sequence_nr <= $2
    RETURNING position, sequence_nr
), untagged AS (
    DELETE FROM factum_event_tags WHERE position IN (SELECT position FROM deleted)
)
INSERT INTO factum_streams (persistence_id, highest)
SELECT $1, max(sequence_nr) FROM deleted HAVING max(sequence_nr) IS NOT NULL
ON CONFLICT (persistence_id) DO UPDATE
    SET highest = GREATEST(factum_streams.highest, EXCLUDED.highest)
";

/// A read's horizon: the highest position committed as the statement starts (NULL for
/// none), answered once every writer lock (`($1, pid)`, see [`writer_lock`]; `$2` is the
/// table's OID, as `pg_locks` shows the first key) held a moment later has been released:
/// each is taken shared and released at once, one after the other (a one-time filter,
/// evaluated before the scan). Every position up to the horizon is then settled: one
/// below it was drawn before it (a sequence hands out increasing numbers), by a
/// transaction that held its writer lock from before that until it ended.
///
/// The locks are session locks, released row by row: an error in between would leave one
/// held, so a connection whose horizon failed is not reused ([`settled`]).
const HORIZON: &str = "
SELECT max(position) FROM factum_events
WHERE (SELECT count(pg_advisory_unlock_shared($1, w.pid)) FROM (
           SELECT l.pid, pg_advisory_lock_shared($1, l.pid) FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = $2
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.mode = 'ExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()
           OFFSET 0
       ) AS w) >= 0
";

const EVENT_COLUMNS: &str = "e.position, e.persistence_id, e.sequence_nr, e.manifest, e.version, \
     e.payload, e.tags, e.command_id, e.timestamp, e.writer_id";

/// A [`Journal`] and [`SnapshotStore`] on PostgreSQL (feature `postgres`). A cheap `Clone`
/// handle: clones share the connection pool.
///
/// See the [module documentation](self) for the tables, the write path and the limits.
#[derive(Clone)]
pub struct PostgresJournal {
    pool: Arc<Pool>,
}

/// Configures a [`PostgresJournal`]; made by [`PostgresJournal::builder`].
#[derive(Debug, Clone)]
pub struct PostgresBuilder {
    url: String,
    schema: Option<String>,
    pool_size: usize,
}

impl PostgresBuilder {
    /// Keeps the tables in this PostgreSQL schema, created if needed. The name must be 1
    /// to 63 ASCII letters, digits or underscores, not starting with a digit.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// How many connections the pool opens at most (default 4, at least 1, at most
    /// [`Semaphore::MAX_PERMITS`]).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Connects, creates the schema and tables if needed, and checks the schema version.
    pub async fn connect(self) -> Result<PostgresJournal, JournalError> {
        let config = Config::from_str(&self.url).map_err(JournalError::backend)?;
        let schema = match self.schema {
            Some(name) => Some(quote_schema(&name)?),
            None => None,
        };
        let pool = Pool {
            config,
            schema,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(self.pool_size),
        };
        let first = pool.open(true).await?;
        pool.idle_list().push(first);
        Ok(PostgresJournal {
            pool: Arc::new(pool),
        })
    }
}

/// The schema name, validated and quoted as an SQL identifier.
fn quote_schema(name: &str) -> Result<String, JournalError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(format!("\"{name}\""))
    } else {
        Err(corrupt(format!(
            "invalid schema name `{name}`: use 1 to 63 ASCII letters, digits or underscores"
        )))
    }
}

impl PostgresJournal {
    /// Connects to `url` (for example `postgres://user@host:5432/db`), creating the tables
    /// in the connection's `search_path` if needed.
    pub async fn connect(url: &str) -> Result<PostgresJournal, JournalError> {
        Self::builder(url).connect().await
    }

    /// Connects to `url` and keeps the tables in `schema` (created if needed).
    pub async fn connect_with_schema(
        url: &str,
        schema: &str,
    ) -> Result<PostgresJournal, JournalError> {
        Self::builder(url).schema(schema).connect().await
    }

    /// Starts configuring a connection to `url`.
    pub fn builder(url: &str) -> PostgresBuilder {
        PostgresBuilder {
            url: url.to_owned(),
            schema: None,
            pool_size: 4,
        }
    }
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJournal")
            .field("schema", &self.pool.schema)
            .finish_non_exhaustive()
    }
}

/// A tiny connection pool: at most `permits` connections, idle ones kept for reuse.
struct Pool {
    config: Config,
    schema: Option<String>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    st: Statements,
    /// An error without an SQL state (I/O, closed) was seen: do not reuse the connection,
    /// even if its background task has not noticed yet.
    broken: AtomicBool,
}

struct Statements {
    /// The first key of this connection's writer lock ([`writer_lock`]).
    writer_lock: i32,
    /// The events table's OID, as `pg_locks` shows the writer locks' first key.
    table: u32,
    streams_highest: Statement,
    write_events: Statement,
    write_if_fits: Statement,
    stream_highest: Statement,
    insert_event: Statement,
    insert_tags: Statement,
    read: Statement,
    horizon: Statement,
    read_all: Statement,
    read_tag: Statement,
    delete_to: Statement,
    save_snapshot: Statement,
    load_snapshot: Statement,
    retain_snapshots: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        let table: u32 = client
            .query_one("SELECT 'factum_events'::regclass::oid", &[])
            .await?
            .try_get(0)?;
        Ok(Statements {
            writer_lock: writer_lock(table),
            table,
            streams_highest: client
                .prepare(concat!(
                    "SELECT s.persistence_id, ",
                    highest_of!("s.persistence_id"),
                    " FROM unnest($1::text[]) AS s(persistence_id)"
                ))
                .await?,
            write_events: client.prepare(WRITE_EVENTS).await?,
            write_if_fits: client.prepare(WRITE_IF_FITS).await?,
            stream_highest: client
                .prepare(concat!("SELECT ", highest_of!("$1")))
                .await?,
            insert_event: client
                .prepare(
                    "INSERT INTO factum_events (persistence_id, sequence_nr, manifest, version, \
                     payload, tags, command_id, timestamp, writer_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING position",
                )
                .await?,
            insert_tags: client
                .prepare(
                    "INSERT INTO factum_event_tags (tag, position) \
                     SELECT * FROM UNNEST($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
                )
                .await?,
            read: client
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM factum_events e WHERE e.persistence_id = $1 \
                     AND e.sequence_nr >= $2 AND e.sequence_nr <= $3 \
                     ORDER BY e.sequence_nr LIMIT $4"
                ))
                .await?,
            horizon: client.prepare(HORIZON).await?,
            read_all: client
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM factum_events e WHERE e.position > $1 \
                     AND e.position <= $3 ORDER BY e.position LIMIT $2"
                ))
                .await?,
            read_tag: client
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM factum_event_tags t \
                     JOIN factum_events e ON e.position = t.position \
                     WHERE t.tag = $1 AND t.position > $2 AND t.position <= $4 \
                     ORDER BY t.position LIMIT $3"
                ))
                .await?,
            delete_to: client.prepare(DELETE_TO).await?,
            save_snapshot: client
                .prepare(
                    "INSERT INTO factum_snapshots (persistence_id, sequence_nr, version, payload, \
                     timestamp) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (persistence_id, sequence_nr) DO UPDATE SET \
                     version = EXCLUDED.version, payload = EXCLUDED.payload, \
                     timestamp = EXCLUDED.timestamp",
                )
                .await?,
            load_snapshot: client
                .prepare(
                    "SELECT sequence_nr, version, payload, timestamp FROM factum_snapshots \
                     WHERE persistence_id = $1 AND sequence_nr <= $2 \
                     ORDER BY sequence_nr DESC LIMIT 1",
                )
                .await?,
            retain_snapshots: client
                .prepare(
                    "DELETE FROM factum_snapshots WHERE persistence_id = $1 AND sequence_nr NOT IN \
                     (SELECT sequence_nr FROM factum_snapshots WHERE persistence_id = $1 \
                      ORDER BY sequence_nr DESC LIMIT $2)",
                )
                .await?,
        })
    }
}

/// A connection lent out of the pool; it goes back when dropped, unless it is closed.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until it is dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
            && !conn.broken.load(Ordering::Relaxed)
        {
            self.pool.idle_list().push(conn);
        }
    }
}

fn pg(error: tokio_postgres::Error) -> JournalError {
    JournalError::backend(error)
}

/// [`pg`], marking the connection broken when the error ends the session: not a server
/// answer at all (I/O, closed), a `FATAL` one, or a connection / shutdown state (class
/// 08, and 57P such as `pg_terminate_backend`). A cancelled statement (57014: a
/// `statement_timeout`, `pg_cancel_backend`) leaves the session usable and its
/// transaction certainly rolled back.
fn fail(broken: &AtomicBool, error: tokio_postgres::Error) -> JournalError {
    if ends_session(&error) {
        broken.store(true, Ordering::Relaxed);
    }
    pg(error)
}

fn ends_session(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .is_none_or(|db| ends_session_with(db.severity(), db.code().code()))
}

/// Whether a server error of this severity and SQLSTATE ends the session.
fn ends_session_with(severity: &str, code: &str) -> bool {
    matches!(severity, "FATAL" | "PANIC") || code.starts_with("08") || code.starts_with("57P")
}

impl Pool {
    fn idle_list(&self) -> MutexGuard<'_, Vec<Conn>> {
        // A plain list: consistent across a panic.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn get(&self) -> Result<Lease<'_>, JournalError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| corrupt("the connection pool is closed".into()))?;
        loop {
            let Some(conn) = self.idle_list().pop() else {
                break;
            };
            if !conn.client.is_closed() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                    _permit: permit,
                });
            }
        }
        let conn = self.open(false).await?;
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Opens a connection; with `create`, also creates the schema and checks its version.
    async fn open(&self, create: bool) -> Result<Conn, JournalError> {
        let (mut client, connection) = self.config.connect(NoTls).await.map_err(pg)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "PostgreSQL connection closed");
            }
        });
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!("SET search_path TO {schema}"))
                .await
                .map_err(pg)?;
        }
        // Writers are kept apart by the unique key, which reports a lost race as a unique
        // violation (a conflict) under READ COMMITTED. A database whose default is
        // stricter would report it as a serialization failure instead: pin the level.
        client
            .batch_execute(
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
            )
            .await
            .map_err(pg)?;
        if create {
            let tx = client.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(pg)?;
            if let Some(schema) = &self.schema {
                tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .await
                    .map_err(pg)?;
            }
            tx.batch_execute(SCHEMA).await.map_err(pg)?;
            let stored = tx
                .query_opt("SELECT version FROM factum_schema_version LIMIT 1", &[])
                .await
                .map_err(pg)?;
            match stored
                .map(|row| row.try_get::<_, i32>(0))
                .transpose()
                .map_err(pg)?
            {
                None => {
                    tx.execute(
                        "INSERT INTO factum_schema_version (version) VALUES ($1)",
                        &[&SCHEMA_VERSION],
                    )
                    .await
                    .map_err(pg)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(other) => {
                    return Err(corrupt(format!(
                        "the database has factum schema version {other}; this version of \
                         factum knows {SCHEMA_VERSION}"
                    )));
                }
            }
            tx.commit().await.map_err(pg)?;
        }
        let st = Statements::prepare(&client).await.map_err(pg)?;
        Ok(Conn {
            client,
            st,
            broken: AtomicBool::new(false),
        })
    }
}

/// Writes one part inside the current transaction or savepoint.
async fn write_part(
    tx: &Transaction<'_>,
    st: &Statements,
    broken: &AtomicBool,
    part: &AtomicWrite,
) -> Result<(), JournalError> {
    let pg = |error| fail(broken, error);
    let pid: &str = &part.persistence_id;
    let Some(last) = part.events.last() else {
        return Ok(());
    };
    to_i64(last.sequence_nr, "sequence number")?;
    let row = tx
        .query_one(&st.stream_highest, &[&pid])
        .await
        .map_err(pg)?;
    let highest = row.try_get::<_, Option<i64>>(0).map_err(pg)?.unwrap_or(0);
    check_sequence(pid, u64::try_from(highest).unwrap_or(0), &part.events)?;
    for event in &part.events {
        let tags = distinct_tags(&event.tags);
        let params: [&(dyn ToSql + Sync); 9] = [
            &pid,
            &to_i64(event.sequence_nr, "sequence number")?,
            &&*event.manifest,
            &i64::from(event.version),
            &payload_text(event)?,
            &tags,
            &event.command_id.as_deref(),
            &clamp_i64(event.timestamp),
            &&*event.writer_id,
        ];
        let row = match tx.query_one(&st.insert_event, &params).await {
            Ok(row) => row,
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(conflict(&part.persistence_id, &part.events));
            }
            Err(error) => return Err(pg(error)),
        };
        if !tags.is_empty() {
            let position: i64 = row.try_get(0).map_err(pg)?;
            let positions = vec![position; tags.len()];
            tx.execute(&st.insert_tags, &[&tags, &positions])
                .await
                .map_err(pg)?;
        }
    }
    Ok(())
}

/// One `factum_events` row as a record; never panics on bad data.
fn event_record(row: &Row) -> Result<EventRecord, JournalError> {
    let persistence_id: String = row.try_get(1).map_err(pg)?;
    let raw_seq: i64 = row.try_get(2).map_err(pg)?;
    let bad = |error: tokio_postgres::Error| {
        corrupt(format!(
            "corrupt row {raw_seq} of `{persistence_id}`: {error}"
        ))
    };
    let position: i64 = row.try_get(0).map_err(bad)?;
    let manifest: String = row.try_get(3).map_err(bad)?;
    let version: i64 = row.try_get(4).map_err(bad)?;
    let payload: String = row.try_get(5).map_err(bad)?;
    let tags: Vec<String> = row.try_get(6).map_err(bad)?;
    let command_id: Option<String> = row.try_get(7).map_err(bad)?;
    let timestamp: i64 = row.try_get(8).map_err(bad)?;
    let writer_id: String = row.try_get(9).map_err(bad)?;
    Ok(EventRecord {
        sequence_nr: to_u64(raw_seq, "sequence_nr", &persistence_id, raw_seq)?,
        manifest: manifest.into(),
        version: to_u32(version, "version", &persistence_id, raw_seq)?,
        payload: payload.into_bytes(),
        tags: crate::codec::Tags::owned(tags),
        command_id: command_id.map(String::into_boxed_str),
        timestamp: to_u64(timestamp, "timestamp", &persistence_id, raw_seq)?,
        writer_id: Arc::from(writer_id),
        position: to_u64(position, "position", &persistence_id, raw_seq)?,
        persistence_id: Arc::from(persistence_id),
    })
}

fn event_records(rows: Vec<Row>) -> Result<Vec<EventRecord>, JournalError> {
    rows.iter().map(event_record).collect()
}

/// The columns of [`WRITE_EVENTS`]: one entry per event, the tags in one flat list.
#[derive(Default)]
struct Columns<'a> {
    persistence_ids: Vec<&'a str>,
    sequence_nrs: Vec<i64>,
    manifests: Vec<&'a str>,
    versions: Vec<i64>,
    payloads: Vec<&'a str>,
    tags_from: Vec<i32>,
    tags_to: Vec<i32>,
    command_ids: Vec<Option<&'a str>>,
    timestamps: Vec<i64>,
    writer_ids: Vec<&'a str>,
    tags: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    /// Adds all events of `part`, or none if one cannot be encoded.
    fn push(&mut self, part: &'a AtomicWrite) -> Result<(), JournalError> {
        let mut encoded = Vec::with_capacity(part.events.len());
        for event in &part.events {
            encoded.push((
                to_i64(event.sequence_nr, "sequence number")?,
                payload_text(event)?,
            ));
        }
        let too_many = || JournalError::Encode("too many tags in one batch".into());
        for (event, (sequence_nr, payload)) in part.events.iter().zip(encoded) {
            let from = i32::try_from(self.tags.len() + 1).map_err(|_| too_many())?;
            self.tags.extend(distinct_tags(&event.tags));
            let to = i32::try_from(self.tags.len()).map_err(|_| too_many())?;
            self.persistence_ids.push(&part.persistence_id);
            self.sequence_nrs.push(sequence_nr);
            self.manifests.push(&event.manifest);
            self.versions.push(i64::from(event.version));
            self.payloads.push(payload);
            self.tags_from.push(from);
            self.tags_to.push(to);
            self.command_ids.push(event.command_id.as_deref());
            self.timestamps.push(clamp_i64(event.timestamp));
            self.writer_ids.push(&event.writer_id);
        }
        Ok(())
    }
}

/// A batch whose parts all fit together: what [`WRITE_IF_FITS`] needs.
struct Fits<'a> {
    columns: Columns<'a>,
    /// Every stream once, in persistence-id order.
    streams: Vec<&'a str>,
    /// Each stream's highest number before the batch, and after it (which a later part
    /// of the stream must continue).
    before: Vec<i64>,
    after: Vec<i64>,
}

impl<'a> Fits<'a> {
    /// The batch's columns if it has events, all can be encoded, every part is contiguous
    /// and every later part of a stream continues the one before it: then only the
    /// streams' highest numbers in the database can make a part fail.
    fn of(batch: &'a [AtomicWrite]) -> Option<Fits<'a>> {
        let mut fits = Fits {
            columns: Columns::default(),
            streams: Vec::new(),
            before: Vec::new(),
            after: Vec::new(),
        };
        for index in stream_order(batch) {
            let part = &batch[index];
            let (Some(first), Some(last)) = (part.events.first(), part.events.last()) else {
                continue;
            };
            let pid: &str = &part.persistence_id;
            let start = first.sequence_nr.checked_sub(1)?;
            check_sequence(pid, start, &part.events).ok()?;
            let (start, end) = (
                i64::try_from(start).ok()?,
                i64::try_from(last.sequence_nr).ok()?,
            );
            if fits.streams.last() == Some(&pid) {
                if fits.after.last() != Some(&start) {
                    return None;
                }
                *fits.after.last_mut()? = end;
            } else {
                fits.streams.push(pid);
                fits.before.push(start);
                fits.after.push(end);
            }
            fits.columns.push(part).ok()?;
        }
        (!fits.streams.is_empty()).then_some(fits)
    }
}

/// The one-round-trip path: `Some` results if the batch was written or may have been
/// (a lost answer), `None` if nothing was written (a stream has moved on, or the server
/// refused the statement).
async fn write_if_fits(
    client: &Client,
    st: &Statements,
    broken: &AtomicBool,
    batch: &[AtomicWrite],
    fits: &Fits<'_>,
) -> Option<Vec<Result<(), JournalError>>> {
    let c = &fits.columns;
    let params: [&(dyn ToSql + Sync); 14] = [
        &c.persistence_ids,
        &c.sequence_nrs,
        &c.manifests,
        &c.versions,
        &c.payloads,
        &c.tags_from,
        &c.tags_to,
        &c.command_ids,
        &c.timestamps,
        &c.writer_ids,
        &c.tags,
        &fits.streams,
        &fits.before,
        &st.writer_lock,
    ];
    let unknown = |error: &dyn std::fmt::Display| {
        let error =
            JournalError::Unknown(format!("the PostgreSQL write did not complete: {error}"));
        Some(all_failed(batch, error))
    };
    match client.query_one(&st.write_if_fits, &params).await {
        Ok(row) => match row.try_get::<_, Option<bool>>(0) {
            Ok(Some(true)) => Some(batch.iter().map(|_| Ok(())).collect()),
            Ok(_) => None,
            Err(error) => unknown(&error),
        },
        Err(error) if ends_session(&error) => {
            // The statement commits on its own: it may have happened or not.
            broken.store(true, Ordering::Relaxed);
            unknown(&error)
        }
        // The statement was rolled back.
        Err(_) => None,
    }
}

/// What the batched write path did.
enum Fast {
    /// The batch is done (committed, rolled back or failed): these are its results.
    Done(Vec<Result<(), JournalError>>),
    /// The database refused the batched statements (a sequence number taken by a
    /// concurrent writer, a value it cannot store...): the transaction is rolled back,
    /// write the batch part by part.
    Fallback,
}

/// The parts' indices in persistence-id (byte) order, parts of one stream in batch order.
fn stream_order(batch: &[AtomicWrite]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| batch[a].persistence_id.cmp(&batch[b].persistence_id));
    order
}

/// Every result an error.
fn all_failed(batch: &[AtomicWrite], error: JournalError) -> Vec<Result<(), JournalError>> {
    batch.iter().map(|_| Err(error.clone())).collect()
}

/// A statement of the batched path failed: give up on the batch if the session ended
/// (nothing was committed), else roll back and fall back to the part-by-part path.
async fn give_up(
    tx: Transaction<'_>,
    broken: &AtomicBool,
    batch: &[AtomicWrite],
    error: tokio_postgres::Error,
) -> Fast {
    if ends_session(&error) {
        broken.store(true, Ordering::Relaxed);
        return Fast::Done(all_failed(batch, pg(error)));
    }
    match tx.rollback().await {
        Ok(()) => Fast::Fallback,
        Err(error) => Fast::Done(all_failed(batch, fail(broken, error))),
    }
}

/// Begins a writing transaction: its lock on `factum_events` comes before anything it
/// reads, so that it never decides on what it read before a deletion (see [`DELETE_TO`]).
async fn begin_write(client: &mut Client) -> Result<Transaction<'_>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE factum_events IN ROW EXCLUSIVE MODE")
        .await?;
    Ok(tx)
}

/// The batched write path: a constant number of round trips per batch.
async fn write_fast(
    client: &mut Client,
    st: &Statements,
    broken: &AtomicBool,
    batch: &[AtomicWrite],
) -> Fast {
    let tx = match begin_write(client).await {
        Ok(tx) => tx,
        Err(error) => return Fast::Done(all_failed(batch, fail(broken, error))),
    };
    let order = stream_order(batch);
    let mut streams: Vec<&str> = order
        .iter()
        .map(|&index| &*batch[index].persistence_id)
        .collect();
    streams.dedup();
    // The highest number of every stream of the batch.
    let rows = match tx.query(&st.streams_highest, &[&streams]).await {
        Ok(rows) => rows,
        Err(error) => return give_up(tx, broken, batch, error).await,
    };
    let mut highest: HashMap<&str, i64> = HashMap::with_capacity(streams.len());
    for row in &rows {
        match (row.try_get(0), row.try_get(1)) {
            (Ok(pid), Ok(nr)) => {
                highest.insert(pid, Option::<i64>::unwrap_or(nr, 0));
            }
            (Err(error), _) | (_, Err(error)) => {
                let _ = tx.rollback().await;
                return Fast::Done(all_failed(batch, pg(error)));
            }
        }
    }
    // Decides every part as the part-by-part path would, in the same order: a later part
    // of a stream continues from an earlier one.
    let mut results: Vec<Result<(), JournalError>> = batch.iter().map(|_| Ok(())).collect();
    let mut columns = Columns::default();
    for &index in &order {
        let part = &batch[index];
        let Some(last) = part.events.last() else {
            continue;
        };
        let pid: &str = &part.persistence_id;
        let decided = to_i64(last.sequence_nr, "sequence number").and_then(|last_nr| {
            let current = highest.get(pid).copied().unwrap_or(0);
            check_sequence(pid, u64::try_from(current).unwrap_or(0), &part.events)?;
            columns.push(part)?;
            Ok(last_nr)
        });
        match decided {
            Ok(last_nr) => {
                highest.insert(pid, last_nr);
            }
            Err(error) => results[index] = Err(error),
        }
    }
    if columns.persistence_ids.is_empty() {
        // Nothing to write; a failed rollback leaves nothing committed either.
        let _ = tx.rollback().await;
        return Fast::Done(results);
    }
    let c = &columns;
    let params: [&(dyn ToSql + Sync); 12] = [
        &c.persistence_ids,
        &c.sequence_nrs,
        &c.manifests,
        &c.versions,
        &c.payloads,
        &c.tags_from,
        &c.tags_to,
        &c.command_ids,
        &c.timestamps,
        &c.writer_ids,
        &c.tags,
        &st.writer_lock,
    ];
    if let Err(error) = tx.execute(&st.write_events, &params).await {
        return give_up(tx, broken, batch, error).await;
    }
    Fast::Done(commit(tx, broken, results).await)
}

/// The part-by-part path: a savepoint per part, which isolates any failure to its part.
async fn write_parts(
    client: &mut Client,
    st: &Statements,
    broken: &AtomicBool,
    batch: &[AtomicWrite],
) -> Vec<Result<(), JournalError>> {
    let pg = |error| fail(broken, error);
    let mut tx = match begin_write(client).await {
        Ok(tx) => tx,
        Err(error) => return all_failed(batch, pg(error)),
    };
    // The writer lock for the whole transaction, before its first savepoint: a lock
    // taken in a savepoint that rolls back is released with it.
    if let Err(error) = tx
        .execute(
            "SELECT pg_advisory_xact_lock($1, pg_backend_pid())",
            &[&st.writer_lock],
        )
        .await
    {
        let _ = tx.rollback().await;
        return all_failed(batch, pg(error));
    }
    let mut results: Vec<Result<(), JournalError>> = batch.iter().map(|_| Ok(())).collect();
    if batch.len() == 1 {
        // One part: the transaction is its savepoint.
        results[0] = write_part(&tx, st, broken, &batch[0]).await;
    } else {
        // A savepoint that cannot be taken, released or rolled back leaves the transaction
        // aborted, and PostgreSQL answers the COMMIT of an aborted transaction with a
        // rollback, not an error: every part must fail then.
        let mut aborted = None;
        // Persistence-id order: concurrent batches wait on each other's keys in one order.
        for index in stream_order(batch) {
            let part = &batch[index];
            if part.events.is_empty() {
                continue;
            }
            let savepoint = match tx.savepoint("factum_part").await {
                Ok(savepoint) => savepoint,
                Err(error) => {
                    aborted = Some(fail(broken, error));
                    break;
                }
            };
            results[index] = match write_part(&savepoint, st, broken, part).await {
                Ok(()) => match savepoint.commit().await {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        aborted = Some(fail(broken, error));
                        break;
                    }
                },
                Err(error) => match savepoint.rollback().await {
                    Ok(()) => Err(error),
                    Err(rollback) => {
                        aborted = Some(fail(broken, rollback));
                        break;
                    }
                },
            };
        }
        if let Some(error) = aborted {
            let _ = tx.rollback().await;
            fail_the_written(&mut results, &error);
            return results;
        }
    }
    if results.iter().all(Result::is_err) {
        // Nothing to keep; a failed rollback leaves nothing committed either.
        let _ = tx.rollback().await;
        return results;
    }
    commit(tx, broken, results).await
}

/// Commits; if that fails, every part that was written gets the error.
async fn commit(
    tx: Transaction<'_>,
    broken: &AtomicBool,
    mut results: Vec<Result<(), JournalError>>,
) -> Vec<Result<(), JournalError>> {
    if let Err(error) = tx.commit().await {
        let error = if ends_session(&error) {
            // The session ended around the commit: it may have happened or not.
            broken.store(true, Ordering::Relaxed);
            JournalError::Unknown(format!("the PostgreSQL commit did not complete: {error}"))
        } else {
            // The server answered: the transaction was rolled back.
            pg(error)
        };
        fail_the_written(&mut results, &error);
    }
    results
}

/// Turns every part that was written into `error`: its transaction did not commit.
fn fail_the_written(results: &mut [Result<(), JournalError>], error: &JournalError) {
    for result in results {
        if result.is_ok() {
            *result = Err(error.clone());
        }
    }
}

impl PostgresJournal {
    async fn write_batch(&self, batch: Vec<AtomicWrite>) -> Vec<Result<(), JournalError>> {
        let mut lease = match self.pool.get().await {
            Ok(lease) => lease,
            Err(error) => return all_failed(&batch, error),
        };
        let Conn { client, st, broken } = lease.conn();
        if let Some(fits) = Fits::of(&batch)
            && let Some(results) = write_if_fits(client, st, broken, &batch, &fits).await
        {
            return results;
        }
        match write_fast(client, st, broken, &batch).await {
            Fast::Done(results) => results,
            Fast::Fallback => write_parts(client, st, broken, &batch).await,
        }
    }

    /// Runs `f` (a statement or two) on a pooled connection.
    async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, JournalError> {
        let mut lease = self.pool.get().await?;
        let conn = lease.conn();
        f(conn).await.map_err(|error| fail(&conn.broken, error))
    }
}

impl Journal for PostgresJournal {
    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>> {
        Box::pin(self.write_batch(batch))
    }

    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(async move {
            let (from, to, max) = (clamp_i64(from), clamp_i64(to), limit(max));
            let rows = self
                .with_conn(async |c| {
                    c.client
                        .query(&c.st.read, &[&persistence_id, &from, &to, &max])
                        .await
                })
                .await?;
            event_records(rows)
        })
    }

    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        Box::pin(async move {
            let row = self
                .with_conn(async |c| {
                    c.client
                        .query_one(&c.st.stream_highest, &[&persistence_id])
                        .await
                })
                .await?;
            let highest = row.try_get::<_, Option<i64>>(0).map_err(pg)?.unwrap_or(0);
            to_u64(highest, "highest", persistence_id, 0)
        })
    }

    fn delete_to<'a>(
        &'a self,
        persistence_id: &'a str,
        to: u64,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let to = clamp_i64(to);
            let mut lease = self.pool.get().await?;
            let conn = lease.conn();
            let pg = |error| fail(&conn.broken, error);
            let tx = conn.client.transaction().await.map_err(pg)?;
            tx.batch_execute("LOCK TABLE factum_events IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(pg)?;
            tx.execute(&conn.st.delete_to, &[&persistence_id, &to])
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)
        })
    }

    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(async move {
            let (after, max) = (clamp_i64(after), limit(max));
            let rows = self
                .with_conn(async |c| settled(c, &c.st.read_all, &[&after, &max]).await)
                .await?;
            event_records(rows)
        })
    }

    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(async move {
            let (after, max) = (clamp_i64(after), limit(max));
            let rows = self
                .with_conn(async |c| settled(c, &c.st.read_tag, &[&tag, &after, &max]).await)
                .await?;
            event_records(rows)
        })
    }
}

/// Runs a read, `statement` with `params` and the horizon as its last parameter: only
/// settled positions ([`HORIZON`]; none for an empty journal). A connection whose horizon
/// failed may hold a session lock: it is not reused.
async fn settled(
    c: &Conn,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let horizon: Option<i64> = c
        .client
        .query_one(&c.st.horizon, &[&c.st.writer_lock, &c.st.table])
        .await
        .inspect_err(|_| c.broken.store(true, Ordering::Relaxed))?
        .try_get(0)?;
    let Some(horizon) = horizon else {
        return Ok(Vec::new());
    };
    let mut all = params.to_vec();
    all.push(&horizon);
    c.client.query(statement, &all).await
}

impl SnapshotStore for PostgresJournal {
    fn save(&self, snapshot: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let pid: &str = &snapshot.persistence_id;
            let payload = std::str::from_utf8(&snapshot.payload).map_err(|_| {
                JournalError::Encode(format!("the snapshot payload of `{pid}` is not UTF-8 text"))
            })?;
            let sequence_nr = to_i64(snapshot.sequence_nr, "sequence number")?;
            let version = i64::from(snapshot.version);
            let timestamp = clamp_i64(snapshot.timestamp);
            self.with_conn(async |c| {
                c.client
                    .execute(
                        &c.st.save_snapshot,
                        &[&pid, &sequence_nr, &version, &payload, &timestamp],
                    )
                    .await
            })
            .await?;
            Ok(())
        })
    }

    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        max_sequence_nr: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>> {
        Box::pin(async move {
            let max = clamp_i64(max_sequence_nr);
            let row = self
                .with_conn(async |c| {
                    c.client
                        .query_opt(&c.st.load_snapshot, &[&persistence_id, &max])
                        .await
                })
                .await?;
            let Some(row) = row else { return Ok(None) };
            let bad = |error: tokio_postgres::Error| {
                corrupt(format!("corrupt snapshot of `{persistence_id}`: {error}"))
            };
            let sequence_nr: i64 = row.try_get(0).map_err(bad)?;
            let version: i64 = row.try_get(1).map_err(bad)?;
            let payload: String = row.try_get(2).map_err(bad)?;
            let timestamp: i64 = row.try_get(3).map_err(bad)?;
            Ok(Some(SnapshotRecord {
                persistence_id: Arc::from(persistence_id),
                sequence_nr: to_u64(sequence_nr, "sequence_nr", persistence_id, sequence_nr)?,
                version: to_u32(version, "version", persistence_id, sequence_nr)?,
                payload: payload.into_bytes(),
                timestamp: to_u64(timestamp, "timestamp", persistence_id, sequence_nr)?,
            }))
        })
    }

    fn retain<'a>(
        &'a self,
        persistence_id: &'a str,
        keep: usize,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let keep = limit(keep);
            self.with_conn(async |c| {
                c.client
                    .execute(&c.st.retain_snapshots, &[&persistence_id, &keep])
                    .await
            })
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ends_session_with;

    /// A connection is dropped only for errors that end its session: a cancelled
    /// statement (a `statement_timeout`) keeps it, and its transaction is known to have
    /// rolled back rather than reported as of unknown outcome.
    #[test]
    fn only_errors_that_end_the_session_drop_the_connection() {
        for (severity, code, ends) in [
            ("ERROR", "57014", false), // query_canceled
            ("ERROR", "23505", false), // unique_violation
            ("ERROR", "40001", false), // serialization_failure
            ("FATAL", "57P01", true),  // admin_shutdown
            ("ERROR", "57P02", true),  // crash_shutdown
            ("ERROR", "08006", true),  // connection_failure
            ("FATAL", "28000", true),
            ("PANIC", "XX000", true),
        ] {
            assert_eq!(ends_session_with(severity, code), ends, "{severity} {code}");
        }
    }
}
