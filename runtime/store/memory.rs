//! In-memory stores, for tests and benchmarks. Nothing survives the process.

use std::collections::HashMap;
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::hash::KeyedState;

use super::{
    AtomicWrite, BoxFuture, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore,
};

/// An in-memory [`Journal`]: a cheap `Clone` handle; clones share the events.
///
/// For tests and benchmarks; use `SqliteJournal` or `PostgresJournal` for real data.
#[derive(Clone, Default)]
pub struct MemoryJournal {
    inner: Arc<Mutex<JournalState>>,
}

#[derive(Default)]
struct JournalState {
    streams: HashMap<Arc<str>, Stream, KeyedState>,
    log: Log,
}

/// Events in a chunk of the log.
const CHUNK: usize = 4096;

/// Every event in global order, the one at `position` at index `position - 1`; `None`
/// once deleted (or not yet written).
///
/// What a write does under the journal's lock is kept short and free of page faults, so
/// that the writers of other threads seldom wait for it, and not long enough to fall
/// asleep (BENCHMARKS.md, W2). The log is a list of chunks of [`CHUNK`] slots that never
/// move once allocated (a doubling `Vec` copied every record under the lock), and each
/// chunk is allocated and filled with `None` outside the lock (see [`Log::wants_spare`]),
/// so that storing a record touches memory that is already mapped. Only the first chunk
/// is a plain `Vec` that grows as events come, so that a small journal (a test's) stays
/// small.
#[derive(Default)]
struct Log {
    chunks: Vec<Vec<Option<EventRecord>>>,
    len: usize,
    /// The next chunk, ready before the current one is full.
    spare: Option<Vec<Option<EventRecord>>>,
}

impl Log {
    fn len(&self) -> usize {
        self.len
    }

    /// A chunk of empty slots, every page of it touched: made outside the lock.
    fn fresh_chunk() -> Vec<Option<EventRecord>> {
        (0..CHUNK).map(|_| None).collect()
    }

    /// Whether a writer should make the next chunk (after releasing the lock) and hand it
    /// over with [`Log::give_spare`]: from half of the current chunk on.
    fn wants_spare(&self) -> bool {
        self.spare.is_none() && self.len % CHUNK >= CHUNK / 2
    }

    /// Keeps `chunk` as the next one, or gives it back when another writer was first.
    fn give_spare(&mut self, chunk: Vec<Option<EventRecord>>) -> Option<Vec<Option<EventRecord>>> {
        match self.spare {
            None => {
                self.spare = Some(chunk);
                None
            }
            Some(_) => Some(chunk),
        }
    }

    fn push(&mut self, event: EventRecord) {
        let (chunk, slot) = (self.len / CHUNK, self.len % CHUNK);
        if chunk == 0 {
            match self.chunks.first_mut() {
                Some(first) => first.push(Some(event)),
                None => self.chunks.push(vec![Some(event)]),
            }
        } else {
            if chunk == self.chunks.len() {
                // Only when writers outran the spare's maker is a chunk made under the lock.
                let next = self.spare.take().unwrap_or_else(Self::fresh_chunk);
                self.chunks.push(next);
            }
            if let Some(place) = self.chunks.get_mut(chunk).and_then(|c| c.get_mut(slot)) {
                *place = Some(event);
            }
        }
        self.len += 1;
    }

    fn get(&self, index: usize) -> Option<&EventRecord> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)?.as_ref()
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Option<EventRecord>> {
        self.chunks.get_mut(index / CHUNK)?.get_mut(index % CHUNK)
    }

    /// The events from index `start` on, deleted ones skipped.
    fn from(&self, start: usize) -> impl Iterator<Item = &EventRecord> {
        let (first, skip) = (start / CHUNK, start % CHUNK);
        self.chunks
            .get(first..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(move |(i, chunk)| {
                chunk
                    .get(if i == 0 { skip } else { 0 }..)
                    .unwrap_or_default()
            })
            .flatten()
    }
}

