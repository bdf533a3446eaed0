//! The command gateway: [`Repository`] and its builder.
//!
//! The path of one command, each step in its own place:
//! receive ([`Repository::send`]) → dedupe ([`crate::dedupe`]) → recover if needed
//! ([`crate::recovery`]) → handle → apply and check invariants → batch into the journal
//! ([`commit`]) → reply.

pub(crate) mod commit;
pub(crate) mod slots;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};

use crate::aggregate::{Aggregate, Command, Event};
use crate::dedupe::{CommandId, Entry};
use crate::error::Error;
use crate::recovery::{self, decode, encode_snapshot};
use crate::store::{
    AtomicWrite, EventRecord, Journal, JournalError, SnapshotRecord, SnapshotStore, now_millis,
};
use commit::Committer;
use slots::{Live, Slot, Slots};

/// What a successful command to aggregate `A` produced: its events and the aggregate's
/// version after it.
pub struct Receipt<A: Aggregate> {
    /// The events the command wrote (empty if it decided nothing was to be done).
    pub events: Vec<A::Event>,
    /// The aggregate's version (sequence number of its last event) after the command.
    pub version: u64,
}

// By hand rather than derived: a derive would ask `A` itself, not its events, to be
// `Debug`, `Clone` or `PartialEq`.
impl<A: Aggregate> std::fmt::Debug for Receipt<A>
where
    A::Event: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt")
            .field("events", &self.events)
            .field("version", &self.version)
            .finish()
    }
}

impl<A: Aggregate> Clone for Receipt<A> {
    fn clone(&self) -> Self {
        Receipt {
            events: self.events.clone(),
            version: self.version,
        }
    }
}

impl<A: Aggregate> PartialEq for Receipt<A>
where
    A::Event: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.events == other.events && self.version == other.version
    }
}

impl<A: Aggregate> Eq for Receipt<A> where A::Event: Eq {}

/// When to snapshot an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotPolicy {
    /// Never.
    #[default]
    Never,
    /// Whenever a command takes the version across a multiple of `n`.
    Every(u64),
}

/// An event as committed, sent to subscribers of [`Repository::subscribe`].
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<E> {
    /// The aggregate's stream.
    pub persistence_id: Arc<str>,
    /// The event's sequence number in the stream.
    pub sequence_nr: u64,
    /// The event.
    pub event: E,
}

type Interceptor<A> = Box<dyn Fn(&<A as Aggregate>::Command) -> Result<(), String> + Send + Sync>;
type Listener<A> = Box<dyn Fn(&str, u64, &<A as Aggregate>::Event) + Send + Sync>;

pub(crate) struct Config {
    pub dedupe_window: usize,
    pub snapshot_every: Option<u64>,
    pub keep_snapshots: usize,
    pub conflict_retries: u32,
    pub passivate_after: Option<Duration>,
}

pub(crate) struct Inner<A: Aggregate> {
    pub committer: Arc<Committer>,
    pub snapshots: Option<Arc<dyn SnapshotStore>>,
    pub recovery_permits: Semaphore,
    pub config: Config,
    slots: Slots<A>,
    interceptors: Vec<Interceptor<A>>,
    listeners: Vec<Listener<A>>,
    taps: broadcast::Sender<Committed<A::Event>>,
    writer_id: Arc<str>,
    stopped: AtomicBool,
    sweeper: std::sync::Once,
}

/// The command gateway for aggregates of type `A`: a cheap `Clone` handle.
///
/// Commands for one aggregate run one at a time, in arrival order; different aggregates
/// run in parallel, and their journal writes are committed together.
pub struct Repository<A: Aggregate> {
    inner: Arc<Inner<A>>,
}

