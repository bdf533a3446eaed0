//! The per-aggregate dedupe window: the ids of the last N commands and where their
//! receipts are.
//!
//! A receipt is the events a command wrote and the version after it, so an entry only
//! keeps `(version, count)`: the events themselves are in the journal (`version - count + 1
//! ..= version`) and are read back on the rare repeat. Lookups and inserts are O(1), and a
//! command id is hashed once per command ([`CommandId`]), not once per map operation.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

/// Where one command's receipt is: the version after it and how many events it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub version: u64,
    pub count: u32,
}

/// A command id with its hash, computed once with a keyed (per-process random) SipHash,
/// so that ids chosen by clients cannot force collisions.
#[derive(Debug, Clone)]
pub(crate) struct CommandId {
    hash: u64,
    id: Arc<str>,
}

impl CommandId {
    pub fn new(id: &str) -> Self {
        Self::from_arc(Arc::from(id))
    }

    pub fn from_arc(id: Arc<str>) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let hash = KEYS.get_or_init(RandomState::new).hash_one(&*id);
        CommandId { hash, id }
    }

    pub fn as_arc(&self) -> &Arc<str> {
        &self.id
    }
}

/// The window's index hasher: its keys are already keyed-SipHash bits; multiplying them
/// by an odd constant only spreads them over the top bits too, which the map also uses.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used by the index; fold anything else in all the same.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(SPREAD);
        }
    }

    fn write_u32(&mut self, key: u32) {
        self.0 = u64::from(key).wrapping_mul(SPREAD);
    }
}

const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// The index key of a hash: its low 32 bits (two ids sharing them are told apart by
/// their full hash and bytes).
fn key(hash: u64) -> u32 {
    hash as u32
}

/// One recorded command, 32 bytes. Its id's bytes are in [`Ring::ids`], not behind a
/// pointer of its own: evicting the oldest command touches only the two rings' fronts and
/// the index.
#[derive(Debug)]
struct Item {
    hash: u64,
    version: u64,
    count: u32,
    /// Where the id starts in the byte ring: a byte count from the first byte ever
    /// recorded, modulo 2^32 (the ring never holds 4 GiB).
    start: u32,
    len: u32,
    /// Superseded by a newer command with the same id.
    dead: bool,
    /// A newer id with the same index key holds the index slot: found by a scan.
    shadowed: bool,
}

impl Item {
    fn entry(&self) -> Entry {
        Entry {
            version: self.version,
            count: self.count,
        }
    }
}

/// The last N recorded commands, oldest first, and an index from hash to position.
///
/// Each command costs one hash (in [`CommandId`]), one index probe on lookup, one index
/// insert and, once full, one eviction; the index holds 8 bytes per command, the ring 32
/// plus the id. Two ids whose index keys collide stay correct: the older one is marked
/// `shadowed` and found by a scan, which runs only while such an item is in the window.
#[derive(Debug, Default)]
struct Ring {
    ring: VecDeque<Item>,
    /// The position of `ring[0]`: items are numbered in the order they were recorded.
    base: u64,
    /// The ids of `ring`'s items, back to back, in the same order.
    ids: VecDeque<u8>,
    /// The byte count of `ids[0]`.
    ids_base: u64,
    /// Index key → position (modulo 2^32) of the newest live item with that key.
    index: HashMap<u32, u32, BuildHasherDefault<Spread>>,
    /// How many items are `shadowed`.
    shadowed: usize,
}

impl Ring {
    pub fn get(&self, command_id: &CommandId) -> Option<Entry> {
        self.find(command_id)
            .map(|offset| self.ring[offset].entry())
    }

