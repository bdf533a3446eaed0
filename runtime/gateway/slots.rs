//! The aggregates held in memory: a sharded map from id to slot, with passivation.
//!
//! A slot is shared (`Arc`) by every command in flight for its aggregate; its async mutex
//! is fair, so commands run one at a time in arrival order. A slot leaves the map only when
//! nobody holds or awaits it (the map's `Arc` is the only one, checked under the shard
//! lock that also hands out clones), so an aggregate never has two live slots.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::aggregate::{Aggregate, Command};
use crate::dedupe::Window;
use crate::hash::KeyedState;

type Id<A> = <<A as Aggregate>::Command as Command>::Id;

/// One shard: its slots and a logical clock that ticks on every lookup. Slots remember
/// the tick of their last use: it orders them for eviction, and the sweep compares it with
/// the tick of the previous sweep. (No system clock on the command path.)
#[derive(Default)]
struct Shard<A: Aggregate> {
    map: HashMap<Id<A>, Arc<Slot<A>>, KeyedState>,
    clock: u64,
    /// The clock at the previous idle sweep: a slot last used at or before it has seen no
    /// command for a whole sweep period.
    swept_at: u64,
}

const SHARDS: usize = 32;

/// A recovered aggregate: its state, version, and dedupe window.
pub(crate) struct Live<A> {
    pub state: A,
    pub version: u64,
    pub window: Window,
}

pub(crate) struct Slot<A> {
    pub persistence_id: Arc<str>,
    /// The shard's clock when a command last asked for the slot.
    last_used: AtomicU64,
    /// `None` until recovered, and again whenever memory may disagree with the journal.
    pub cell: tokio::sync::Mutex<Option<Live<A>>>,
    /// A write of this aggregate hit a taken sequence number: the next recovery asks the
    /// journal for the highest sequence number even when no events are left to replay.
    pub verify_highest: AtomicBool,
}

pub(crate) struct Slots<A: Aggregate> {
    shards: Box<[Mutex<Shard<A>>]>,
    len: AtomicUsize,
    max: usize,
}

impl<A: Aggregate> Slots<A> {
    pub fn new(max: usize) -> Self {
        Slots {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::with_hasher(KeyedState),
                        clock: 0,
                        swept_at: 0,
                    })
                })
                .collect(),
            len: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, Shard<A>> {
        // Map operations do not panic midway in a way that breaks the map.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many aggregates are in memory.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The slot of `id`, created (unrecovered) if it is not in memory.
    pub fn get(&self, id: &Id<A>) -> Arc<Slot<A>> {
        // The shard comes from bits the shard's map does not index by (it takes the low
        // bits for a bucket and the top seven for a tag).
        let index = ((KeyedState.hash_one(id) >> 32) as usize) % SHARDS;
        let mut shard = self.shard(index);
        shard.clock += 1;
        let now = shard.clock;
        if let Some(slot) = shard.map.get(id) {
            slot.last_used.store(now, Ordering::Relaxed);
            return Arc::clone(slot);
        }
        let slot = Arc::new(Slot {
            persistence_id: Arc::from(A::persistence_id(id)),
            last_used: AtomicU64::new(now),
            cell: tokio::sync::Mutex::new(None),
            verify_highest: AtomicBool::new(false),
        });
        shard.map.insert(id.clone(), Arc::clone(&slot));
        drop(shard);
        if self.len.fetch_add(1, Ordering::Relaxed) + 1 > self.max {
            self.evict(index);
        }
        slot
    }

    /// Evicts least recently used idle aggregates until the bound holds, starting with
    /// shard `first`. Busy aggregates stay: the bound is exceeded only while more than
    /// `max` aggregates have commands in flight.
    ///
    /// A shard is scanned once per batch: it gives up its oldest idle sixteenth (or what
    /// is over the bound, if more), so that finding the least recently used costs O(1)
    /// per eviction over time instead of a scan of the shard each.
    fn evict(&self, first: usize) {
        for offset in 0..SHARDS {
            let over = self.len.load(Ordering::Relaxed).saturating_sub(self.max);
            if over == 0 {
                return;
            }
            let mut shard = self.shard((first + offset) % SHARDS);
            let mut idle: Vec<(u64, &Id<A>)> = shard
                .map
                .iter()
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .map(|(id, slot)| (slot.last_used.load(Ordering::Relaxed), id))
                .collect();
            let take = over.max(shard.map.len() / 16).min(idle.len());
            if take == 0 {
                continue;
            }
            if take < idle.len() {
                idle.select_nth_unstable_by_key(take - 1, |&(used, _)| used);
            }
            let oldest: Vec<Id<A>> = idle[..take].iter().map(|&(_, id)| id.clone()).collect();
            for id in &oldest {
                shard.map.remove(id);
            }
            self.len.fetch_sub(take, Ordering::Relaxed);
        }
    }

    /// Evicts every idle aggregate that no command asked for since the previous sweep
    /// (`all`: every idle aggregate). Run every `passivate_after`, it evicts aggregates
    /// idle for between one and two periods.
    pub fn passivate(&self, all: bool) {
        for index in 0..SHARDS {
            let mut shard = self.shard(index);
            let cutoff = if all { u64::MAX } else { shard.swept_at };
            shard.swept_at = shard.clock;
            let before = shard.map.len();
            shard.map.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.last_used.load(Ordering::Relaxed) > cutoff
            });
            self.len
                .fetch_sub(before - shard.map.len(), Ordering::Relaxed);
        }
    }
}
