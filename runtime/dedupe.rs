//! The per-aggregate dedupe window: the ids of the last N commands and where their
//! receipts are.
//!
//! A receipt is the events a command wrote and the version after it, so an entry only
//! keeps `(version, count)`: the events themselves are in the journal (`version - count + 1
//! ..= version`) and are read back on the rare repeat. Lookups, inserts and evictions are
//! O(1) (evictions amortized: see [`Ring`]), and a command id is hashed once per command
//! ([`CommandId`]), not once per map operation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hash::hash_id;

/// Where one command's receipt is: the version after it and how many events it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub version: u64,
    pub count: u32,
}

/// A command id with its hash, computed once per command with a keyed hash
/// ([`hash_id`]), so that ids chosen by clients cannot be aimed at
/// one index slot. It borrows the id: the window copies what it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommandId<'a> {
    hash: u64,
    id: &'a str,
}

impl<'a> CommandId<'a> {
    pub fn new(id: &'a str) -> Self {
        CommandId {
            hash: hash_id(id.as_bytes()),
            id,
        }
    }

    /// The id's hash, to make the same [`CommandId`] again with [`CommandId::hashed`] once
    /// the id has moved (the gateway's copy for the journal, after `handle` took the
    /// command).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// A command id whose hash was taken before: `hash` must be [`CommandId::hash`] of the
    /// same bytes.
    pub fn hashed(hash: u64, id: &'a str) -> Self {
        debug_assert_eq!(hash, hash_id(id.as_bytes()), "the hash of these bytes");
        CommandId { hash, id }
    }
}

/// The index key of a hash: its low 32 bits. Two ids sharing them are told apart by
/// their full hash and bytes.
fn key(hash: u64) -> u32 {
    hash as u32
}

/// One recorded command, 32 bytes. Its id's bytes are in [`Ring::bytes`], not behind a
/// pointer of its own, so that nothing is freed when it is evicted.
#[derive(Debug, Default, Clone, Copy)]
struct Item {
    hash: u64,
    version: u64,
    count: u32,
    /// Where the id starts in the byte buffer: a byte count from the first byte ever
    /// recorded, modulo 2^32 (the buffer never holds 4 GiB).
    start: u32,
    len: u32,
    /// Superseded by a newer command with the same id: lookups pass it by.
    dead: bool,
}

impl Item {
    fn entry(&self) -> Entry {
        Entry {
            version: self.version,
            count: self.count,
        }
    }
}

/// An empty index slot. Slots hold an item's position; positions stay below this (see
/// [`Ring::push`]).
const EMPTY: u32 = u32::MAX;

/// How many index slots, at least, per live item: the live items fill at most an eighth
/// of the table, so that nearly every lookup of a new id ends at its empty home slot.
const SPARSENESS: usize = 8;

/// The table is rebuilt from the live items once this share of it (one slot in
/// `REBUILD_AT`) is taken, by live items or evicted ones.
const REBUILD_AT: usize = 4;

/// The last N recorded commands, oldest first, and an index from hash to position.
///
/// Items are numbered in the order they were recorded (their position, modulo 2^32) and
/// kept in a ring whose length is a power of two, so that an item is at its position
/// masked. The index is an open-addressing table with linear probing whose slots hold an
/// item's position (4 bytes; the item holds the hash). Evicting the oldest command only
/// moves the ring's start: its slot stays in the table, and lookups pass it by, since
/// its position is no longer in the ring. Once a quarter of the table is taken, it is
/// rebuilt from the live items, in one sequential pass over them. So each command costs
/// one hash (in [`CommandId`]), one probe on lookup and one on insert, and nothing in the
/// table on eviction. Ids whose keys collide share a probe chain and are told apart by
/// their full hash and bytes.
#[derive(Debug, Default)]
struct Ring {
    /// A power of two long (or empty): the item at position `p` is at `p & (len - 1)`.
    items: Vec<Item>,
    /// The position of the oldest item.
    base: u32,
    /// How many items the ring holds, from `base` on.
    live: u32,
    /// The ids of the items, back to back, in the same order, after those of evicted
    /// items, which are dropped in bulk (see [`Ring::trim`]).
    bytes: Vec<u8>,
    /// The length of `bytes` at which [`Ring::trim`] next looks at it.
    trim_at: usize,
    /// The byte count, modulo 2^32, of `bytes[0]`.
    bytes_base: u32,
    /// A power of two long (or empty): positions, or [`EMPTY`].
    table: Vec<u32>,
    /// The slots of `table` that are not [`EMPTY`].
    taken: usize,
}

