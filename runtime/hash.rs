//! The runtime's one hash: folded multiplications keyed by two secret words drawn once per
//! process. It hashes command ids in the dedupe window, and the keys of the maps on the
//! command path (aggregate ids in the gateway, persistence ids in the memory journal)
//! through [`KeyedState`].

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

/// The two secret words, drawn from the standard library's random keys on first use.
fn keys() -> [u64; 2] {
    static KEYS: OnceLock<[u64; 2]> = OnceLock::new();
    *KEYS.get_or_init(|| {
        let state = RandomState::new();
        [state.hash_one(0_u64), state.hash_one(1_u64)]
    })
}

/// Multiplies two words and folds the 128-bit product onto 64 bits: every output bit
/// depends on every input bit.
fn fold(x: u64, y: u64) -> u64 {
    let product = u128::from(x) * u128::from(y);
    (product as u64) ^ ((product >> 64) as u64)
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn half_word(bytes: &[u8], at: usize) -> u64 {
    let mut half = [0; 4];
    half.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(half))
}

/// A keyed hash of bytes (a command id, or a key's bytes for [`KeyedHasher`]): folded
/// multiplications of their words with two secret words drawn once per process.
///
/// Command ids and aggregate ids come from clients, so the keys keep them from choosing
/// ids that share an index slot. It is not a cryptographic hash: what a collision costs
/// is a longer probe (in one aggregate's dedupe window, or in a map), never a wrong
/// answer, since ids that share a hash are told apart by their bytes. It takes about 45
/// instructions for a 9-byte id where the standard library's SipHash took about 190
/// (BENCHMARKS.md, W4).
pub(crate) fn hash_id(bytes: &[u8]) -> u64 {
    let [k0, k1] = keys();
    let len = bytes.len();
    let mut h = k0 ^ (len as u64).rotate_left(32);
    let (a, b) = match len {
        0 => (0, 0),
        1..4 => {
            let (first, middle, last) = (bytes[0], bytes[len / 2], bytes[len - 1]);
            (
                u64::from(first) << 16 | u64::from(middle) << 8 | u64::from(last),
                0,
            )
        }
        4..8 => (half_word(bytes, 0), half_word(bytes, len - 4)),
        8..=16 => (word(bytes, 0), word(bytes, len - 8)),
        _ => {
            let mut at = 0;
            while len - at > 16 {
                h = fold(word(bytes, at) ^ k1, word(bytes, at + 8) ^ h);
                at += 16;
            }
            (word(bytes, len - 16), word(bytes, len - 8))
        }
    };
    fold(fold(a ^ k1, b ^ h), k0 ^ SPREAD)
}

/// An odd constant (the golden ratio's) for the final fold.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// A [`BuildHasher`] for maps keyed by values that clients choose: [`hash_id`] for bytes,
/// one folded multiplication for each integer.
///
/// Like [`hash_id`], it is not a cryptographic hash: the keys keep clients from choosing
/// keys that collide, and a collision costs a longer probe, never a wrong answer. It
/// takes a fraction of the instructions of the standard library's SipHash, which the
/// command path paid twice per command (the shard, then the shard's map).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyedState;

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { h: keys()[1] }
    }
}

/// The [`Hasher`] of [`KeyedState`].
#[derive(Debug, Clone)]
pub(crate) struct KeyedHasher {
    h: u64,
}

impl KeyedHasher {
    fn mix(&mut self, x: u64) {
        self.h = fold(self.h ^ x, keys()[0] ^ SPREAD);
    }
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.mix(hash_id(bytes));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        self.h
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn equal_keys_hash_alike_and_near_keys_apart() {
        let state = KeyedState;
        assert_eq!(
            state.hash_one("account-7"),
            state.hash_one(String::from("account-7"))
        );
        // A str is its bytes and a terminator: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(state.hash_one(("ab", "c")), state.hash_one(("a", "bc")));
        let strings: HashSet<u64> = (0..100_000)
            .map(|i| state.hash_one(format!("acc-{i}")))
            .collect();
        assert_eq!(strings.len(), 100_000);
        let numbers: HashSet<u64> = (0..100_000_u64).map(|i| state.hash_one(i)).collect();
        assert_eq!(numbers.len(), 100_000);
        let wide: HashSet<u64> = (0..1_000_u128).map(|i| state.hash_one(i << 64)).collect();
        assert_eq!(wide.len(), 1_000, "the high half of a u128 counts");
    }

    #[test]
    fn sequential_keys_spread_over_low_and_middle_bits() {
        // Maps index buckets by the low bits; the gateway picks a shard by bits 32 and up.
        let state = KeyedState;
        for shift in [0, 32] {
            let mut buckets = [0_u32; 1024];
            for i in 0..102_400_u64 {
                buckets[(state.hash_one(i) >> shift) as usize & 1023] += 1;
            }
            let most = buckets.iter().max().copied().unwrap_or(0);
            assert!(
                most < 200,
                "shift {shift}: a bucket of 1,024 got {most} of 102,400"
            );
            let mut strings = [0_u32; 1024];
            for i in 0..102_400 {
                strings[(state.hash_one(format!("account-{i}")) >> shift) as usize & 1023] += 1;
            }
            let most = strings.iter().max().copied().unwrap_or(0);
            assert!(
                most < 200,
                "shift {shift}: a bucket of 1,024 got {most} of 102,400 strings"
            );
        }
    }
}
