//! [`Tracked`]: a map that remembers which keys were handed out mutably, inserted or removed
//! since persistence last asked. It is how the change log ([`crate::changes`]) finds what a call
//! may have changed without looking at the rest of the world: reads go through `Deref` (a plain
//! [`BTreeMap`]), and every way to change an entry names its key.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`BTreeMap`] that notes the keys of the entries it hands out mutably, inserts or removes
/// ("touched"). Read it as a `BTreeMap` (it derefs to one); it has no `DerefMut`, so a change
/// that does not go through its own methods does not compile. Saved as the bare map.
#[derive(Debug, Clone)]
pub struct Tracked<K: Ord, V> {
    map: BTreeMap<K, V>,
    touched: BTreeSet<K>,
}

impl<K: Ord, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked { map: BTreeMap::new(), touched: BTreeSet::new() }
    }
}

impl<K: Ord, V> Deref for Tracked<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord, V: PartialEq> PartialEq for Tracked<K, V> {
    /// Equal entries (what was touched does not count).
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for Tracked<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Tracked<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Tracked { map: BTreeMap::deserialize(d)?, touched: BTreeSet::new() })
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for Tracked<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        Tracked { map, touched: BTreeSet::new() }
    }
}

impl<K: Ord + Clone, V> Tracked<K, V> {
    /// Notes `key` as touched (a lookup, and a clone only the first time).
    fn touch<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if !self.touched.contains(key)
            && let Some((k, _)) = self.map.get_key_value(key)
        {
            self.touched.insert(k.clone());
        }
    }

    /// The entry, to change (touched).
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.touch(key);
        self.map.get_mut(key)
    }

    /// Inserts an entry (touched); returns the one it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if !self.touched.contains(&key) {
            self.touched.insert(key.clone());
        }
        self.map.insert(key, value)
    }

    /// Removes an entry (touched, when there was one).
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (k, v) = self.map.remove_entry(key)?;
        self.touched.insert(k);
        Some(v)
    }

    /// The entry under `key`, inserted with `make` when missing (touched either way).
    pub(crate) fn or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.touched.contains(&key) {
            self.touched.insert(key.clone());
        }
        self.map.entry(key).or_insert_with(make)
    }

    /// The keys touched since the last call, forgotten here.
    pub(crate) fn take_touched(&mut self) -> BTreeSet<K> {
        std::mem::take(&mut self.touched)
    }

    /// Every entry, to change without noting it: for the persister, which reaches the maps
    /// nested in entries (a vault's points) and changes nothing that is saved, and for
    /// applying changes read from disk (already saved).
    pub(crate) fn untracked(&mut self) -> &mut BTreeMap<K, V> {
        &mut self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_noted_reads_are_not() {
        let mut m: Tracked<String, u32> = Tracked::default();
        m.insert("a".to_owned(), 1);
        m.insert("b".to_owned(), 2);
        assert_eq!(m.take_touched().len(), 2);
        assert_eq!(m.get("a"), Some(&1));
        assert!(m.take_touched().is_empty(), "a read is not a change");
        *m.get_mut("a").unwrap() += 1;
        m.remove("b");
        m.remove("missing");
        assert!(m.get_mut("missing").is_none());
        let touched: Vec<String> = m.take_touched().into_iter().collect();
        assert_eq!(touched, ["a", "b"]);
        *m.or_insert_with("c".to_owned(), || 0) += 1;
        assert_eq!(m.take_touched().len(), 1);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":2,"c":1}"#);
    }
}