#[derive(Default)]
struct Stream {
    /// Positions of the stream's events with `sequence_nr > deleted_to`, in order:
    /// `positions[i]` holds sequence number `deleted_to + 1 + i` (streams have no gaps).
    positions: Vec<u64>,
    highest: u64,
    deleted_to: u64,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, JournalState> {
        // A panic while holding the lock cannot leave a half-written part: parts are
        // checked before anything is pushed. So a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for MemoryJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("MemoryJournal")
            .field("streams", &state.streams.len())
            .field("events", &state.log.len())
            .finish()
    }
}

impl JournalState {
    /// Appends one part's events, or refuses all of them.
    fn write_part(&mut self, part: AtomicWrite) -> Result<(), JournalError> {
        let stream = self.streams.entry(part.persistence_id).or_default();
        for (expected, event) in (stream.highest + 1..).zip(&part.events) {
            if event.sequence_nr != expected {
                return Err(JournalError::Conflict {
                    persistence_id: event.persistence_id.to_string(),
                    sequence_nr: event.sequence_nr.min(expected),
                });
            }
        }
        let positions = &mut stream.positions;
        if positions.capacity() - positions.len() < part.events.len() {
            // Grown by hand rather than by `realloc`, which could wait, under the journal's
            // lock, on the lock of the allocator arena of the thread that made the buffer.
            let want = (positions.len() + part.events.len())
                .max(2 * positions.len())
                .max(8);
            let mut grown = Vec::with_capacity(want);
            grown.extend_from_slice(positions);
            *positions = grown;
        }
        for mut event in part.events {
            let position = self.log.len() as u64 + 1;
            event.position = position;
            stream.highest = event.sequence_nr;
            positions.push(position);
            self.log.push(event);
        }
        Ok(())
    }

    /// A stream's events with `from <= sequence_nr <= to`, at most `max`.
    fn range<'s>(
        &'s self,
        persistence_id: &str,
        from: u64,
        to: u64,
        max: usize,
    ) -> impl Iterator<Item = &'s EventRecord> + 's {
        let (positions, skip, take): (&[u64], usize, usize) = match self.streams.get(persistence_id)
        {
            Some(stream) if from <= to => {
                let first = stream.deleted_to + 1;
                let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
                // Nothing when the whole range was deleted (`to < first`).
                let count = to
                    .checked_sub(from.max(first))
                    .map_or(0, |span| span.saturating_add(1));
                let take = usize::try_from(count).unwrap_or(usize::MAX).min(max);
                (&stream.positions, skip, take)
            }
            _ => (&[], 0, 0),
        };
        positions
            .iter()
            .skip(skip)
            .take(take)
            .filter_map(|&p| self.at(p))
    }

    fn at(&self, position: u64) -> Option<&EventRecord> {
        self.log
            .get(usize::try_from(position).ok()?.checked_sub(1)?)
    }

    fn scan(
        &self,
        after: u64,
        max: usize,
        keep: impl Fn(&EventRecord) -> bool,
    ) -> Vec<EventRecord> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        self.log
            .from(start)
            .filter(|e| keep(e))
            .take(max)
            .cloned()
            .collect()
    }
}

