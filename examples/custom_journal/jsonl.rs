//! [`JsonlJournal`]: a custom store, to show what implementing [`Journal`] and
//! [`SnapshotStore`] takes. It keeps everything in one append-only JSON-lines file and an
//! index in memory, rebuilt from the file on open.
//!
//! Each line is one operation: the events of one aggregate's write, a deletion, a
//! snapshot, or a snapshot pruning. One line per aggregate's write (rather than per event)
//! makes each part of a batch all-or-nothing: a crash in the middle of a line leaves a torn
//! last line, which the next open cuts off. A batch is appended with one `write` and one
//! fsync, so a command is acknowledged only once its events are on disk.
//!
//! Limits, fine for an example: the file only grows (no compaction), every event stays in
//! memory, and one process at a time may open a file (an OS lock refuses a second one;
//! within a process, opening the same path again shares the open handle).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::future::ready;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use factum::{
    AtomicWrite, BoxFuture, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore, Tags,
};
use serde::{Deserialize, Serialize};

/// A [`Journal`] and [`SnapshotStore`] in one JSON-lines file. A cheap `Clone` handle.
#[derive(Clone)]
pub struct JsonlJournal {
    inner: Arc<Mutex<Inner>>,
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    /// The events of one aggregate's write.
    Write {
        persistence_id: String,
        events: Vec<StoredEvent>,
    },
    /// `delete_to`.
    Delete { persistence_id: String, to: u64 },
    /// A snapshot.
    Snapshot {
        persistence_id: String,
        sequence_nr: u64,
        version: u32,
        payload: String,
        timestamp: u64,
    },
    /// `retain`.
    Retain { persistence_id: String, keep: usize },
}

/// An event as stored: the payload is kept as the exact JSON text the codec produced.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    sequence_nr: u64,
    position: u64,
    manifest: String,
    version: u32,
    payload: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command_id: Option<String>,
    timestamp: u64,
    writer_id: String,
}

struct Inner {
    file: File,
    /// The file's length after the last complete line.
    len: u64,
    streams: HashMap<Arc<str>, Stream>,
    /// Global order: `log[position - 1]` is `(stream, sequence_nr)`.
    log: Vec<(Arc<str>, u64)>,
    /// Snapshots by stream, by sequence number.
    snapshots: HashMap<Arc<str>, BTreeMap<u64, SnapshotRecord>>,
}

#[derive(Default)]
struct Stream {
    /// Events not deleted, by sequence number.
    events: BTreeMap<u64, EventRecord>,
    /// The highest sequence number ever written; deleting never lowers it.
    highest: u64,
}

/// Files open in this process, so that opening one twice shares its handle.
static OPEN: Mutex<BTreeMap<PathBuf, Weak<Mutex<Inner>>>> = Mutex::new(BTreeMap::new());

impl JsonlJournal {
    /// Opens (or creates) the file at `path` and loads it.
    pub fn open(path: impl AsRef<Path>) -> io::Result<JsonlJournal> {
        let path = path.as_ref();
        File::options().create(true).append(true).open(path)?;
        let path = path.canonicalize()?;
        let mut open = lock(&OPEN);
        open.retain(|_, inner| inner.strong_count() > 0);
        if let Some(inner) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(JsonlJournal { inner });
        }
        let inner = Arc::new(Mutex::new(Inner::load(&path)?));
        open.insert(path, Arc::downgrade(&inner));
        Ok(JsonlJournal { inner })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Runs `f` on the file off the async threads: appending syncs the file, which blocks.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> T + Send + 'static,
    ) -> BoxFuture<'_, Result<T, JournalError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&mut lock(&inner)))
                .await
                .map_err(JournalError::backend)
        })
    }
}

