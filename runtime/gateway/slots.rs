//! The aggregates held in memory: a sharded map from id to slot, with passivation.
//!
//! A slot is shared (`Arc`) by every command in flight for its aggregate; its async mutex
//! is fair, so commands run one at a time in arrival order. A slot leaves the map only when
//! nobody holds or awaits it (the map's `Arc` is the only one, checked under the shard
//! lock that also hands out clones), so an aggregate never has two live slots.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::aggregate::{Aggregate, Command};
use crate::dedupe::Window;

type Id<A> = <<A as Aggregate>::Command as Command>::Id;
type Shard<A> = Mutex<HashMap<Id<A>, Arc<Slot<A>>>>;

const SHARDS: usize = 32;

/// A recovered aggregate: its state, version, and dedupe window.
pub(crate) struct Live<A> {
    pub state: A,
    pub version: u64,
    pub window: Window,
}

pub(crate) struct Slot<A> {
    pub persistence_id: Arc<str>,
    /// Milliseconds since the map was created, when a command last asked for the slot.
    last_used: AtomicU64,
    /// `None` until recovered, and again whenever memory may disagree with the journal.
    pub cell: tokio::sync::Mutex<Option<Live<A>>>,
    /// A write of this aggregate hit a taken sequence number: the next recovery asks the
    /// journal for the highest sequence number even when no events are left to replay.
    pub verify_highest: AtomicBool,
}

pub(crate) struct Slots<A: Aggregate> {
    shards: Box<[Shard<A>]>,
    hasher: RandomState,
    len: AtomicUsize,
    max: usize,
    epoch: Instant,
}

impl<A: Aggregate> Slots<A> {
    pub fn new(max: usize) -> Self {
        Slots {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            max: max.max(1),
            epoch: Instant::now(),
        }
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, HashMap<Id<A>, Arc<Slot<A>>>> {
        // Map operations do not panic midway in a way that breaks the map.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How many aggregates are in memory.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The slot of `id`, created (unrecovered) if it is not in memory.
    pub fn get(&self, id: &Id<A>) -> Arc<Slot<A>> {
        let index = (self.hasher.hash_one(id) as usize) % SHARDS;
        let now = self.now();
        let mut shard = self.shard(index);
        if let Some(slot) = shard.get(id) {
            slot.last_used.store(now, Ordering::Relaxed);
            return Arc::clone(slot);
        }
        let slot = Arc::new(Slot {
            persistence_id: Arc::from(A::persistence_id(id)),
            last_used: AtomicU64::new(now),
            cell: tokio::sync::Mutex::new(None),
            verify_highest: AtomicBool::new(false),
        });
        shard.insert(id.clone(), Arc::clone(&slot));
        drop(shard);
        if self.len.fetch_add(1, Ordering::Relaxed) + 1 > self.max {
            self.evict(index);
        }
        slot
    }

    /// Evicts least recently used idle aggregates until the bound holds, starting with
    /// shard `first`. Busy aggregates stay: the bound is exceeded only while more than
    /// `max` aggregates have commands in flight.
    fn evict(&self, first: usize) {
        for offset in 0..SHARDS {
            let mut shard = self.shard((first + offset) % SHARDS);
            while self.len.load(Ordering::Relaxed) > self.max {
                let oldest = shard
                    .iter()
                    .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                    .min_by_key(|(_, slot)| slot.last_used.load(Ordering::Relaxed))
                    .map(|(id, _)| id.clone());
                let Some(id) = oldest else { break };
                shard.remove(&id);
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            if self.len.load(Ordering::Relaxed) <= self.max {
                return;
            }
        }
    }

    /// Evicts every idle aggregate not used for `idle_ms` milliseconds.
    pub fn passivate(&self, idle_ms: u64) {
        let cutoff = self.now().saturating_sub(idle_ms);
        for index in 0..SHARDS {
            let mut shard = self.shard(index);
            let before = shard.len();
            shard.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.last_used.load(Ordering::Relaxed) > cutoff
            });
            self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }
}