impl Journal for MemoryJournal {
    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>> {
        let mut state = self.state();
        let results = batch
            .into_iter()
            .map(|part| state.write_part(part))
            .collect();
        let wants_spare = state.log.wants_spare();
        drop(state);
        if wants_spare {
            let chunk = Log::fresh_chunk();
            let unused = self.state().log.give_spare(chunk);
            drop(unused);
        }
        Box::pin(ready(results))
    }

    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        let state = self.state();
        let events = state
            .range(persistence_id, from, to, max)
            .cloned()
            .collect();
        Box::pin(ready(Ok(events)))
    }

    fn replay<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
        visit: &'a mut (dyn FnMut(&EventRecord) + Send),
    ) -> BoxFuture<'a, Result<usize, JournalError>> {
        // Lends the stored records: no copies.
        let state = self.state();
        let mut count = 0;
        for record in state.range(persistence_id, from, to, max) {
            visit(record);
            count += 1;
        }
        Box::pin(ready(Ok(count)))
    }

    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        let highest = self
            .state()
            .streams
            .get(persistence_id)
            .map_or(0, |s| s.highest);
        Box::pin(ready(Ok(highest)))
    }

    fn delete_to<'a>(
        &'a self,
        persistence_id: &'a str,
        to: u64,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        let mut state = self.state();
        let JournalState { streams, log } = &mut *state;
        if let Some(stream) = streams.get_mut(persistence_id) {
            let to = to.min(stream.highest);
            if to > stream.deleted_to {
                let count = usize::try_from(to - stream.deleted_to).unwrap_or(usize::MAX);
                for position in stream.positions.drain(..count.min(stream.positions.len())) {
                    if let Some(slot) = usize::try_from(position - 1)
                        .ok()
                        .and_then(|i| log.get_mut(i))
                    {
                        *slot = None;
                    }
                }
                stream.deleted_to = to;
            }
        }
        Box::pin(ready(Ok(())))
    }

    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(ready(Ok(self.state().scan(after, max, |_| true))))
    }

    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(ready(Ok(self
            .state()
            .scan(after, max, |e| e.tags.contains(tag)))))
    }
}

/// An in-memory [`SnapshotStore`]: a cheap `Clone` handle; clones share the snapshots.
#[derive(Clone, Default)]
pub struct MemorySnapshots {
    inner: Arc<Mutex<HashMap<Arc<str>, Vec<SnapshotRecord>>>>,
}

impl MemorySnapshots {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, HashMap<Arc<str>, Vec<SnapshotRecord>>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for MemorySnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySnapshots")
            .field("streams", &self.state().len())
            .finish()
    }
}

impl SnapshotStore for MemorySnapshots {
    fn save(&self, snapshot: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        let mut state = self.state();
        let list = state.entry(snapshot.persistence_id.clone()).or_default();
        // Kept sorted by sequence number; the same sequence number is replaced.
        match list.binary_search_by_key(&snapshot.sequence_nr, |s| s.sequence_nr) {
            Ok(i) => list[i] = snapshot,
            Err(i) => list.insert(i, snapshot),
        }
        Box::pin(ready(Ok(())))
    }

    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        max_sequence_nr: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>> {
        let found = self.state().get(persistence_id).and_then(|list| {
            list.iter()
                .rev()
                .find(|s| s.sequence_nr <= max_sequence_nr)
                .cloned()
        });
        Box::pin(ready(Ok(found)))
    }

    fn retain<'a>(
        &'a self,
        persistence_id: &'a str,
        keep: usize,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        if let Some(list) = self.state().get_mut(persistence_id) {
            let excess = list.len().saturating_sub(keep);
            list.drain(..excess);
        }
        Box::pin(ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::codec::Tags;

    fn event(stream: &Arc<str>, sequence_nr: u64, tagged: bool) -> EventRecord {
        EventRecord {
            persistence_id: Arc::clone(stream),
            sequence_nr,
            manifest: Cow::Borrowed("Added"),
            version: 1,
            payload: format!("{sequence_nr}").into_bytes(),
            tags: if tagged {
                Tags::fixed(&["odd"])
            } else {
                Tags::NONE
            },
            command_id: None,
            timestamp: 0,
            writer_id: Arc::from("test"),
            position: 0,
        }
    }

    /// Waits for a store future; the memory stores' futures are ready at once.
    fn now<T>(future: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|runtime| runtime.block_on(future))
            .unwrap_or_else(|error| panic!("no runtime: {error}"))
    }