/// A poisoned lock is still consistent: the index changes only after the file did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    /// Reads the file into the index. A torn last line (a crash mid-write) is cut off; any
    /// other unreadable line is an error.
    fn load(path: &Path) -> io::Result<Inner> {
        let mut file = OpenOptions::new().read(true).append(true).open(path)?;
        file.try_lock().map_err(|e| {
            io::Error::other(format!(
                "{} is in use by another process: {e}",
                path.display()
            ))
        })?;
        let mut inner = Inner {
            file: file.try_clone()?,
            len: 0,
            streams: HashMap::new(),
            log: Vec::new(),
            snapshots: HashMap::new(),
        };
        let mut reader = BufReader::new(&mut file);
        let mut text = String::new();
        loop {
            text.clear();
            let read = reader.read_line(&mut text)?;
            if !text.ends_with('\n') {
                break; // the end, or a torn last line
            }
            let line = serde_json::from_str(&text).map_err(|e| {
                io::Error::other(format!(
                    "{}: bad line at byte {}: {e}",
                    path.display(),
                    inner.len
                ))
            })?;
            inner.apply(line);
            inner.len += read as u64;
        }
        inner.file.set_len(inner.len)?;
        inner.file.seek(SeekFrom::End(0))?;
        Ok(inner)
    }

    /// Appends `lines` in one write and syncs. On failure the file is cut back, so that it
    /// never keeps half a batch.
    fn append(&mut self, lines: &[Line]) -> Result<(), JournalError> {
        let mut bytes = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut bytes, line).map_err(JournalError::backend)?;
            bytes.push(b'\n');
        }
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(error) => match self.file.set_len(self.len) {
                Ok(()) => Err(JournalError::backend(error)),
                // Whether the lines are in the file is anyone's guess until it is reopened.
                Err(_) => Err(JournalError::Unknown(error.to_string())),
            },
        }
    }

    /// Applies one line to the index (on load, and after it is appended).
    fn apply(&mut self, line: Line) {
        match line {
            Line::Write {
                persistence_id,
                events,
            } => {
                let pid: Arc<str> = Arc::from(persistence_id);
                let stream = self.streams.entry(Arc::clone(&pid)).or_default();
                for e in events {
                    let log_index = usize::try_from(e.position - 1).expect("position");
                    if self.log.len() <= log_index {
                        self.log.resize(log_index + 1, (Arc::from(""), 0));
                    }
                    self.log[log_index] = (Arc::clone(&pid), e.sequence_nr);
                    stream.highest = stream.highest.max(e.sequence_nr);
                    let record = EventRecord {
                        persistence_id: Arc::clone(&pid),
                        sequence_nr: e.sequence_nr,
                        manifest: e.manifest.into(),
                        version: e.version,
                        payload: e.payload.into_bytes(),
                        tags: Tags::owned(e.tags),
                        command_id: e.command_id.map(String::into_boxed_str),
                        timestamp: e.timestamp,
                        writer_id: Arc::from(e.writer_id),
                        position: e.position,
                    };
                    stream.events.insert(e.sequence_nr, record);
                }
            }
            Line::Delete { persistence_id, to } => {
                if let Some(stream) = self.streams.get_mut(persistence_id.as_str()) {
                    stream.events = stream.events.split_off(&to.saturating_add(1));
                }
            }
            Line::Snapshot {
                persistence_id,
                sequence_nr,
                version,
                payload,
                timestamp,
            } => {
                let pid: Arc<str> = Arc::from(persistence_id);
                let record = SnapshotRecord {
                    persistence_id: Arc::clone(&pid),
                    sequence_nr,
                    version,
                    payload: payload.into_bytes(),
                    timestamp,
                };
                self.snapshots
                    .entry(pid)
                    .or_default()
                    .insert(sequence_nr, record);
            }
            Line::Retain {
                persistence_id,
                keep,
            } => {
                if let Some(list) = self.snapshots.get_mut(persistence_id.as_str()) {
                    while list.len() > keep {
                        list.pop_first();
                    }
                }
            }
        }
    }

    /// Writes a batch: checks every part against the index (and the parts before it),
    /// appends the good ones in one go, then indexes them.
    fn write(&mut self, batch: Vec<AtomicWrite>) -> Vec<Result<(), JournalError>> {
        let mut results = Vec::with_capacity(batch.len());
        let mut lines = Vec::new();
        let mut highest: HashMap<Arc<str>, u64> = HashMap::new();
        let mut position = self.log.len() as u64;
        for part in batch {
            let pid = part.persistence_id;
            let current = *highest
                .entry(Arc::clone(&pid))
                .or_insert_with(|| self.streams.get(&pid).map_or(0, |s| s.highest));
            let taken = (current + 1..)
                .zip(&part.events)
                .find(|(expected, e)| e.sequence_nr != *expected)
                .map(|(expected, e)| e.sequence_nr.min(expected));
            if let Some(sequence_nr) = taken {
                results.push(Err(JournalError::Conflict {
                    persistence_id: pid.to_string(),
                    sequence_nr,
                }));
                continue;
            }
            let mut next = position;
            let events: Result<Vec<StoredEvent>, JournalError> = part
                .events
                .into_iter()
                .map(|e| {
                    next += 1;
                    Ok(StoredEvent {
                        sequence_nr: e.sequence_nr,
                        position: next,
                        manifest: e.manifest.into_owned(),
                        version: e.version,
                        payload: String::from_utf8(e.payload)
                            .map_err(|_| JournalError::Encode("payload is not UTF-8".into()))?,
                        tags: e.tags.iter().map(str::to_owned).collect(),
                        command_id: e.command_id.map(|c| c.to_string()),
                        timestamp: e.timestamp,
                        writer_id: e.writer_id.to_string(),
                    })
                })
                .collect();
            let events = match events {
                Ok(events) => events,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            results.push(Ok(()));
            let Some(last) = events.last() else {
                continue; // an empty part writes nothing
            };
            highest.insert(Arc::clone(&pid), last.sequence_nr);
            position = next;
            lines.push(Line::Write {
                persistence_id: pid.to_string(),
                events,
            });
        }
        if lines.is_empty() {
            return results;
        }
        if let Err(error) = self.append(&lines) {
            // Nothing of the batch is indexed; every part that was to be written failed.
            for result in results.iter_mut().filter(|r| r.is_ok()) {
                *result = Err(error.clone());
            }
            return results;
        }
        for line in lines {
            self.apply(line);
        }
        results
    }

    /// Events of the whole log with `position > after` that pass `keep`, at most `max`.
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
            .filter_map(|(pid, seq)| self.streams.get(pid)?.events.get(seq))
            .filter(|e| keep(e))
            .take(max)
            .cloned()
            .collect()
    }
}