impl<A: Aggregate> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Repository {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Aggregate> fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &A::NAME)
            .field("in_memory", &self.inner.slots.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Repository`]; made by [`Repository::builder`].
pub struct RepositoryBuilder<A: Aggregate> {
    journal: Arc<dyn Journal>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    policy: SnapshotPolicy,
    keep_snapshots: usize,
    dedupe_window: usize,
    recovery_permits: usize,
    passivate_after: Option<Duration>,
    max_in_memory: usize,
    conflict_retries: u32,
    group_commit: bool,
    tap_capacity: usize,
    interceptors: Vec<Interceptor<A>>,
    listeners: Vec<Listener<A>>,
}

impl<A: Aggregate> fmt::Debug for RepositoryBuilder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryBuilder")
            .field("policy", &self.policy)
            .field("keep_snapshots", &self.keep_snapshots)
            .field("dedupe_window", &self.dedupe_window)
            .field("recovery_permits", &self.recovery_permits)
            .field("passivate_after", &self.passivate_after)
            .field("max_in_memory", &self.max_in_memory)
            .field("conflict_retries", &self.conflict_retries)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> RepositoryBuilder<A> {
    /// Snapshots the state into `store` according to `policy`. Only aggregates with a
    /// snapshot version (`#[aggregate(snapshot)]`) are snapshotted.
    pub fn snapshots(mut self, store: impl SnapshotStore, policy: SnapshotPolicy) -> Self {
        self.snapshots = Some(Arc::new(store));
        self.policy = policy;
        self
    }

    /// How many snapshots to keep per aggregate (default 2, at least 1).
    pub fn keep_snapshots(mut self, keep: usize) -> Self {
        self.keep_snapshots = keep.max(1);
        self
    }

    /// How many command ids per aggregate the dedupe window remembers (default 1024;
    /// 0 disables deduplication).
    pub fn dedupe_window(mut self, size: usize) -> Self {
        self.dedupe_window = size;
        self
    }

    /// How many aggregates may recover at the same time (default 16, at least 1, at most
    /// [`Semaphore::MAX_PERMITS`](tokio::sync::Semaphore::MAX_PERMITS)).
    pub fn recovery_permits(mut self, permits: usize) -> Self {
        self.recovery_permits = permits.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Evicts aggregates from memory after this long without a command, at most twice
    /// this long (default 5 minutes).
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.passivate_after = Some(idle);
        self
    }

    /// Bounds the aggregates held in memory (default 100,000): past it, a new aggregate
    /// evicts the least recently used idle ones of its shard of the aggregate map first.
    pub fn max_in_memory(mut self, max: usize) -> Self {
        self.max_in_memory = max.max(1);
        self
    }

    /// How often a command without an expected version is retried after losing a write
    /// race to another writer of the same aggregate (default 10).
    pub fn conflict_retries(mut self, retries: u32) -> Self {
        self.conflict_retries = retries;
        self
    }

    /// Runs `interceptor` on every command before it reaches its aggregate; an `Err`
    /// rejects the command with `Error::Rejected`.
    pub fn on_command(
        mut self,
        interceptor: impl Fn(&A::Command) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.interceptors.push(Box::new(interceptor));
        self
    }

    /// Calls `listener` with the persistence id, sequence number and event of every
    /// committed event, in order per aggregate. A listener that panics is logged
    /// (`tracing::error!`); the command it heard of still succeeds, and the other
    /// listeners and subscribers still hear of the event.
    pub fn on_event(
        mut self,
        listener: impl Fn(&str, u64, &A::Event) + Send + Sync + 'static,
    ) -> Self {
        self.listeners.push(Box::new(listener));
        self
    }

    /// Whether writes of different aggregates that are pending together go to the journal
    /// in one call (default `true`; a journal that commits concurrent calls together
    /// itself gets each write at once instead: see [`Journal::groups_writes`]). `false`
    /// makes one journal call per command: only useful as a baseline in benchmarks.
    pub fn group_commit(mut self, group_commit: bool) -> Self {
        self.group_commit = group_commit;
        self
    }

    /// How many committed events a slow [`Repository::subscribe`] receiver may lag behind
    /// before it misses some (default 1024; at least 1, at most 2^20: the buffer is
    /// allocated whole when the repository is built).
    pub fn tap_capacity(mut self, capacity: usize) -> Self {
        self.tap_capacity = capacity.clamp(1, MAX_TAP_CAPACITY);
        self
    }

    /// Builds the repository.
    pub fn build(self) -> Repository<A> {
        let snapshot_every = match self.policy {
            SnapshotPolicy::Every(n) if n > 0 && A::SNAPSHOT_VERSION.is_some() => Some(n),
            _ => None,
        };
        Repository {
            inner: Arc::new(Inner {
                committer: Committer::new(self.journal, self.group_commit),
                snapshots: self.snapshots,
                recovery_permits: Semaphore::new(self.recovery_permits),
                config: Config {
                    dedupe_window: self.dedupe_window,
                    snapshot_every,
                    keep_snapshots: self.keep_snapshots,
                    conflict_retries: self.conflict_retries,
                    passivate_after: self.passivate_after,
                },
                slots: Slots::new(self.max_in_memory),
                interceptors: self.interceptors,
                listeners: self.listeners,
                taps: broadcast::channel(self.tap_capacity).0,
                writer_id: Arc::from(writer_id()),
                stopped: AtomicBool::new(false),
                sweeper: std::sync::Once::new(),
            }),
        }
    }
}

