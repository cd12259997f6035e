//! A map that remembers which keys changed: the scheduler's state is made of these, so every
//! change is in the next commit by construction (no dirty key to mark by hand, none to forget).
//!
//! Reads go through `Deref` to the inner `BTreeMap`; every way to change an entry (`insert`,
//! `remove`, `get_mut`, `retain`, `clear`) records its key. There is no `DerefMut`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

#[derive(Debug, Clone)]
pub struct Tracked<V> {
    map: BTreeMap<String, V>,
    changed: BTreeSet<String>,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Tracked {
            map: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }
}

/// Equal when the entries are: what changed since the last commit is bookkeeping.
impl<V: PartialEq> PartialEq for Tracked<V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<V> Deref for Tracked<V> {
    type Target = BTreeMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V> FromIterator<(String, V)> for Tracked<V> {
    /// Entries as loaded from the store: nothing changed yet.
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Tracked {
            map: iter.into_iter().collect(),
            changed: BTreeSet::new(),
        }
    }
}

impl<V> Tracked<V> {
    pub fn insert(&mut self, key: impl Into<String>, value: V) -> Option<V> {
        let key = key.into();
        self.changed.insert(key.clone());
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let removed = self.map.remove(key);
        if removed.is_some() {
            self.changed.insert(key.to_owned());
        }
        removed
    }

    /// Mutable access; the key counts as changed.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let value = self.map.get_mut(key)?;
        self.changed.insert(key.to_owned());
        Some(value)
    }

    /// Keeps the entries `keep` accepts; the others count as changed.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &V) -> bool) {
        let changed = &mut self.changed;
        self.map.retain(|key, value| {
            let kept = keep(key, value);
            if !kept {
                changed.insert(key.clone());
            }
            kept
        });
    }

    pub fn clear(&mut self) {
        self.retain(|_, _| false);
    }

    /// Every entry counts as changed (the whole map is written to a new store).
    pub fn all_changed(&mut self) {
        self.changed = self.map.keys().cloned().collect();
    }

    /// Keys changed since the last [`Tracked::committed`].
    pub fn changed(&self) -> &BTreeSet<String> {
        &self.changed
    }

    /// The changes are stored.
    pub fn committed(&mut self) {
        self.changed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_is_recorded_and_reads_are_not() {
        let mut map: Tracked<u32> = [("a".to_owned(), 1), ("b".to_owned(), 2)]
            .into_iter()
            .collect();
        assert!(map.changed().is_empty());
        assert_eq!(map.get("a"), Some(&1));
        assert_eq!(map.values().sum::<u32>(), 3);
        assert!(map.changed().is_empty(), "reads change nothing");
        map.insert("c", 3);
        *map.get_mut("a").unwrap() += 1;
        assert_eq!(map.remove("zzz"), None);
        map.retain(|k, _| k != "b");
        assert_eq!(
            map.changed().iter().collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
        map.committed();
        assert!(map.changed().is_empty());
        map.clear();
        assert_eq!(map.changed().len(), 2);
        assert!(map.is_empty());
    }
}