impl Ring {
    pub fn get(&self, command_id: CommandId<'_>) -> Option<Entry> {
        let position = self.find(command_id)?;
        self.item(position).map(Item::entry)
    }

    /// The item at `position`, if it is still in the ring.
    fn item(&self, position: u32) -> Option<&Item> {
        if position.wrapping_sub(self.base) < self.live {
            self.items
                .get(position as usize & self.items.len().wrapping_sub(1))
        } else {
            None
        }
    }

    /// The bytes of `item`'s id.
    fn id_of(&self, item: &Item) -> &[u8] {
        let from = item.start.wrapping_sub(self.bytes_base) as usize;
        self.bytes
            .get(from..from.saturating_add(item.len as usize))
            .unwrap_or_default()
    }

    /// The position of the live item for `command_id`: its key's probe chain is walked
    /// from its home up to the first empty slot (there always is one: the table is never
    /// more than a quarter full).
    fn find(&self, command_id: CommandId<'_>) -> Option<u32> {
        let mask = self.table.len().wrapping_sub(1);
        let mut at = key(command_id.hash) as usize & mask;
        loop {
            let position = *self.table.get(at)?;
            if position == EMPTY {
                return None;
            }
            if let Some(item) = self.item(position)
                && item.hash == command_id.hash
                && !item.dead
                && self.id_of(item) == command_id.id.as_bytes()
            {
                return Some(position);
            }
            at = (at + 1) & mask;
        }
    }

