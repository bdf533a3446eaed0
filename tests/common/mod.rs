//! Domain types and journal wrappers shared by the integration tests: a hand-written
//! counter, journal wrappers that inject faults, and the bank domain written with the
//! macros (`bank`) and by hand (`hand`).
#![allow(dead_code, missing_docs)]

#[path = "../../examples/bank/domain.rs"]
pub mod bank;
pub mod hand;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use factum::{
    Aggregate, AtomicWrite, BoxFuture, CodecError, Command, Event, EventRecord, Journal,
    JournalError, MemoryJournal, Tags,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

thread_local! {
    /// `handle` calls on this thread (tests use a current-thread runtime).
    pub static HANDLED: Cell<usize> = const { Cell::new(0) };
}

pub fn handled() -> usize {
    HANDLED.with(Cell::get)
}

/// A counter that must never go below zero.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    pub value: i64,
    /// How many events were applied since this value was built (from default or snapshot).
    #[serde(skip)]
    pub applied: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CounterEvent {
    Added(i64),
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Add(i64),
    /// Two events in one command.
    AddTwice(i64),
    /// Decides that nothing is to be done.
    Nothing,
    Reset,
}

#[derive(Debug, Clone)]
pub struct CounterCommand {
    pub id: String,
    pub op: Op,
    pub expected: Option<u64>,
    pub command_id: Option<String>,
}

pub fn add(id: &str, amount: i64) -> CounterCommand {
    CounterCommand {
        id: id.to_string(),
        op: Op::Add(amount),
        expected: None,
        command_id: None,
    }
}

impl CounterCommand {
    pub fn expect(mut self, version: u64) -> Self {
        self.expected = Some(version);
        self
    }

    pub fn with_id(mut self, command_id: &str) -> Self {
        self.command_id = Some(command_id.to_string());
        self
    }

