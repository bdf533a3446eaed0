//! Group commit: the writes of every aggregate that is waiting go to the journal in one call.
//!
//! No background task sits in the path. The first writer to arrive while the journal is idle
//! becomes the leader and writes at once (alone, with no hop, when nothing else is pending);
//! writers that arrive while a write is in flight queue up and go together in the next
//! journal call, which the leader makes before it gives the lead up. A leader whose future
//! is dropped mid-write hands the queue to a spawned task, and the writes of its batch get
//! an "outcome unknown" error.
//!
//! A journal that groups concurrent calls itself ([`Journal::groups_writes`]) gets every
//! write at once, in a call of its own: it already commits everything waiting together,
//! and a write held back here would wait for a whole commit before it even reached it.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::store::{AtomicWrite, Journal, JournalError};

/// At most this many aggregates' parts go into one journal call.
const MAX_BATCH: usize = 1024;

/// How many journal calls may be in flight at once. Two: one batch commits while the next
/// gathers, so the journal is never idle while commands wait. More would split the waiting
/// commands into smaller batches that each pay for a statement and a commit: on
/// PostgreSQL, whose server is the bottleneck, four calls in flight ran D2 (BENCHMARKS.md)
/// at two thirds of the speed of two.
const MAX_IN_FLIGHT: usize = 2;

/// How many further journal calls a leader makes for others before handing on to a task.
const LEADER_ROUNDS: usize = 4;

type Waiter = oneshot::Sender<Result<(), JournalError>>;

pub(crate) struct Committer {
    journal: Arc<dyn Journal>,
    /// `false`: every write goes to the journal on its own (a benchmark baseline).
    grouped: bool,
    /// Journal calls that may be in flight at once: [`MAX_IN_FLIGHT`], or no limit for a
    /// journal that groups concurrent calls itself ([`Journal::groups_writes`]).
    max_in_flight: usize,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    writes: Vec<AtomicWrite>,
    waiters: Vec<Waiter>,
    /// Journal calls in flight (each with a leader that drains the queue after it). At
    /// `max_in_flight`, new writes queue up. Invariant: a non-empty queue has a drainer.
    in_flight: usize,
}

fn abandoned() -> JournalError {
    JournalError::Unknown("the journal write was abandoned before it completed".into())
}

impl Committer {
    pub fn new(journal: Arc<dyn Journal>, grouped: bool) -> Arc<Self> {
        let max_in_flight = if journal.groups_writes() {
            usize::MAX
        } else {
            MAX_IN_FLIGHT
        };
        Arc::new(Committer {
            journal,
            grouped,
            max_in_flight,
            queue: Mutex::new(Queue::default()),
        })
    }

    pub fn journal(&self) -> &dyn Journal {
        &*self.journal
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue holds plain data and no invariant spans a panic point.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes one aggregate's part, together with whatever else is pending.
    pub async fn commit(self: &Arc<Self>, write: AtomicWrite) -> Result<(), JournalError> {
        if !self.grouped {
            return single(self.journal.write(vec![write]).await);
        }
        let follower = {
            let mut queue = self.queue();
            if queue.in_flight < self.max_in_flight && queue.writes.is_empty() {
                queue.in_flight += 1;
                Ok(write)
            } else {
                let (tx, rx) = oneshot::channel();
                queue.writes.push(write);
                queue.waiters.push(tx);
                Err(rx)
            }
        };
        match follower {
            Ok(write) => self.lead(write).await,
            Err(rx) => rx.await.unwrap_or_else(|_| Err(abandoned())),
        }
    }

    /// Writes `own` alone (the queue was empty when we took the lead), then whatever
    /// queued up meanwhile, before giving the lead up.
    async fn lead(self: &Arc<Self>, own: AtomicWrite) -> Result<(), JournalError> {
        let guard = HandOn { committer: self };
        let results = self.journal.write(vec![own]).await;
        std::mem::forget(guard);
        self.drain(LEADER_ROUNDS).await;
        single(results)
    }

    /// Writes queued batches until the queue is empty, then gives the lead up; after
    /// `rounds` journal calls, a spawned task takes over instead, so that a leader's own
    /// reply is not held up by a steady stream of other writes. If dropped midway, a task
    /// takes over too (see [`HandOn`]).
    async fn drain(self: &Arc<Self>, rounds: usize) {
        for _ in 0..rounds {
            let (writes, waiters) = {
                let mut queue = self.queue();
                if queue.writes.is_empty() {
                    queue.in_flight -= 1;
                    return;
                }
                let n = queue.writes.len().min(MAX_BATCH);
                let writes: Vec<_> = queue.writes.drain(..n).collect();
                let waiters: Vec<_> = queue.waiters.drain(..n).collect();
                (writes, waiters)
            };
            let guard = HandOn { committer: self };
            let results = self.journal.write(writes).await;
            std::mem::forget(guard);
            deliver(waiters, results);
        }
        self.hand_on();
    }

    /// Gives the lead up, or hands it to a task when writes are queued.
    fn hand_on(self: &Arc<Self>) {
        let mut queue = self.queue();
        if queue.writes.is_empty() {
            queue.in_flight -= 1;
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                drop(queue);
                // A runtime that is shutting down drops the task without running it: the
                // guard then gives the lead up, so that the queue never waits for a
                // drainer that does not exist (and a later command, from another runtime,
                // is not queued behind it for good).
                let mut drainer = Drainer {
                    committer: Arc::clone(self),
                    started: false,
                };
                runtime.spawn(async move {
                    drainer.started = true;
                    drainer.committer.drain(usize::MAX).await;
                });
            }
            Err(_) => self.abandon(queue),
        }
    }

    /// Gives the lead up with nobody to write the queued writes: they fail (nothing of
    /// them was written), and the next write takes the lead.
    fn abandon(&self, mut queue: MutexGuard<'_, Queue>) {
        queue.writes.clear();
        for waiter in queue.waiters.drain(..) {
            let _ = waiter.send(Err(abandoned()));
        }
        queue.in_flight -= 1;
    }
}

/// The task that takes the lead over: gives it up if dropped before it started (once
/// started, [`HandOn`] inside [`Committer::drain`] sees to it).
struct Drainer {
    committer: Arc<Committer>,
    started: bool,
}

impl Drop for Drainer {
    fn drop(&mut self) {
        if !self.started {
            self.committer.abandon(self.committer.queue());
        }
    }
}

/// The one result of a one-part write.
fn single(mut results: Vec<Result<(), JournalError>>) -> Result<(), JournalError> {
    match results.pop() {
        Some(result) if results.is_empty() => result,
        _ => Err(JournalError::Unknown(
            "the journal returned no result for the write".into(),
        )),
    }
}

fn deliver(waiters: Vec<Waiter>, results: Vec<Result<(), JournalError>>) {
    if results.len() == waiters.len() {
        for (waiter, result) in waiters.into_iter().zip(results) {
            // A waiter that went away no longer needs its answer.
            let _ = waiter.send(result);
        }
    } else {
        let error = JournalError::Unknown(format!(
            "the journal returned {} results for {} writes",
            results.len(),
            waiters.len()
        ));
        for waiter in waiters {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

/// Hands the lead on when a leader is dropped mid-write (forgotten on normal completion).
struct HandOn<'a> {
    committer: &'a Arc<Committer>,
}

impl Drop for HandOn<'_> {
    fn drop(&mut self) {
        self.committer.hand_on();
    }
}