    /// The bytes of `item`'s id.
    fn id_of(&self, item: &Item) -> impl Iterator<Item = u8> + '_ {
        let from = item.start.wrapping_sub(self.ids_base as u32) as usize;
        let to = from.saturating_add(item.len as usize).min(self.ids.len());
        self.ids.range(from.min(to)..to).copied()
    }

    fn is(&self, item: &Item, command_id: &CommandId) -> bool {
        item.hash == command_id.hash
            && item.len as usize == command_id.id.len()
            && self.id_of(item).eq(command_id.id.bytes())
    }

    /// The ring offset of the live item for `command_id`.
    fn find(&self, command_id: &CommandId) -> Option<usize> {
        if let Some(&position) = self.index.get(&key(command_id.hash)) {
            let offset = position.wrapping_sub(self.base as u32) as usize;
            if self
                .ring
                .get(offset)
                .is_some_and(|item| !item.dead && self.is(item, command_id))
            {
                return Some(offset);
            }
        }
        if self.shadowed > 0 {
            return self
                .ring
                .iter()
                .rposition(|item| item.shadowed && self.is(item, command_id));
        }
        None
    }

    /// Records a command. An event-sourced stream can record the same command id over
    /// several events; those extend the newest entry instead of adding one. A reused id
    /// supersedes the older command.
    pub fn record(&mut self, command_id: &CommandId, entry: Entry, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if let Some(offset) = self.find(command_id) {
            let newest = offset + 1 == self.ring.len();
            let item = &mut self.ring[offset];
            if newest && item.version + u64::from(entry.count) == entry.version {
                item.version = entry.version;
                item.count += entry.count;
                return;
            }
            item.dead = true;
            if item.shadowed {
                item.shadowed = false;
                self.shadowed -= 1;
            }
        }
        self.push(command_id, entry, capacity);
    }

    /// Records a command that [`get`](Ring::get) just did not find (the gateway looks an
    /// id up before `handle` and records it after the commit, with the window in its hands
    /// throughout): one index probe fewer than [`record`](Ring::record).
    pub fn record_new(&mut self, command_id: &CommandId, entry: Entry, capacity: usize) {
        if capacity == 0 {
            return;
        }
        debug_assert!(self.find(command_id).is_none(), "recorded twice");
        self.push(command_id, entry, capacity);
    }

    fn push(&mut self, command_id: &CommandId, entry: Entry, capacity: usize) {
        // Make room first, so that the ring never outgrows `capacity` items.
        while self.ring.len() >= capacity {
            self.evict_oldest();
        }
        let position = (self.base + self.ring.len() as u64) as u32;
        if let Some(previous) = self.index.insert(key(command_id.hash), position)
            && let Some(older) = self
                .ring
                .get_mut(previous.wrapping_sub(self.base as u32) as usize)
            && !older.dead
        {
            older.shadowed = true;
            self.shadowed += 1;
        }
        let bytes = command_id.id.as_bytes();
        self.ring.push_back(Item {
            hash: command_id.hash,
            version: entry.version,
            count: entry.count,
            start: (self.ids_base + self.ids.len() as u64) as u32,
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            dead: false,
            shadowed: false,
        });
        self.ids.extend(bytes);
    }

    fn evict_oldest(&mut self) {
        let Some(item) = self.ring.pop_front() else {
            return;
        };
        let k = key(item.hash);
        if self.index.get(&k) == Some(&(self.base as u32)) {
            self.index.remove(&k);
        } else if item.shadowed {
            self.shadowed -= 1;
        }
        self.base += 1;
        let len = (item.len as usize).min(self.ids.len());
        self.ids.drain(..len);
        self.ids_base += len as u64;
    }

    /// The entries, oldest first, for a snapshot.
    pub fn to_list(&self) -> Vec<(Arc<str>, Entry)> {
        self.ring
            .iter()
            .filter(|item| !item.dead)
            .filter_map(|item| {
                let id = String::from_utf8(self.id_of(item).collect()).ok()?;
                Some((Arc::from(id), item.entry()))
            })
            .collect()
    }
}

/// One aggregate's window: nothing until its first command id, so that an aggregate that
/// never sees one costs a pointer.
#[derive(Debug, Default)]
pub(crate) struct Window(Option<Box<Ring>>);

impl Window {
    pub fn get(&self, command_id: &CommandId) -> Option<Entry> {
        self.0.as_ref()?.get(command_id)
    }

    /// See [`Ring::record`].
    pub fn record(&mut self, command_id: &CommandId, entry: Entry, capacity: usize) {
        if capacity > 0 {
            self.0
                .get_or_insert_default()
                .record(command_id, entry, capacity);
        }
    }

    /// See [`Ring::record_new`].
    pub fn record_new(&mut self, command_id: &CommandId, entry: Entry, capacity: usize) {
        if capacity > 0 {
            self.0
                .get_or_insert_default()
                .record_new(command_id, entry, capacity);
        }
    }

    /// The entries, oldest first, for a snapshot.
    pub fn to_list(&self) -> Vec<(Arc<str>, Entry)> {
        self.0
            .as_ref()
            .map(|ring| ring.to_list())
            .unwrap_or_default()
    }

