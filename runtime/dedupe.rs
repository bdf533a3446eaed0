//! The per-aggregate dedupe window: the last N command ids and where their receipts are.
//!
//! A receipt is the events a command wrote and the version after it, so an entry only
//! keeps `(version, count)`: the events themselves are in the journal (`version - count + 1
//! ..= version`) and are read back on the rare repeat. Lookups and inserts are O(1).

use std::collections::{HashMap, VecDeque, hash_map};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where one command's receipt is: the version after it and how many events it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub version: u64,
    pub count: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    entries: HashMap<Arc<str>, Entry>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<Arc<str>>,
}

impl Window {
    pub fn get(&self, command_id: &str) -> Option<Entry> {
        self.entries.get(command_id).copied()
    }

    /// Records a command. An event-sourced stream can record the same command id over
    /// several events; those extend the newest entry instead of adding one.
    pub fn record(&mut self, command_id: &Arc<str>, entry: Entry, capacity: usize) {
        if capacity == 0 {
            return;
        }
        match self.entries.entry(Arc::clone(command_id)) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
                self.order.push_back(Arc::clone(command_id));
                while self.order.len() > capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.entries.remove(&old);
                    }
                }
            }
            hash_map::Entry::Occupied(mut slot) => {
                let existing = slot.get_mut();
                if self.order.back() == Some(command_id)
                    && existing.version + u64::from(entry.count) == entry.version
                {
                    existing.version = entry.version;
                    existing.count += entry.count;
                    return;
                }
                // A reused id: the newer command wins.
                *existing = entry;
                self.order.retain(|id| id != command_id);
                self.order.push_back(Arc::clone(command_id));
            }
        }
    }

    /// The entries, oldest first, for a snapshot.
    pub fn to_list(&self) -> Vec<(Arc<str>, Entry)> {
        self.order
            .iter()
            .filter_map(|id| Some((id.clone(), *self.entries.get(id)?)))
            .collect()
    }

    pub fn from_list(list: Vec<(Arc<str>, Entry)>, capacity: usize) -> Self {
        let mut window = Window::default();
        for (id, entry) in list {
            window.record(&id, entry, capacity);
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
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
        assert_eq!(w.get("c1"), None);
        assert_eq!(w.get("c2"), None);
        assert_eq!(
            w.get("c3"),
            Some(Entry {
                version: 3,
                count: 1
            })
        );
        assert_eq!(
            w.get("c5"),
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
            w.get("a"),
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
        assert_eq!(w.get("a"), None);
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
}
