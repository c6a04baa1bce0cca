//! Small sorted tables the scheduler keeps its segments and peers in.
//!
//! Both hold a handful of entries (segments inside the keep-behind and look-ahead
//! windows; the peers of one viewer) that are read far more often than changed, and
//! new segments arrive in order at the back and leave from the front. A sorted
//! `VecDeque`/`Vec` with binary search iterates in the same (key) order as a
//! `BTreeMap` at a fraction of the cost and without a node allocation per entry; the
//! simulator runs the scheduler hundreds of millions of times, so it matters.
//!
//! Not here: what the entries mean ([`super::core`]).

use std::collections::VecDeque;

/// Entries sorted by key, map-like. `K` must be `Ord + Copy`.
#[derive(Debug)]
pub(super) struct SortedDeque<K, V> {
    items: VecDeque<(K, V)>,
}

impl<K: Ord + Copy, V> Default for SortedDeque<K, V> {
    fn default() -> Self {
        SortedDeque {
            items: VecDeque::new(),
        }
    }
}

impl<K: Ord + Copy, V> SortedDeque<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        // Most lookups are for recent keys; the back is the cheap first guess.
        match self.items.back() {
            Some((k, _)) if k < key => return Err(self.items.len()),
            Some((k, _)) if k == key => return Ok(self.items.len() - 1),
            _ => {}
        }
        self.items.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let i = self.find(key).ok()?;
        self.items.get(i).map(|(_, v)| v)
    }

    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key).ok()?;
        self.items.get_mut(i).map(|(_, v)| v)
    }

    /// The entry for `key`, inserted with `make()` when absent.
    pub(super) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.items.insert(i, (key, make()));
                i
            }
        };
        &mut self.items[i].1
    }

    pub(super) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key).ok()?;
        self.items.remove(i).map(|(_, v)| v)
    }

    /// Removes and returns the first entry if `pred` holds for it.
    pub(super) fn pop_front_if(&mut self, pred: impl FnOnce(&V) -> bool) -> Option<(K, V)> {
        if pred(&self.items.front()?.1) {
            self.items.pop_front()
        } else {
            None
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.items.iter().map(|(k, _)| k)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.items.iter().map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.items.iter_mut().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::SortedDeque;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_a_btree_map() {
        let mut d: SortedDeque<u64, u64> = SortedDeque::default();
        let mut m: BTreeMap<u64, u64> = BTreeMap::new();
        // A fixed pseudo-random sequence of inserts, updates and removals.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..5_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 64;
            match x % 5 {
                0 => assert_eq!(d.remove(&key), m.remove(&key)),
                1 => {
                    let got = d.pop_front_if(|v| v % 2 == 0);
                    let want = match m.first_key_value() {
                        Some((&k, &v)) if v % 2 == 0 => m.remove(&k).map(|v| (k, v)),
                        _ => None,
                    };
                    assert_eq!(got, want);
                }
                2 => {
                    if let (Some(a), Some(b)) = (d.get_mut(&key), m.get_mut(&key)) {
                        *a += 1;
                        *b += 1;
                    }
                }
                _ => {
                    *d.get_or_insert_with(key, || step) += 0;
                    m.entry(key).or_insert(step);
                }
            }
            assert_eq!(d.len(), m.len());
            assert_eq!(d.get(&key), m.get(&key));
        }
        let a: Vec<(u64, u64)> = d.iter().map(|(k, v)| (*k, *v)).collect();
        let b: Vec<(u64, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(a, b);
        assert!(d.keys().copied().eq(m.keys().copied()));
        assert!(d.values().copied().eq(m.values().copied()));
        for v in d.values_mut() {
            *v = 0;
        }
        assert!(d.values().all(|v| *v == 0));
        assert_eq!(d.is_empty(), m.is_empty());
    }
}