/// A writer id unique enough to tell processes and repositories apart in the journal.
fn writer_id() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{:x}-{:x}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl<A: Aggregate> Repository<A> {
    /// Starts configuring a repository over `journal`.
    pub fn builder(journal: impl Journal) -> RepositoryBuilder<A> {
        RepositoryBuilder {
            journal: Arc::new(journal),
            snapshots: None,
            policy: SnapshotPolicy::Never,
            keep_snapshots: 2,
            dedupe_window: 1024,
            recovery_permits: 16,
            passivate_after: Some(Duration::from_secs(300)),
            max_in_memory: 100_000,
            conflict_retries: 10,
            group_commit: true,
            tap_capacity: 1024,
            interceptors: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// A repository over `journal` with default settings.
    pub fn new(journal: impl Journal) -> Self {
        Self::builder(journal).build()
    }

    /// How many aggregates are held in memory now.
    pub fn in_memory(&self) -> usize {
        self.inner.slots.len()
    }

    /// Evicts every aggregate that has no command in flight; they recover on their next
    /// command. Idle aggregates are also evicted by themselves (`passivate_after`).
    pub fn passivate_idle(&self) {
        self.inner.slots.passivate(true);
    }

    /// Committed events, as they are committed. A receiver that lags more than
    /// `tap_capacity` events behind misses the oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Committed<A::Event>> {
        self.inner.taps.subscribe()
    }

    /// Refuses new commands from now on with `Error::Stopped`; commands already running
    /// complete.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Release);
    }

    /// The current state and version of the aggregate `id`, recovering it if needed.
    pub async fn state(
        &self,
        id: &<A::Command as Command>::Id,
    ) -> Result<(A, u64), Error<A::Error>> {
        self.start_sweeper();
        let slot = self.inner.slots.get(id);
        let mut cell = slot.cell.lock().await;
        let live = match cell.take() {
            Some(live) => live,
            None => recovery::recover(&self.inner, &slot).await?,
        };
        let result = (live.state.clone(), live.version);
        *cell = Some(live);
        Ok(result)
    }

    /// Runs a command: the events it produced and the version after it, once they are
    /// durable in the journal.
    pub async fn send(&self, command: A::Command) -> Result<Receipt<A>, Error<A::Error>> {
        let inner = &*self.inner;
        self.start_sweeper();
        let slot = inner.slots.get(command.aggregate_id());
        if inner.stopped.load(Ordering::Acquire) {
            return Err(Error::Stopped {
                persistence_id: slot.persistence_id.to_string(),
            });
        }
        for interceptor in &inner.interceptors {
            interceptor(&command).map_err(|reason| Error::Rejected {
                persistence_id: slot.persistence_id.to_string(),
                reason,
            })?;
        }
        let mut command = command;
        let mut attempt = 0;
        loop {
            match inner.run(&slot, command, attempt).await {
                Outcome::Done(result) => return result,
                Outcome::Retry(again) => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    command = again;
                }
            }
        }
    }

    /// Starts the background passivation sweep on first use (it ends with the repository).
    fn start_sweeper(&self) {
        let Some(idle) = self.inner.config.passivate_after else {
            return;
        };
        self.inner.sweeper.call_once(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let weak = Arc::downgrade(&self.inner);
            // An aggregate untouched for a whole period goes at the next sweep: after at
            // least `passivate_after` idle, at most twice that.
            let period = idle.max(Duration::from_millis(10));
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(period).await;
                    let Some(inner) = weak.upgrade() else { return };
                    inner.slots.passivate(false);
                }
            });
        });
    }
}

