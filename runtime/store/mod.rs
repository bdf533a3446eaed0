//! The storage traits, [`Journal`] and [`SnapshotStore`], their records, and the stores.
//!
//! A journal receives the writes of many aggregates in one call ([`Journal::write`]) and
//! commits them together; each aggregate's part ([`AtomicWrite`]) is all-or-nothing, and a
//! sequence number that is already taken makes that part a [`JournalError::Conflict`].
//! SQL stores map this onto one transaction per batch, a savepoint per part, and a unique
//! `(persistence_id, sequence_nr)` key.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::codec::Tags;

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// A boxed, `Send` future: what the store traits return, so they stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The stream the event belongs to: `"{aggregate name}-{id}"`.
    pub persistence_id: Arc<str>,
    /// Position in its stream, from 1, without gaps.
    pub sequence_nr: u64,
    /// The event kind's stored name.
    pub manifest: Cow<'static, str>,
    /// The event kind's format version when it was written.
    pub version: u32,
    /// The payload: JSON text.
    pub payload: Vec<u8>,
    /// Tags, for reading by tag.
    pub tags: Tags,
    /// The id of the command that produced it, when it had one (rebuilds the dedupe window).
    /// Each event of a command holds a copy of its own: a `Box<str>` is one allocation of
    /// the id's length and no reference count, the size of the id the client sent.
    pub command_id: Option<Box<str>>,
    /// Milliseconds since the Unix epoch when it was written.
    pub timestamp: u64,
    /// Which repository instance wrote it.
    pub writer_id: Arc<str>,
    /// Global position across all streams, assigned by the journal (0 before it is written).
    pub position: u64,
}

/// The events one aggregate appends in one command: written all together or not at all.
#[derive(Debug, Clone)]
pub struct AtomicWrite {
    /// The stream.
    pub persistence_id: Arc<str>,
    /// Contiguous sequence numbers, starting right after the stream's highest.
    pub events: Vec<EventRecord>,
}

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    /// The stream the state belongs to.
    pub persistence_id: Arc<str>,
    /// The sequence number of the last event folded into the state.
    pub sequence_nr: u64,
    /// The snapshot format version (`snapshot(version = N)`).
    pub version: u32,
    /// The payload: JSON text.
    pub payload: Vec<u8>,
    /// Milliseconds since the Unix epoch when it was taken.
    pub timestamp: u64,
}

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A sequence number of this write is already taken: another writer got there first.
    #[error("sequence number {sequence_nr} of `{persistence_id}` is already written")]
    Conflict {
        /// The stream.
        persistence_id: String,
        /// The first sequence number that was already taken.
        sequence_nr: u64,
    },
    /// The write may or may not have been committed (for example a lost connection).
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// The store failed; nothing of the affected part was written.
    #[error("{0}")]
    Backend(Arc<dyn std::error::Error + Send + Sync>),
    /// An event or snapshot could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl JournalError {
    /// A backend failure from any error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        JournalError::Backend(Arc::new(error))
    }
}

/// An append-only event store. Implement it to plug in another database.
///
/// Reads are paged: `max` bounds how many records one call returns, so no caller ever
/// holds a whole stream in memory.
pub trait Journal: Send + Sync + 'static {
    /// Writes many aggregates' events in one commit. The result has one entry per part,
    /// in order; a part is written whole or not at all.
    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>>;

    /// Whether the journal itself commits concurrent [`write`](Journal::write) calls
    /// together: one transaction and one fsync for every call waiting, as the writer
    /// thread of [`SqliteJournal`](crate::SqliteJournal) does. Then the gateway passes each
    /// aggregate's write on at once, since holding writes back while others are in flight
    /// would only add a commit to their wait. Default `false`: the gateway keeps two calls
    /// in flight and gathers the writes that come meanwhile into the next call.
    fn groups_writes(&self) -> bool {
        false
    }

    /// Events of one stream with `from <= sequence_nr <= to`, in order, at most `max`.
    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>>;

    /// Calls `visit` with the events [`read`](Journal::read) would return, in order, and
    /// returns how many there were. Recovery replays through this; the default reads a
    /// page and visits it. A store that can lend its records without copying them (as the
    /// in-memory one) overrides it.
    fn replay<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
        visit: &'a mut (dyn FnMut(&EventRecord) + Send),
    ) -> BoxFuture<'a, Result<usize, JournalError>> {
        Box::pin(async move {
            let page = self.read(persistence_id, from, to, max).await?;
            page.iter().for_each(&mut *visit);
            Ok(page.len())
        })
    }

    /// The highest sequence number ever written to the stream (0 if none); deleting
    /// events never lowers it.
    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>>;

    /// Deletes the stream's events with `sequence_nr <= to`.
    fn delete_to<'a>(
        &'a self,
        persistence_id: &'a str,
        to: u64,
    ) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Events of every stream with `position > after`, in global order, at most `max`.
    ///
    /// A reader that pages with `after` (the last position it got) must never skip an
    /// event: no event may become readable later at a position at or below one already
    /// returned. A store whose writers commit out of position order returns only the
    /// settled positions (see `PostgresJournal`). Fewer than `max` events does not mean
    /// there are no more.
    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>>;

    /// Events carrying `tag` with `position > after`, in global order, at most `max`,
    /// never skipping one, as [`read_all`](Journal::read_all).
    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>>;
}

/// A store of aggregate snapshots.
pub trait SnapshotStore: Send + Sync + 'static {
    /// Saves a snapshot; one with the same persistence id and sequence number is replaced.
    fn save(&self, snapshot: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>>;

    /// The newest snapshot with `sequence_nr <= max_sequence_nr`.
    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        max_sequence_nr: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>>;

    /// Deletes all but the newest `keep` snapshots of the stream.
    fn retain<'a>(
        &'a self,
        persistence_id: &'a str,
        keep: usize,
    ) -> BoxFuture<'a, Result<(), JournalError>>;
}

impl<J: Journal + ?Sized> Journal for Arc<J> {
    fn groups_writes(&self) -> bool {
        (**self).groups_writes()
    }
    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>> {
        (**self).write(batch)
    }
    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        (**self).read(persistence_id, from, to, max)
    }
    fn replay<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
        visit: &'a mut (dyn FnMut(&EventRecord) + Send),
    ) -> BoxFuture<'a, Result<usize, JournalError>> {
        (**self).replay(persistence_id, from, to, max, visit)
    }
    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        (**self).highest_sequence_nr(persistence_id)
    }
    fn delete_to<'a>(
        &'a self,
        persistence_id: &'a str,
        to: u64,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        (**self).delete_to(persistence_id, to)
    }
    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        (**self).read_all(after, max)
    }
    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        (**self).read_tag(tag, after, max)
    }
}

impl<S: SnapshotStore + ?Sized> SnapshotStore for Arc<S> {
    fn save(&self, snapshot: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        (**self).save(snapshot)
    }
    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        max_sequence_nr: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>> {
        (**self).load(persistence_id, max_sequence_nr)
    }
    fn retain<'a>(
        &'a self,
        persistence_id: &'a str,
        keep: usize,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        (**self).retain(persistence_id, keep)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