    fn ok<T>(result: Result<T, JournalError>) -> T {
        result.unwrap_or_else(|error| panic!("{error}"))
    }

    fn positions(records: &[EventRecord]) -> Vec<u64> {
        records.iter().map(|r| r.position).collect()
    }

    /// A journal of a few events holds a few slots, not a whole chunk.
    #[test]
    fn a_small_journal_stays_small() {
        let journal = MemoryJournal::new();
        let stream: Arc<str> = Arc::from("s");
        for sequence_nr in 1..=10 {
            let part = AtomicWrite {
                persistence_id: Arc::clone(&stream),
                events: vec![event(&stream, sequence_nr, false)],
            };
            let results = now(journal.write(vec![part]));
            assert!(matches!(results[..], [Ok(())]), "{results:?}");
        }
        {
            let state = journal.state();
            let capacity = state.log.chunks[0].capacity();
            assert!(capacity < 64, "the first chunk holds {capacity} slots");
            assert!(state.log.spare.is_none());
        }
        let all = ok(now(journal.read_all(0, 100)));
        assert_eq!(positions(&all), (1..=10).collect::<Vec<_>>());
    }

    /// Three streams written round-robin over more than two chunks of the log: reads by
    /// position, by tag and by stream agree with the order of writing across the chunks'
    /// edges, before and after a delete.
    #[test]
    fn reads_cross_the_log_chunks() {
        let journal = MemoryJournal::new();
        let streams: Vec<Arc<str>> = (0..3).map(|i| Arc::from(format!("s-{i}"))).collect();
        let total = 2 * CHUNK as u64 + 100;
        for position in 1..=total {
            let stream = &streams[(position % 3) as usize];
            let sequence_nr = position.div_ceil(3);
            let part = AtomicWrite {
                persistence_id: Arc::clone(stream),
                events: vec![event(stream, sequence_nr, position % 2 == 1)],
            };
            let results = now(journal.write(vec![part]));
            assert!(matches!(results[..], [Ok(())]), "{results:?}");
        }
        let chunks: Vec<usize> = journal.state().log.chunks.iter().map(Vec::len).collect();
        assert_eq!(chunks, vec![CHUNK, CHUNK, CHUNK]);

        for after in [0, 1, CHUNK as u64 - 1, CHUNK as u64, 2 * CHUNK as u64 + 7] {
            let all = ok(now(journal.read_all(after, 5)));
            assert_eq!(positions(&all), (after + 1..=after + 5).collect::<Vec<_>>());
            let odd = ok(now(journal.read_tag("odd", after, 3)));
            let first = after + 1 + after % 2;
            assert_eq!(positions(&odd), vec![first, first + 2, first + 4]);
        }
        let tail = ok(now(journal.read_all(total - 2, 10)));
        assert_eq!(positions(&tail), vec![total - 1, total]);

        // Stream s-1 holds positions 1, 4, 7, ...: its sequence number n is at 3n - 2.
        let stream = ok(now(journal.read("s-1", 1_360, 1_380, 100)));
        assert_eq!(stream.len(), 21);
        assert!(stream.iter().all(|r| r.position == 3 * r.sequence_nr - 2));

        // Deleting s-1 up to 1,400 (its positions up to 4,198) empties its slots in the
        // first two chunks (4,192, 4,195, 4,198 among those below); the other streams'
        // events around them stay.
        ok(now(journal.delete_to("s-1", 1_400)));
        let around = ok(now(journal.read_all(4_190, 9)));
        assert_eq!(
            positions(&around),
            vec![
                4_191, 4_193, 4_194, 4_196, 4_197, 4_199, 4_200, 4_201, 4_202
            ]
        );
        assert_eq!(ok(now(journal.read("s-1", 1, 1_401, 10))).len(), 1);
        assert_eq!(
            ok(now(journal.highest_sequence_nr("s-1"))),
            total.div_ceil(3)
        );
    }
}