/// The largest [`RepositoryBuilder::tap_capacity`].
const MAX_TAP_CAPACITY: usize = 1 << 20;

/// Retry delay after the `attempt`-th lost write race: exponential from 1 ms, capped at
/// 128 ms, with jitter so that competing writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(7);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 1_000_000);
    Duration::from_millis(base) + Duration::from_nanos(jitter * base / 2)
}

enum Outcome<A: Aggregate> {
    Done(Result<Receipt<A>, Error<A::Error>>),
    /// Lost a write race; run this copy of the command again on the reloaded state.
    Retry(A::Command),
}

impl<A: Aggregate> Inner<A> {
    /// One attempt at a command, holding the aggregate's lock throughout.
    ///
    /// The recovered state is taken out of the slot and put back only where memory agrees
    /// with the journal; on every other exit (an error, a dropped future) the slot stays
    /// empty and the next command recovers from the journal.
    async fn run(&self, slot: &Slot<A>, command: A::Command, attempt: u32) -> Outcome<A> {
        let pid = &slot.persistence_id;
        let mut cell = slot.cell.lock().await;
        let mut live = match cell.take() {
            Some(live) => live,
            None => match recovery::recover(self, slot).await {
                Ok(live) => live,
                Err(error) => return Outcome::Done(Err(error)),
            },
        };

        // Dedupe: a repeat gets the first receipt; `handle` does not run. With the window
        // off, the id is only copied into the records, never hashed.
        let raw_id = command.command_id();
        let command_id = raw_id
            .filter(|_| self.config.dedupe_window > 0)
            .map(CommandId::new);
        if let Some(id) = &command_id
            && let Some(entry) = live.window.get(*id)
        {
            *cell = Some(live);
            return Outcome::Done(self.cached_receipt(pid, entry).await);
        }

        let expected = command.expected_version();
        if let Some(expected) = expected
            && expected != live.version
        {
            let actual = live.version;
            *cell = Some(live);
            return Outcome::Done(Err(Error::Conflict {
                persistence_id: pid.to_string(),
                expected,
                actual,
            }));
        }

        let retry = match expected {
            None if attempt < self.config.conflict_retries => command.retry_copy(),
            _ => None,
        };

        // The id's copy for the journal, made while the command still holds the id; the
        // window records it once the events are encoded (see below).
        let id_hash = command_id.map(|id| id.hash());
        let stored_id: Option<Box<str>> = raw_id.map(Box::from);

        // Handle.
        let events = match live.state.handle(command) {
            Ok(events) => events,
            Err(error) => {
                *cell = Some(live);
                return Outcome::Done(Err(Error::Domain(error)));
            }
        };
        if events.is_empty() {
            let entry = Entry {
                version: live.version,
                count: 0,
            };
            self.remember(&mut live, id_hash, stored_id.as_deref(), entry);
            let version = live.version;
            *cell = Some(live);
            return Outcome::Done(Ok(Receipt { events, version }));
        }

        // Encode before anything changes, so that an encoding failure changes nothing.
        let records = match self.encode(pid, live.version, &events, stored_id) {
            Ok(records) => records,
            Err(source) => {
                *cell = Some(live);
                return Outcome::Done(Err(Error::Journal {
                    persistence_id: pid.to_string(),
                    source,
                }));
            }
        };

        // From here on, every exit but success throws `live` away (the next command
        // recovers from the journal), so the window can take the command now, from the
        // id the last record holds.
        let before = live.version;
        let after = before + events.len() as u64;
        let entry = Entry {
            version: after,
            count: u32::try_from(events.len()).unwrap_or(u32::MAX),
        };
        let stored = records.last().and_then(|r| r.command_id.as_deref());
        self.remember(&mut live, id_hash, stored, entry);

        // Apply, then check invariants on the new state. A violation leaves the slot empty:
        // the applied state is thrown away and rebuilt from the journal.
        for event in &events {
            live.state.apply(event);
        }
        if let Err(error) = live.state.invariants() {
            return Outcome::Done(Err(Error::Domain(error)));
        }

        // Persist, together with other aggregates' pending writes.
        let write = AtomicWrite {
            persistence_id: Arc::clone(pid),
            events: records,
        };
        match self.committer.commit(write).await {
            Ok(()) => {}
            Err(JournalError::Conflict { .. }) => {
                slot.verify_highest.store(true, Ordering::Relaxed);
                if let Some(again) = retry {
                    tracing::debug!(
                        persistence_id = &**pid,
                        attempt,
                        "write race lost; retrying"
                    );
                    return Outcome::Retry(again);
                }
                let actual = self
                    .committer
                    .journal()
                    .highest_sequence_nr(pid)
                    .await
                    .unwrap_or(before);
                return Outcome::Done(Err(Error::Conflict {
                    persistence_id: pid.to_string(),
                    expected: expected.unwrap_or(before),
                    actual,
                }));
            }
            Err(source) => {
                tracing::warn!(persistence_id = &**pid, %source, "journal write failed");
                return Outcome::Done(Err(Error::Journal {
                    persistence_id: pid.to_string(),
                    source,
                }));
            }
        }

        // Durable: memory now agrees with the journal.
        live.version = after;
        self.publish(pid, before, &events);
        if let Some(every) = self.config.snapshot_every
            && before / every != live.version / every
        {
            self.save_snapshot(pid, &live).await;
        }
        let version = live.version;
        *cell = Some(live);
        Outcome::Done(Ok(Receipt { events, version }))
    }

