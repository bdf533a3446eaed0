//! In-memory stores, for tests and benchmarks. Nothing survives the process.

use std::collections::HashMap;
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard};

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
    streams: HashMap<Arc<str>, Stream>,
    /// Every event in global order: `log[position - 1]`; `None` once deleted.
    log: Vec<Option<EventRecord>>,
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
        for mut event in part.events {
            let position = self.log.len() as u64 + 1;
            event.position = position;
            stream.highest = event.sequence_nr;
            stream.positions.push(position);
            self.log.push(Some(event));
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
                let count = to.saturating_sub(from.max(first)).saturating_add(1);
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
            .get(usize::try_from(position).ok()?.checked_sub(1)?)?
            .as_ref()
    }

    fn scan(
        &self,
        after: u64,
        max: usize,
        keep: impl Fn(&EventRecord) -> bool,
    ) -> Vec<EventRecord> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        self.log
            .iter()
            .skip(start)
            .flatten()
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