    /// Records a command. An event-sourced stream can record the same command id over
    /// several events; those extend the newest entry instead of adding one. A reused id
    /// supersedes the older command.
    pub fn record(&mut self, command_id: CommandId<'_>, entry: Entry, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if let Some(position) = self.find(command_id) {
            let newest = position.wrapping_add(1) == self.base.wrapping_add(self.live);
            let mask = self.items.len() - 1;
            let item = &mut self.items[position as usize & mask];
            if newest
                && item.version.checked_add(u64::from(entry.count)) == Some(entry.version)
                && let Some(count) = item.count.checked_add(entry.count)
            {
                item.version = entry.version;
                item.count = count;
                return;
            }
            item.dead = true;
        }
        self.push(command_id, entry, capacity);
    }

    /// Records a command that [`get`](Ring::get) just did not find (the gateway looks an
    /// id up before `handle` and records it once the events are encoded, with the window
    /// in its hands throughout; if the write then fails, the whole window is thrown away
    /// with the aggregate's state): one probe fewer than [`record`](Ring::record).
    pub fn record_new(&mut self, command_id: CommandId<'_>, entry: Entry, capacity: usize) {
        if capacity == 0 {
            return;
        }
        debug_assert!(self.find(command_id).is_none(), "recorded twice");
        self.push(command_id, entry, capacity);
    }

    fn push(&mut self, command_id: CommandId<'_>, entry: Entry, capacity: usize) {
        // Make room first, so that the ring never outgrows `capacity` items.
        while self.live as usize >= capacity {
            self.evict_oldest();
        }
        // Positions stay below `EMPTY`: renumber from 0 once in 2^32 commands.
        if u64::from(self.base) + u64::from(self.live) >= u64::from(EMPTY) {
            self.renumber();
        }
        if self.live as usize == self.items.len() {
            self.grow();
        }
        let live = self.live as usize + 1;
        if live * SPARSENESS > self.table.len() {
            self.reindex((live * SPARSENESS).next_power_of_two());
        } else if (self.taken + 1) * REBUILD_AT > self.table.len() {
            self.reindex(self.table.len());
        }
        let position = self.base.wrapping_add(self.live);
        self.index(key(command_id.hash), position);
        let bytes = command_id.id.as_bytes();
        let mask = self.items.len() - 1;
        self.items[position as usize & mask] = Item {
            hash: command_id.hash,
            version: entry.version,
            count: entry.count,
            start: self.bytes_base.wrapping_add(self.bytes.len() as u32),
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            dead: false,
        };
        self.live += 1;
        if self.bytes.len() >= self.trim_at {
            self.trim();
        }
        self.bytes.extend_from_slice(bytes);
    }

    /// Drops the bytes of evicted items once they are half the buffer or more, and looks
    /// again when the buffer has doubled: each byte is moved at most once per byte
    /// evicted before it, and evicting an item reads nothing.
    fn trim(&mut self) {
        let evicted = match self.item(self.base) {
            Some(oldest) => oldest.start.wrapping_sub(self.bytes_base) as usize,
            None => self.bytes.len(),
        }
        .min(self.bytes.len());
        if evicted * 2 >= self.bytes.len() {
            self.bytes.drain(..evicted);
            self.bytes_base = self.bytes_base.wrapping_add(evicted as u32);
        }
        self.trim_at = (self.bytes.len() * 2).max(64);
    }

    /// Drops the oldest item, reading nothing: its index slot stays until the next
    /// rebuild (lookups pass it by, as its position is no longer in the ring), and its
    /// id's bytes until the next [`trim`](Ring::trim).
    fn evict_oldest(&mut self) {
        if self.live > 0 {
            self.base = self.base.wrapping_add(1);
            self.live -= 1;
        }
    }

    /// Doubles the ring, each item moving to its position masked anew.
    fn grow(&mut self) {
        let len = (self.items.len() * 2).max(4);
        let mut items = vec![Item::default(); len];
        for offset in 0..self.live {
            let position = self.base.wrapping_add(offset);
            items[position as usize & (len - 1)] =
                self.items[position as usize & (self.items.len() - 1)];
        }
        self.items = items;
    }

    /// Numbers the items from 0 again, and rebuilds the index with their new positions.
    fn renumber(&mut self) {
        let mask = self.items.len().wrapping_sub(1);
        let mut items = vec![Item::default(); self.items.len()];
        for offset in 0..self.live {
            items[offset as usize] = self.items[self.base.wrapping_add(offset) as usize & mask];
        }
        self.items = items;
        self.base = 0;
        self.reindex(self.table.len());
    }

    /// Puts `position` in the first empty slot of `key`'s chain.
    fn index(&mut self, key: u32, position: u32) {
        let mask = self.table.len() - 1;
        let mut at = key as usize & mask;
        while self.table[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.table[at] = position;
        self.taken += 1;
    }

    /// Rebuilds the index with `len` slots from the live items.
    fn reindex(&mut self, len: usize) {
        self.table.clear();
        self.table.resize(len, EMPTY);
        self.taken = 0;
        let mask = self.items.len().wrapping_sub(1);
        for offset in 0..self.live {
            let position = self.base.wrapping_add(offset);
            let item = self.items[position as usize & mask];
            if !item.dead {
                self.index(key(item.hash), position);
            }
        }
    }

    /// The live entries, oldest first, for a snapshot.
    pub fn to_list(&self) -> Vec<(Arc<str>, Entry)> {
        (0..self.live)
            .filter_map(|offset| self.item(self.base.wrapping_add(offset)))
            .filter(|item| !item.dead)
            .filter_map(|item| {
                let id = std::str::from_utf8(self.id_of(item)).ok()?;
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
    pub fn get(&self, command_id: CommandId<'_>) -> Option<Entry> {
        self.0.as_ref()?.get(command_id)
    }

    /// See [`Ring::record`].
    pub fn record(&mut self, command_id: CommandId<'_>, entry: Entry, capacity: usize) {
        if capacity > 0 {
            self.0
                .get_or_insert_default()
                .record(command_id, entry, capacity);
        }
    }

    /// See [`Ring::record_new`].
    pub fn record_new(&mut self, command_id: CommandId<'_>, entry: Entry, capacity: usize) {
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
            window.record(CommandId::new(&id), entry, capacity);
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CommandId<'_> {
        CommandId::new(s)
    }

    #[test]
    fn keeps_the_last_n() {
        let mut w = Window::default();
        for i in 1..=5u64 {
            w.record(
                id(&format!("c{i}")),
                Entry {
                    version: i,
                    count: 1,
                },
                3,
            );
        }
        assert_eq!(w.get(id("c1")), None);
        assert_eq!(w.get(id("c2")), None);
        assert_eq!(
            w.get(id("c3")),
            Some(Entry {
                version: 3,
                count: 1
            })
        );
        assert_eq!(
            w.get(id("c5")),
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
            id("a"),
            Entry {
                version: 1,
                count: 1,
            },
            8,
        );
        w.record(
            id("a"),
            Entry {
                version: 2,
                count: 1,
            },
            8,
        );
        assert_eq!(
            w.get(id("a")),
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
            id("a"),
            Entry {
                version: 1,
                count: 1,
            },
            0,
        );
        assert_eq!(w.get(id("a")), None);
    }

    #[test]
    fn round_trips_through_a_list() {
        let mut w = Window::default();
        w.record(
            id("a"),
            Entry {
                version: 1,
                count: 1,
            },
            8,
        );
        w.record(
            id("b"),
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
        fn forged(s: &str) -> CommandId<'_> {
            CommandId { hash: 7, id: s }
        }
        let mut w = Window::default();
        let a = Entry {
            version: 1,
            count: 1,
        };
        let b = Entry {
            version: 2,
            count: 1,
        };
        w.record(forged("a"), a, 8);
        w.record(forged("b"), b, 8);
        assert_eq!(w.get(forged("a")), Some(a));
        assert_eq!(w.get(forged("b")), Some(b));
        assert_eq!(w.get(forged("c")), None);
        // Evicting one leaves the other.
        w.record(
            forged("c"),
            Entry {
                version: 3,
                count: 1,
            },
            2,
        );
        assert_eq!(w.get(forged("a")), None);
        assert_eq!(w.get(forged("b")), Some(b));
    }

    #[test]
    fn one_id_hashes_the_same_every_time() {
        assert_eq!(id("req-1").hash, id("req-1").hash);
        assert_ne!(id("req-1").hash, id("req-2").hash);
    }

    /// Every length class of the hash reads every byte: ids that differ in one byte, or
    /// only in length, hash apart.
    #[test]
    fn every_byte_and_the_length_count() {
        let mut seen = std::collections::HashSet::new();
        for len in 0..48 {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(seen.insert(hash_id(&base)), "length {len}");
            for at in 0..len {
                let mut changed = base.clone();
                changed[at] ^= 1;
                assert!(seen.insert(hash_id(&changed)), "length {len}, byte {at}");
            }
        }
        assert_ne!(hash_id(b"\0"), hash_id(b"\0\0"));
    }

    /// The index uses the low 32 bits of the hash: ids that clients number one after
    /// another spread over them (about one shared key is expected among 100,000 ids).
    #[test]
    fn sequential_ids_spread_over_the_index_keys() {
        let keys: std::collections::HashSet<u32> = (0..100_000)
            .map(|i| key(hash_id(format!("req-{i}").as_bytes())))
            .collect();
        assert!(keys.len() >= 99_990, "{} distinct keys", keys.len());
        // And over the homes of a 8,192-slot table: no home gets a crowd.
        let mut homes = vec![0u32; 8192];
        for i in 0..4096 {
            homes[key(hash_id(format!("req-{i}").as_bytes())) as usize & 8191] += 1;
        }
        assert!(homes.iter().all(|&n| n <= 12), "{:?}", homes.iter().max());
    }

    /// Evicted ids' bytes are dropped in bulk: the buffer stays within a small multiple
    /// of what the live ids take.
    #[test]
    fn evicted_ids_bytes_are_dropped() {
        let mut w = Window::default();
        for v in 1..=100_000u64 {
            w.record_new(
                id(&format!("command-{v}")),
                Entry {
                    version: v,
                    count: 1,
                },
                8,
            );
            let ring = w.0.as_deref().expect("recorded");
            assert!(
                ring.bytes.len() <= 4 * 8 * 14 + 64 + 14,
                "{}",
                ring.bytes.len()
            );
        }
        assert_eq!(w.to_list().len(), 8);
        assert_eq!(
            w.get(id("command-99993")),
            Some(Entry {
                version: 99_993,
                count: 1
            })
        );
        assert_eq!(w.get(id("command-99992")), None);
    }

    /// Positions and byte counts are kept modulo 2^32: a window that has seen billions of
    /// commands keeps working across the wrap.
    #[test]
    fn positions_and_byte_counts_wrap_around() {
        let entry = |version| Entry { version, count: 1 };
        let ring = Ring {
            base: u32::MAX - 3,
            bytes_base: u32::MAX - 5,
            ..Ring::default()
        };
        let mut w = Window(Some(Box::new(ring)));
        for v in 1..=20 {
            w.record(id(&format!("c{v}")), entry(v), 4);
            for seen in 1..=v {
                let expected = (seen + 4 > v).then(|| entry(seen));
                assert_eq!(
                    w.get(id(&format!("c{seen}"))),
                    expected,
                    "c{seen} after c{v}"
                );
            }
        }
        let ring = w.0.as_deref().expect("recorded");
        assert!(ring.base < 20, "renumbered from 0");
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
        fn forged(s: &str) -> CommandId<'_> {
            // Three index keys for twelve ids, and within a key two full hashes.
            let sum = s.bytes().map(u64::from).sum::<u64>();
            CommandId {
                hash: sum % 3 + ((sum % 2) << 32),
                id: s,
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        // Capacity 0 here stands for a capacity drawn anew (1 to 16) for every record.
        for fixed in [1, 2, 5, 16, 0] {
            let mut window = Window::default();
            let mut model = Model { items: Vec::new() };
            let mut version = 0;
            for _ in 0..5_000 {
                let capacity = if fixed == 0 {
                    1 + next(16) as usize
                } else {
                    fixed
                };
                let id = &ids[next(12) as usize];
                let count = next(3) as u32;
                version += u64::from(count);
                let entry = Entry { version, count };
                if window.get(forged(id)).is_none() && next(2) == 0 {
                    window.record_new(forged(id), entry, capacity);
                } else {
                    window.record(forged(id), entry, capacity);
                }
                model.record(id, entry, capacity);
                for id in &ids {
                    let expected = model.find(id).map(|at| model.items[at].1);
                    assert_eq!(window.get(forged(id)), expected, "{id}");
                }
                let ring = window.0.as_deref().expect("recorded");
                assert_eq!(ring.live as usize, model.items.len());
                assert!(fixed == 0 || ring.live as usize <= capacity);
                // Every live item is indexed once; evicted and superseded ones may keep
                // their slots until the next rebuild, which comes before a quarter of
                // the table is taken.
                let taken = ring.table.iter().filter(|&&position| position != EMPTY);
                let indexed = taken
                    .clone()
                    .filter(|&&position| ring.item(position).is_some_and(|item| !item.dead));
                let live = (0..ring.live)
                    .filter_map(|offset| ring.item(ring.base.wrapping_add(offset)))
                    .filter(|item| !item.dead)
                    .count();
                assert_eq!(indexed.count(), live);
                assert_eq!(taken.count(), ring.taken);
                assert!(live * SPARSENESS <= ring.table.len());
                assert!(ring.taken * REBUILD_AT <= ring.table.len());
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
