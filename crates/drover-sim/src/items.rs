//! Compact item storage: `N` generated items (`pk = "ITEM#<i>"`) plus explicit ones
//! (canaries, markers), so large tables cost nothing; counts and digests computed from them.

use std::collections::BTreeMap;

use drover_engine::ports::{Item, KeyAttribute, TableDigest, canonical_item};
use serde::{Deserialize, Serialize};

/// Bytes per simulated item.
pub const ITEM_BYTES: u64 = 200;

/// A table's key schema and index names (copied into recovery points and restored tables).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Schema {
    pub(crate) partition_key: KeyAttribute,
    pub(crate) sort_key: Option<KeyAttribute>,
    pub(crate) global_indexes: Vec<String>,
    pub(crate) local_indexes: Vec<String>,
}

/// A table's (or recovery point's) items.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Items {
    /// `pk = ITEM#0 .. ITEM#<generated-1>` (and `sk = META` for tables with a sort key).
    pub(crate) generated: u64,
    /// Other items, by canonical key.
    pub(crate) explicit: BTreeMap<String, Item>,
}

impl Items {
    /// The storage key of an item key: its attributes, in order, joined.
    pub(crate) fn canonical(key: &Item) -> String {
        key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\u{1f}")
    }

    /// The index of the generated item `key` names, if it names one.
    fn generated_index(&self, t: &Schema, key: &Item) -> Option<u64> {
        let pk = key.get(&t.partition_key.name)?;
        let i: u64 = pk.strip_prefix("ITEM#")?.parse().ok()?;
        let sk_ok = match &t.sort_key {
            Some(sk) => key.get(&sk.name).map(String::as_str) == Some("META") && key.len() == 2,
            None => key.len() == 1,
        };
        (sk_ok && i < self.generated).then_some(i)
    }

    /// How many items there are: generated and explicit, an explicit item that replaces a
    /// generated one counted once.
    pub(crate) fn count(&self, t: &Schema) -> u64 {
        let extra = self
            .explicit
            .values()
            .filter(|item| self.generated_index(t, &key_part(t, item)).is_none())
            .count();
        self.generated + extra as u64
    }

    /// The digest of every item, as a full scan computes it.
    pub(crate) fn digest(&self, t: &Schema) -> TableDigest {
        let mut d = TableDigest::default();
        for i in 0..self.generated {
            let mut key = Item::from([(t.partition_key.name.clone(), format!("ITEM#{i}"))]);
            if let Some(sk) = &t.sort_key {
                key.insert(sk.name.clone(), "META".to_owned());
            }
            if let Some(item) = self.get(t, &key) {
                d.add(&canonical_item(&item));
            }
        }
        for item in self.explicit.values() {
            if self.generated_index(t, &key_part(t, item)).is_none() {
                d.add(&canonical_item(item));
            }
        }
        d
    }

    /// The item with `key`: an explicit one, else a generated one.
    pub(crate) fn get(&self, t: &Schema, key: &Item) -> Option<Item> {
        if let Some(item) = self.explicit.get(&Items::canonical(key)) {
            return Some(item.clone());
        }
        self.generated_index(t, key).map(|i| {
            let mut item = key.clone();
            item.insert("payload".to_owned(), format!("generated item {i}"));
            item
        })
    }
}

/// The key attributes of `item` under schema `t`.
pub(crate) fn key_part(t: &Schema, item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| {
            *k == &t.partition_key.name || t.sort_key.as_ref().is_some_and(|s| &s.name == *k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
