//! Compact item storage: `N` generated items (`pk = "ITEM#<i>"`) plus explicit ones
//! (canaries, markers), so large tables cost nothing; counts and digests computed from them.

use std::collections::BTreeMap;

use drover_engine::ports::{Item, KeyAttribute, KeyType, TableDigest, Value, canonical_item};
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
    /// The storage key of an item key: its attributes, in order, joined (a string value as
    /// it is, so that worlds saved before typed keys still load; others with their type).
    pub(crate) fn canonical(key: &Item) -> String {
        key.iter()
            .map(|(k, v)| match v {
                Value::S(s) => format!("{k}={s}"),
                other => format!("{k}={}:{}", other.type_name(), other.text()),
            })
            .collect::<Vec<_>>()
            .join("\u{1f}")
    }

    /// The index of the generated item `key` names, if it names one.
    fn generated_index(&self, t: &Schema, key: &Item) -> Option<u64> {
        let pk = key.get(&t.partition_key.name)?;
        let i = generated_index_of(pk)?;
        let sk_ok = match &t.sort_key {
            Some(sk) => key.get(&sk.name) == Some(&generated_sort_key(sk.kind)) && key.len() == 2,
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
            let mut key = Item::from([(
                t.partition_key.name.clone(),
                generated_key(t.partition_key.kind, i),
            )]);
            if let Some(sk) = &t.sort_key {
                key.insert(sk.name.clone(), generated_sort_key(sk.kind));
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
            item.insert("payload".to_owned(), Value::S(format!("generated item {i}")));
            item
        })
    }
}

/// The partition key of generated item `i`: `ITEM#i` for string (and binary) keys, `i` for
/// number keys.
fn generated_key(kind: KeyType, i: u64) -> Value {
    match kind {
        KeyType::S => Value::S(format!("ITEM#{i}")),
        KeyType::N => Value::N(i.to_string()),
        KeyType::B => Value::B(format!("ITEM#{i}").into_bytes()),
    }
}

/// The sort key of every generated item.
fn generated_sort_key(kind: KeyType) -> Value {
    match kind {
        KeyType::S => Value::S("META".to_owned()),
        KeyType::N => Value::N("0".to_owned()),
        KeyType::B => Value::B(b"META".to_vec()),
    }
}

/// The index of the generated item whose partition key is `v`.
fn generated_index_of(v: &Value) -> Option<u64> {
    match v {
        Value::S(s) => s.strip_prefix("ITEM#")?.parse().ok(),
        Value::N(n) => n.parse().ok(),
        Value::B(b) => std::str::from_utf8(b).ok()?.strip_prefix("ITEM#")?.parse().ok(),
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