impl Journal for JsonlJournal {
    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>> {
        let parts = batch.len();
        let write = self.blocking(move |inner| inner.write(batch));
        Box::pin(async move { write.await.unwrap_or_else(|error| vec![Err(error); parts]) })
    }

    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        let inner = self.inner();
        let events = match inner.streams.get(persistence_id) {
            Some(stream) if from <= to => stream
                .events
                .range(from..=to)
                .take(max)
                .map(|(_, e)| e.clone())
                .collect(),
            _ => Vec::new(),
        };
        Box::pin(ready(Ok(events)))
    }

    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        let highest = self
            .inner()
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
        let line = Line::Delete {
            persistence_id: persistence_id.to_owned(),
            to,
        };
        let done = self.blocking(move |inner| {
            inner.append(std::slice::from_ref(&line))?;
            inner.apply(line);
            Ok(())
        });
        Box::pin(async move { done.await? })
    }

    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(ready(Ok(self.inner().scan(after, max, |_| true))))
    }

    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(ready(Ok(self
            .inner()
            .scan(after, max, |e| e.tags.contains(tag)))))
    }
}

impl SnapshotStore for JsonlJournal {
    fn save(&self, snapshot: SnapshotRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        let payload = String::from_utf8(snapshot.payload).map_err(JournalError::backend);
        let done = self.blocking(move |inner| {
            let line = Line::Snapshot {
                persistence_id: snapshot.persistence_id.to_string(),
                sequence_nr: snapshot.sequence_nr,
                version: snapshot.version,
                payload: payload?,
                timestamp: snapshot.timestamp,
            };
            inner.append(std::slice::from_ref(&line))?;
            inner.apply(line);
            Ok(())
        });
        Box::pin(async move { done.await? })
    }

    fn load<'a>(
        &'a self,
        persistence_id: &'a str,
        max_sequence_nr: u64,
    ) -> BoxFuture<'a, Result<Option<SnapshotRecord>, JournalError>> {
        let found = self.inner().snapshots.get(persistence_id).and_then(|list| {
            list.range(..=max_sequence_nr)
                .next_back()
                .map(|(_, s)| s.clone())
        });
        Box::pin(ready(Ok(found)))
    }

    fn retain<'a>(
        &'a self,
        persistence_id: &'a str,
        keep: usize,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        let line = Line::Retain {
            persistence_id: persistence_id.to_owned(),
            keep,
        };
        let done = self.blocking(move |inner| {
            inner.append(std::slice::from_ref(&line))?;
            inner.apply(line);
            Ok(())
        });
        Box::pin(async move { done.await? })
    }
}