    fn encode(
        &self,
        pid: &Arc<str>,
        version: u64,
        events: &[A::Event],
        mut command_id: Option<Box<str>>,
    ) -> Result<Vec<EventRecord>, JournalError> {
        let timestamp = now_millis();
        let mut sequence_nr = version;
        let last = events.len().saturating_sub(1);
        events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                sequence_nr = sequence_nr.checked_add(1).ok_or_else(|| {
                    JournalError::Encode(format!("`{pid}` has no sequence numbers left"))
                })?;
                Ok(EventRecord {
                    persistence_id: Arc::clone(pid),
                    sequence_nr,
                    manifest: Cow::Borrowed(event.manifest()),
                    version: event.version(),
                    payload: event
                        .encode()
                        .map_err(|e| JournalError::Encode(e.to_string()))?,
                    tags: event.tags(),
                    // The last event takes the id itself; earlier ones get copies.
                    command_id: if i == last {
                        command_id.take()
                    } else {
                        command_id.clone()
                    },
                    timestamp,
                    writer_id: Arc::clone(&self.writer_id),
                    position: 0,
                })
            })
            .collect()
    }

    /// Tells listeners and subscribers about committed events.
    fn publish(&self, pid: &Arc<str>, before: u64, events: &[A::Event]) {
        let tapped = self.taps.receiver_count() > 0;
        if !tapped && self.listeners.is_empty() {
            return;
        }
        for (sequence_nr, event) in (before + 1..).zip(events) {
            for listener in &self.listeners {
                // The events are durable: a listener that panics must not fail the command
                // (nor keep the others from hearing of it).
                let heard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    listener(pid, sequence_nr, event);
                }));
                if heard.is_err() {
                    tracing::error!(
                        persistence_id = &**pid,
                        sequence_nr,
                        "an on_event listener panicked; the event is committed"
                    );
                }
            }
            if tapped {
                // No receiver left is fine: taps are optional.
                let _ = self.taps.send(Committed {
                    persistence_id: Arc::clone(pid),
                    sequence_nr,
                    event: event.clone(),
                });
            }
        }
    }

    /// Puts a command that the window did not find into it, by the hash taken before
    /// `handle` and the copy of its id that outlived the command (no hash for a command
    /// without an id, or with the window off).
    fn remember(&self, live: &mut Live<A>, hash: Option<u64>, id: Option<&str>, entry: Entry) {
        if let (Some(hash), Some(id)) = (hash, id) {
            live.window.record_new(
                CommandId::hashed(hash, id),
                entry,
                self.config.dedupe_window,
            );
        }
    }

    /// The receipt of a command already run: its events, read back from the journal.
    async fn cached_receipt(
        &self,
        pid: &Arc<str>,
        entry: Entry,
    ) -> Result<Receipt<A>, Error<A::Error>> {
        let mut events = Vec::with_capacity((entry.count as usize).min(recovery::REPLAY_PAGE));
        // Entries are checked when a snapshot is loaded; saturating all the same.
        let mut next = entry
            .version
            .saturating_sub(u64::from(entry.count))
            .saturating_add(1);
        while next <= entry.version {
            let page = self
                .committer
                .journal()
                .read(pid, next, entry.version, recovery::REPLAY_PAGE)
                .await
                .map_err(|source| Error::Journal {
                    persistence_id: pid.to_string(),
                    source,
                })?;
            let Some(last) = page.last() else { break };
            if page.first().is_some_and(|first| first.sequence_nr < next)
                || last.sequence_nr > entry.version
            {
                return Err(Error::Journal {
                    persistence_id: pid.to_string(),
                    source: recovery::out_of_range(next, entry.version, last.sequence_nr),
                });
            }
            let done = last.sequence_nr >= entry.version;
            next = last.sequence_nr.saturating_add(1);
            for record in &page {
                events.push(decode::<A>(record).map_err(Error::Decode)?);
            }
            if done {
                break;
            }
        }
        Ok(Receipt {
            events,
            version: entry.version,
        })
    }

    /// Saves a snapshot of `live` and prunes old ones. A failure is logged, never returned:
    /// the command has already succeeded.
    async fn save_snapshot(&self, pid: &Arc<str>, live: &Live<A>) {
        let (Some(store), Some(version)) = (&self.snapshots, A::SNAPSHOT_VERSION) else {
            return;
        };
        let payload = match encode_snapshot(live) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(persistence_id = &**pid, %error, "cannot encode snapshot");
                return;
            }
        };
        let record = SnapshotRecord {
            persistence_id: Arc::clone(pid),
            sequence_nr: live.version,
            version,
            payload,
            timestamp: now_millis(),
        };
        if let Err(error) = store.save(record).await {
            tracing::warn!(persistence_id = &**pid, %error, "cannot save snapshot");
            return;
        }
        if let Err(error) = store.retain(pid, self.config.keep_snapshots).await {
            tracing::warn!(persistence_id = &**pid, %error, "cannot prune snapshots");
        }
    }
}