    pub fn op(mut self, op: Op) -> Self {
        self.op = op;
        self
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CounterError {
    #[error("adding zero is not allowed")]
    Zero,
    #[error("the counter would go below zero")]
    Negative,
}

impl Command for CounterCommand {
    type Id = String;

    fn aggregate_id(&self) -> &String {
        &self.id
    }

    fn expected_version(&self) -> Option<u64> {
        self.expected
    }

    fn command_id(&self) -> Option<&str> {
        self.command_id.as_deref()
    }

    fn retry_copy(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl Event for CounterEvent {
    fn manifest(&self) -> &'static str {
        match self {
            CounterEvent::Added(_) => "added",
            CounterEvent::Reset => "reset",
        }
    }

    fn version(&self) -> u32 {
        1
    }

    fn tags(&self) -> Tags {
        Tags::fixed(&["counter"])
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Ok(match self {
            CounterEvent::Added(n) => serde_json::to_vec(n)?,
            CounterEvent::Reset => b"null".to_vec(),
        })
    }

    fn decode(manifest: &str, version: u32, payload: &[u8]) -> Result<Self, CodecError> {
        if version != 1 {
            return Err(CodecError::UnknownVersion {
                manifest: manifest.to_string(),
                version,
                current: 1,
            });
        }
        match manifest {
            "added" => Ok(CounterEvent::Added(serde_json::from_slice(payload)?)),
            "reset" => Ok(CounterEvent::Reset),
            other => Err(CodecError::UnknownManifest(other.to_string())),
        }
    }
}

impl Aggregate for Counter {
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = CounterError;

    const NAME: &'static str = "counter";
    const SNAPSHOT_VERSION: Option<u32> = Some(1);

    fn handle(&self, command: CounterCommand) -> Result<Vec<CounterEvent>, CounterError> {
        HANDLED.with(|h| h.set(h.get() + 1));
        match command.op {
            Op::Add(0) => Err(CounterError::Zero),
            Op::Add(n) => Ok(vec![CounterEvent::Added(n)]),
            Op::AddTwice(n) => Ok(vec![CounterEvent::Added(n), CounterEvent::Added(n)]),
            Op::Nothing => Ok(vec![]),
            Op::Reset => Ok(vec![CounterEvent::Reset]),
        }
    }

    fn apply(&mut self, event: &CounterEvent) {
        self.applied += 1;
        match event {
            CounterEvent::Added(n) => self.value += n,
            CounterEvent::Reset => self.value = 0,
        }
    }

    fn invariants(&self) -> Result<(), CounterError> {
        if self.value < 0 {
            return Err(CounterError::Negative);
        }
        Ok(())
    }

    fn encode_snapshot(&self) -> Result<serde_json::Value, CodecError> {
        Ok(serde_json::to_value(self)?)
    }

    fn decode_snapshot(value: serde_json::Value) -> Result<Self, CodecError> {
        Ok(serde_json::from_value(value)?)
    }
}

/// All events of a stream, straight from the journal.
pub async fn stored(journal: &impl Journal, persistence_id: &str) -> Vec<EventRecord> {
    journal
        .read(persistence_id, 1, u64::MAX, usize::MAX)
        .await
        .expect("read")
}

/// The value a counter's stored events add up to.
pub async fn stored_value(journal: &impl Journal, persistence_id: &str) -> i64 {
    let mut counter = Counter::default();
    for record in stored(journal, persistence_id).await {
        counter.apply(
            &CounterEvent::decode(&record.manifest, record.version, &record.payload).unwrap(),
        );
    }
    counter.value
}

/// What a [`Faulty`] journal does with one `write` call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Fails every part without writing anything.
    FailBefore,
    /// Writes everything, then reports an unknown outcome for every part.
    FailAfter,
    /// Refuses every part as a conflict: another writer got there first.
    Conflict,
}

/// A journal wrapper that injects faults into chosen `write` calls, can hold writes and
/// reads at a gate, and records what the runtime asked of it.
#[derive(Clone, Default)]
pub struct Faulty {
    pub inner: MemoryJournal,
    state: Arc<FaultyState>,
}

struct FaultyState {
    /// `(n, fault)`: the n-th write call (from 1) gets `fault`.
    faults: Mutex<Vec<(usize, Fault)>>,
    writes: AtomicUsize,
    /// Sizes (parts) of every write call.
    batches: Mutex<Vec<usize>>,
    /// Persistence ids of every write call.
    batch_pids: Mutex<Vec<Vec<String>>>,
    /// Writes waiting at the write gate now.
    held: AtomicUsize,
    /// Largest `max` any read asked for, and largest page returned.
    largest_read: AtomicUsize,
    reads: AtomicUsize,
    /// Reads of this persistence id wait for `read_gate`; `read_started` is notified first.
    gated_pid: Mutex<Option<String>>,
    /// Reads of every persistence id wait for `read_gate`.
    gate_all_reads: std::sync::atomic::AtomicBool,
    /// Reads waiting at the read gate now.
    reads_held: AtomicUsize,
    /// Reads start from sequence number 1 whatever they ask for, as a broken journal's.
    ignore_from: std::sync::atomic::AtomicBool,
    read_gate: Semaphore,
    read_started: Notify,
    /// When set, every write waits for a permit of `write_gate`; `write_started` is notified.
    gate_writes: std::sync::atomic::AtomicBool,
    write_gate: Semaphore,
    write_started: Notify,
    /// What [`Journal::groups_writes`] answers.
    groups_writes: std::sync::atomic::AtomicBool,
}

impl Default for FaultyState {
    fn default() -> Self {
        FaultyState {
            faults: Mutex::default(),
            writes: AtomicUsize::new(0),
            batches: Mutex::default(),
            batch_pids: Mutex::default(),
            held: AtomicUsize::new(0),
            largest_read: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            gated_pid: Mutex::default(),
            gate_all_reads: std::sync::atomic::AtomicBool::new(false),
            reads_held: AtomicUsize::new(0),
            ignore_from: std::sync::atomic::AtomicBool::new(false),
            read_gate: Semaphore::new(0),
            read_started: Notify::new(),
            gate_writes: std::sync::atomic::AtomicBool::new(false),
            write_gate: Semaphore::new(0),
            write_started: Notify::new(),
            groups_writes: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Faulty {
    pub fn new(inner: MemoryJournal) -> Self {
        Faulty {
            inner,
            state: Arc::default(),
        }
    }

    pub fn fail(&self, nth_write: usize, fault: Fault) {
        self.state.faults.lock().unwrap().push((nth_write, fault));
    }

    pub fn writes(&self) -> usize {
        self.state.writes.load(Ordering::SeqCst)
    }

    pub fn batches(&self) -> Vec<usize> {
        self.state.batches.lock().unwrap().clone()
    }

    /// The persistence ids of each write call, in call order.
    pub fn batch_pids(&self) -> Vec<Vec<String>> {
        self.state.batch_pids.lock().unwrap().clone()
    }

    /// How many writes wait at the write gate now.
    pub fn writes_held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    pub fn largest_read(&self) -> usize {
        self.state.largest_read.load(Ordering::SeqCst)
    }

    pub fn reads(&self) -> usize {
        self.state.reads.load(Ordering::SeqCst)
    }

    /// Holds reads of `persistence_id` until [`release_reads`](Self::release_reads).
    pub fn gate_reads_of(&self, persistence_id: &str) {
        *self.state.gated_pid.lock().unwrap() = Some(persistence_id.to_string());
    }

    /// Holds every read until [`release_reads`](Self::release_reads).
    pub fn gate_all_reads(&self) {
        self.state.gate_all_reads.store(true, Ordering::SeqCst);
    }

    /// How many reads wait at the read gate now.
    pub fn reads_held(&self) -> usize {
        self.state.reads_held.load(Ordering::SeqCst)
    }

    /// Makes every read start from sequence number 1, whatever `from` it asks for.
    pub fn ignore_read_from(&self) {
        self.state.ignore_from.store(true, Ordering::SeqCst);
    }

    pub async fn read_started(&self) {
        self.state.read_started.notified().await;
    }

    pub fn release_reads(&self) {
        self.state.read_gate.add_permits(1_000_000);
    }

    /// Holds every write until [`release_writes`](Self::release_writes).
    pub fn gate_writes(&self) {
        self.state.gate_writes.store(true, Ordering::SeqCst);
    }

    pub async fn write_started(&self) {
        self.state.write_started.notified().await;
    }

    /// Makes [`Journal::groups_writes`] answer `true` (read when a repository is built).
    pub fn claim_to_group_writes(&self) {
        self.state.groups_writes.store(true, Ordering::SeqCst);
    }

    pub fn release_writes(&self) {
        self.state.gate_writes.store(false, Ordering::SeqCst);
        self.state.write_gate.add_permits(1_000_000);
    }
}

impl Journal for Faulty {
    fn groups_writes(&self) -> bool {
        self.state.groups_writes.load(Ordering::SeqCst)
    }

    fn write(&self, batch: Vec<AtomicWrite>) -> BoxFuture<'_, Vec<Result<(), JournalError>>> {
        Box::pin(async move {
            if self.state.gate_writes.load(Ordering::SeqCst) {
                self.state.held.fetch_add(1, Ordering::SeqCst);
                self.state.write_started.notify_one();
                let _permit = self.state.write_gate.acquire().await.unwrap();
                self.state.held.fetch_sub(1, Ordering::SeqCst);
            }
            let n = self.state.writes.fetch_add(1, Ordering::SeqCst) + 1;
            self.state.batches.lock().unwrap().push(batch.len());
            let pids = batch.iter().map(|w| w.persistence_id.to_string()).collect();
            self.state.batch_pids.lock().unwrap().push(pids);
            let fault = self
                .state
                .faults
                .lock()
                .unwrap()
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, f)| *f);
            match fault {
                None => self.inner.write(batch).await,
                Some(Fault::FailBefore) => batch
                    .iter()
                    .map(|_| Err(JournalError::backend(std::io::Error::other("disk on fire"))))
                    .collect(),
                Some(Fault::Conflict) => batch
                    .iter()
                    .map(|w| {
                        Err(JournalError::Conflict {
                            persistence_id: w.persistence_id.to_string(),
                            sequence_nr: w.events.first().map_or(0, |e| e.sequence_nr),
                        })
                    })
                    .collect(),
                Some(Fault::FailAfter) => {
                    let results = self.inner.write(batch).await;
                    results
                        .iter()
                        .map(|_| Err(JournalError::Unknown("connection lost at commit".into())))
                        .collect()
                }
            }
        })
    }

    fn read<'a>(
        &'a self,
        persistence_id: &'a str,
        from: u64,
        to: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        Box::pin(async move {
            let gated = self.state.gate_all_reads.load(Ordering::SeqCst)
                || self.state.gated_pid.lock().unwrap().as_deref() == Some(persistence_id);
            if gated {
                self.state.reads_held.fetch_add(1, Ordering::SeqCst);
                self.state.read_started.notify_one();
                let _permit = self.state.read_gate.acquire().await.unwrap();
                self.state.reads_held.fetch_sub(1, Ordering::SeqCst);
            }
            self.state.reads.fetch_add(1, Ordering::SeqCst);
            self.state.largest_read.fetch_max(max, Ordering::SeqCst);
            let from = if self.state.ignore_from.load(Ordering::SeqCst) {
                1
            } else {
                from
            };
            self.inner.read(persistence_id, from, to, max).await
        })
    }

    fn highest_sequence_nr<'a>(
        &'a self,
        persistence_id: &'a str,
    ) -> BoxFuture<'a, Result<u64, JournalError>> {
        self.inner.highest_sequence_nr(persistence_id)
    }

    fn delete_to<'a>(
        &'a self,
        persistence_id: &'a str,
        to: u64,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        self.inner.delete_to(persistence_id, to)
    }

    fn read_all(
        &self,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        self.inner.read_all(after, max)
    }

    fn read_tag<'a>(
        &'a self,
        tag: &'a str,
        after: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<EventRecord>, JournalError>> {
        self.inner.read_tag(tag, after, max)
    }
}
