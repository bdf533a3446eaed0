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
    /// Global order: `log[position - 1]` is `(stream, sequence_nr)`.
    log: Vec<(Arc<str>, u64)>,
}

#[derive(Default)]
struct Stream {
    /// Events with `sequence_nr > deleted_to`, in order.
    events: Vec<EventRecord>,
    highest: u64,
    deleted_to: u64,
}

impl Stream {
    fn get(&self, sequence_nr: u64) -> Option<&EventRecord> {
        let first = self.events.first()?.sequence_nr;
        let index = usize::try_from(sequence_nr.checked_sub(first)?).ok()?;
        self.events.get(index)
    }
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
        let stream = self.streams.entry(part.persistence_id.clone()).or_default();
        for (expected, event) in (stream.highest + 1..).zip(&part.events) {
            if event.sequence_nr != expected {
                return Err(JournalError::Conflict {
                    persistence_id: part.persistence_id.to_string(),
                    sequence_nr: event.sequence_nr.min(expected),
                });
            }
        }
        for mut event in part.events {
            self.log
                .push((part.persistence_id.clone(), event.sequence_nr));
            event.position = self.log.len() as u64;
            stream.highest = event.sequence_nr;
            stream.events.push(event);
        }
        Ok(())
    }

    fn by_position(&self, position: u64) -> Option<&EventRecord> {
        let (stream, sequence_nr) = self
            .log
            .get(usize::try_from(position).ok()?.checked_sub(1)?)?;
        self.streams.get(stream)?.get(*sequence_nr)
    }

    fn scan(
        &self,
        after: u64,
        max: usize,
        keep: impl Fn(&EventRecord) -> bool,
    ) -> Vec<EventRecord> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        (start..self.log.len())
            .filter_map(|i| self.by_position(i as u64 + 1))
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
        let events = match state.streams.get(persistence_id) {
            Some(stream) if from <= to => {
                let first = stream.events.first().map_or(u64::MAX, |e| e.sequence_nr);
                let skip = usize::try_from(from.saturating_sub(first)).unwrap_or(usize::MAX);
                stream
                    .events
                    .iter()
                    .skip(skip)
                    .take_while(|e| e.sequence_nr <= to)
                    .take(max)
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        Box::pin(ready(Ok(events)))
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
        if let Some(stream) = self.state().streams.get_mut(persistence_id) {
            let to = to.min(stream.highest);
            if to > stream.deleted_to {
                stream.events.retain(|e| e.sequence_nr > to);
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