    pub fn from_list(list: Vec<(Arc<str>, Entry)>, capacity: usize) -> Self {
        let mut window = Window::default();
        for (id, entry) in list {
            window.record(&CommandId::from_arc(id), entry, capacity);
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CommandId {
        CommandId::new(s)
    }

    #[test]
    fn keeps_the_last_n() {
        let mut w = Window::default();
        for i in 1..=5u64 {
            w.record(
                &id(&format!("c{i}")),
                Entry {
                    version: i,
                    count: 1,
                },
                3,
            );
        }
        assert_eq!(w.get(&id("c1")), None);
        assert_eq!(w.get(&id("c2")), None);
        assert_eq!(
            w.get(&id("c3")),
            Some(Entry {
                version: 3,
                count: 1
            })
        );
        assert_eq!(
            w.get(&id("c5")),
            Some(Entry {
                version: 5,
                count: 1
            })
        );
        assert_eq!(w.to_list().len(), 3);
    }

    #[test]
    fn consecutive_events_of_one_command_extend_its_entry() {
        let mut w = Window::default();
        w.record(
            &id("a"),
            Entry {
                version: 1,
                count: 1,
            },
            8,
        );
        w.record(
            &id("a"),
            Entry {
                version: 2,
                count: 1,
            },
            8,
        );
        assert_eq!(
            w.get(&id("a")),
            Some(Entry {
                version: 2,
                count: 2
            })
        );
    }

    #[test]
    fn zero_capacity_records_nothing() {
        let mut w = Window::default();
        w.record(
            &id("a"),
            Entry {
                version: 1,
                count: 1,
            },
            0,
        );
        assert_eq!(w.get(&id("a")), None);
    }

    #[test]
    fn round_trips_through_a_list() {
        let mut w = Window::default();
        w.record(
            &id("a"),
            Entry {
                version: 1,
                count: 1,
            },
            8,
        );
        w.record(
            &id("b"),
            Entry {
                version: 3,
                count: 2,
            },
            8,
        );
        let back = Window::from_list(w.to_list(), 8);
        assert_eq!(back.to_list(), w.to_list());
    }

    #[test]
    fn ids_with_one_hash_stay_apart() {
        let forged = |s: &str| CommandId {
            hash: 7,
            id: Arc::from(s),
        };
        let mut w = Window::default();
        let a = Entry {
            version: 1,
            count: 1,
        };
        let b = Entry {
            version: 2,
            count: 1,
        };
        w.record(&forged("a"), a, 8);
        w.record(&forged("b"), b, 8);
        assert_eq!(w.get(&forged("a")), Some(a));
        assert_eq!(w.get(&forged("b")), Some(b));
        assert_eq!(w.get(&forged("c")), None);
        // Evicting one leaves the other.
        w.record(
            &forged("c"),
            Entry {
                version: 3,
                count: 1,
            },
            2,
        );
        assert_eq!(w.get(&forged("a")), None);
        assert_eq!(w.get(&forged("b")), Some(b));
    }

    #[test]
    fn one_id_hashes_the_same_every_time() {
        assert_eq!(id("req-1").hash, id("req-1").hash);
        assert_ne!(id("req-1").hash, id("req-2").hash);
    }

    /// The window against a plain list with linear scans, over a random mix of new,
    /// repeated and colliding ids.
    #[test]
    fn agrees_with_a_plain_list() {
        struct Model {
            items: Vec<(String, Entry, bool)>,
        }
        impl Model {
            fn find(&self, id: &str) -> Option<usize> {
                self.items.iter().rposition(|(i, _, dead)| !dead && i == id)
            }
            fn record(&mut self, id: &str, entry: Entry, capacity: usize) {
                if let Some(at) = self.find(id) {
                    let newest = at + 1 == self.items.len();
                    let item = &mut self.items[at];
                    if newest && item.1.version + u64::from(entry.count) == entry.version {
                        item.1.version = entry.version;
                        item.1.count += entry.count;
                        return;
                    }
                    item.2 = true;
                }
                self.items.push((id.to_owned(), entry, false));
                while self.items.len() > capacity {
                    self.items.remove(0);
                }
            }
        }
        let ids: Vec<String> = (0..12).map(|i| format!("id-{i}")).collect();
        let forged = |s: &str| CommandId {
            // Three index keys for twelve ids, and within a key two full hashes.
            hash: {
                let sum = s.bytes().map(u64::from).sum::<u64>();
                sum % 3 + ((sum % 2) << 32)
            },
            id: Arc::from(s),
        };
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for capacity in [1, 2, 5, 16] {
            let mut window = Window::default();
            let mut model = Model { items: Vec::new() };
            let mut version = 0;
            for _ in 0..5_000 {
                let id = &ids[next(12) as usize];
                let count = next(3) as u32;
                version += u64::from(count);
                let entry = Entry { version, count };
                if window.get(&forged(id)).is_none() && next(2) == 0 {
                    window.record_new(&forged(id), entry, capacity);
                } else {
                    window.record(&forged(id), entry, capacity);
                }
                model.record(id, entry, capacity);
                for id in &ids {
                    let expected = model.find(id).map(|at| model.items[at].1);
                    assert_eq!(window.get(&forged(id)), expected, "{id}");
                }
                let ring = window.0.as_deref().expect("recorded");
                let shadowed = ring.ring.iter().filter(|item| item.shadowed).count();
                assert_eq!(ring.shadowed, shadowed);
                assert!(ring.ring.len() <= capacity);
            }
            let listed: Vec<(String, Entry)> = window
                .to_list()
                .into_iter()
                .map(|(id, entry)| (id.to_string(), entry))
                .collect();
            let expected: Vec<(String, Entry)> = model
                .items
                .iter()
                .filter(|item| !item.2)
                .map(|(id, entry, _)| (id.clone(), *entry))
                .collect();
            assert_eq!(listed, expected);
        }
    }
}
