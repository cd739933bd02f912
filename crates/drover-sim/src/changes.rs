//! Change records: what a call changed in the world, found without looking at the rest of it,
//! as one line of the change log ([`crate::persist`]); and applying such a line to a world
//! loaded from its snapshot.
//!
//! The keyed parts of the world (tables, vaults, recovery points, KMS keys, jobs, idempotency
//! tokens, the restore counter) are [`Tracked`] maps: after a call only the entries they handed
//! out mutably are serialized, and an entry is written only when the hash of its serialized
//! form differs from the one last written ([`Written`]), so a `DescribeTable` that reached a
//! table mutably writes nothing. The small state (account, Organization, faults, realism, the
//! duration model, jobs started, the regions' own settings and accounts) is compared with what
//! was last written.
//! The lazy state — the generator, the call and effect counters, the world's time — changes
//! on every call, reads too: it rides along with the next record that has a real change (or
//! the next snapshot), so read-only calls write nothing. After a crash a reloaded world may
//! have lost the effects of read-only calls (a count, a random draw), never a change a caller
//! saw succeed.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};

use drover_engine::ports::{Millis, VaultLock};
use serde::{Deserialize, Serialize};

use crate::faults::Faults;
use crate::model::{DurationModel, JobKind};
use crate::realism::Realism;
use crate::rng::Rng;
use crate::tracked::Tracked;
use crate::world::{Organization, Vault, World};

/// Where an entry of the world lives: the key of a change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Key {
    /// A table, by region and name.
    Table(String, String),
    /// A vault's own settings (not its points), by region and name.
    Vault(String, String),
    /// A recovery point, by region, vault and ARN.
    Point(String, String, String),
    /// A KMS key, by region and ARN.
    Kms(String, String),
    /// A job, by id.
    Job(String),
    /// An idempotency token (region, operation and token), to the job it started.
    Token(String),
    /// How often a table (region/name) was restored.
    Restored(String),
}

/// A region's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RegionHeader {
    advanced_backup: bool,
    down: bool,
    /// Absent in records written before regions had accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

/// A vault's own settings (its points are entries of their own).
#[derive(Serialize, Deserialize)]
struct VaultHeader {
    arn: String,
    key_arn: Option<String>,
    /// Absent in records written before vaults had policies and locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock: Option<VaultLock>,
}

/// What the change log last wrote of the world: a hash of every entry's serialized form, the
/// small and lazy state as written, and how many points of each vault are written.
#[derive(Debug)]
pub(crate) struct Written {
    hashes: BTreeMap<Key, u64>,
    points: BTreeMap<(String, String), usize>,
    account: String,
    organization: Option<Organization>,
    model: DurationModel,
    faults: Faults,
    realism: Realism,
    jobs_started: BTreeMap<JobKind, u64>,
    regions: BTreeMap<String, RegionHeader>,
    rng: Rng,
    time: Option<Millis>,
    calls: BTreeMap<String, u64>,
    effects: BTreeMap<String, u64>,
}

/// One record as read back.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Record {
    time: Option<Millis>,
    rng: Option<Rng>,
    account: Option<String>,
    /// Present when the Organization changed: the new one, or `null` when there is none.
    #[serde(deserialize_with = "present")]
    organization: Option<Option<Organization>>,
    model: Option<DurationModel>,
    faults: Option<Faults>,
    realism: Option<Realism>,
    calls: BTreeMap<String, u64>,
    effects: BTreeMap<String, u64>,
    jobs_started: BTreeMap<JobKind, u64>,
    /// `None`: the region is gone.
    regions: BTreeMap<String, Option<RegionHeader>>,
    put: Vec<(Key, serde_json::Value)>,
    del: Vec<Key>,
}

/// A field that is present (its value may be `null`): `Some` of it.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The hash an entry's serialized form is compared by (within one process only).
fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn header(r: &crate::world::RegionState) -> RegionHeader {
    RegionHeader { advanced_backup: r.advanced_backup, down: r.down, account: r.account.clone() }
}

fn vault_header(v: &Vault) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&VaultHeader {
        arn: v.arn.clone(),
        key_arn: v.key_arn.clone(),
        access_policy: v.access_policy.clone(),
        lock: v.lock,
    })
}

/// The entries changed since the last record: `(key, serialized form)` to put, keys to delete.
#[derive(Default)]
struct Delta {
    put: Vec<(Key, Vec<u8>)>,
    del: Vec<Key>,
}

impl Written {
    /// A world just written whole (a snapshot): every entry hashed, what was touched
    /// forgotten.
    pub(crate) fn of(w: &mut World) -> Result<Written, serde_json::Error> {
        let mut written = Written {
            hashes: BTreeMap::new(),
            points: BTreeMap::new(),
            account: w.account.clone(),
            organization: w.organization.clone(),
            model: w.model,
            faults: w.faults.clone(),
            realism: w.realism.clone(),
            jobs_started: w.jobs_started.clone(),
            regions: BTreeMap::new(),
            rng: w.rng.clone(),
            time: w.time,
            calls: w.calls.clone(),
            effects: w.effects.clone(),
        };
        let mut delta = Delta::default();
        for (region, r) in &mut w.regions {
            written.regions.insert(region.clone(), header(r));
            let tables: Vec<String> = r.tables.keys().cloned().collect();
            r.tables.take_touched();
            for name in tables {
                let value = r.tables.get(&name).map(serde_json::to_vec).transpose()?;
                written.entry(&mut delta, Key::Table(region.clone(), name), value);
            }
            r.keys.take_touched();
            for (arn, k) in r.keys.iter() {
                let key = Key::Kms(region.clone(), arn.clone());
                written.entry(&mut delta, key, Some(serde_json::to_vec(k)?));
            }
            r.vaults.take_touched();
            for (name, v) in r.vaults.untracked() {
                let key = Key::Vault(region.clone(), name.clone());
                written.entry(&mut delta, key, Some(vault_header(v)?));
                v.points.take_touched();
                for (arn, p) in v.points.iter() {
                    let key = Key::Point(region.clone(), name.clone(), arn.clone());
                    written.entry(&mut delta, key, Some(serde_json::to_vec(p)?));
                }
            }
        }
        w.jobs.take_touched();
        for (id, j) in w.jobs.iter() {
            written.entry(&mut delta, Key::Job(id.clone()), Some(serde_json::to_vec(j)?));
        }
        w.tokens.take_touched();
        for (t, id) in w.tokens.iter() {
            written.entry(&mut delta, Key::Token(t.clone()), Some(serde_json::to_vec(id)?));
        }
        w.tables_restored.take_touched();
        for (t, n) in w.tables_restored.iter() {
            written.entry(&mut delta, Key::Restored(t.clone()), Some(serde_json::to_vec(n)?));
        }
        Ok(written)
    }

    /// Notes an entry's state now (`None`: gone) against what was written; adds it to `delta`
    /// when it differs.
    fn entry(&mut self, delta: &mut Delta, key: Key, value: Option<Vec<u8>>) {
        match value {
            Some(bytes) => {
                let h = hash(&bytes);
                let before = self.hashes.insert(key.clone(), h);
                if before != Some(h) {
                    if before.is_none()
                        && let Key::Point(region, vault, _) = &key
                    {
                        *self.points.entry((region.clone(), vault.clone())).or_default() += 1;
                    }
                    delta.put.push((key, bytes));
                }
            }
            None => {
                if self.hashes.remove(&key).is_some() {
                    if let Key::Point(region, vault, _) = &key
                        && let Some(n) = self.points.get_mut(&(region.clone(), vault.clone()))
                    {
                        *n = n.saturating_sub(1);
                    }
                    delta.del.push(key);
                }
            }
        }
    }

    /// The written points of a vault that is gone, forgotten (they went with it).
    fn forget_points(&mut self, region: &str, vault: &str) {
        self.points.remove(&(region.to_owned(), vault.to_owned()));
        self.hashes.retain(|k, _| !matches!(k, Key::Point(r, v, _) if r == region && v == vault));
    }

    /// Every point of a vault whose count of points differs from what was written (it was
    /// removed and added again within one call): compared one by one.
    fn reconcile_points(
        &mut self,
        delta: &mut Delta,
        region: &str,
        name: &str,
        points: &Tracked<String, crate::world::Point>,
    ) -> Result<(), serde_json::Error> {
        let written: Vec<Key> = self
            .hashes
            .keys()
            .filter(|k| matches!(k, Key::Point(r, v, _) if r == region && v == name))
            .cloned()
            .collect();
        for key in written {
            if let Key::Point(_, _, arn) = &key
                && !points.contains_key(arn)
            {
                self.entry(delta, key, None);
            }
        }
        for (arn, p) in points.iter() {
            let key = Key::Point(region.to_owned(), name.to_owned(), arn.clone());
            self.entry(delta, key, Some(serde_json::to_vec(p)?));
        }
        Ok(())
    }

    /// The record of what changed in `w` since the last one, as a line (with its newline), or
    /// `None` when nothing did but lazy state. What it reports counts as written from here on.
    pub(crate) fn record(&mut self, w: &mut World) -> Result<Option<Vec<u8>>, serde_json::Error> {
        let mut delta = Delta::default();
        let mut regions: BTreeMap<String, Option<RegionHeader>> = BTreeMap::new();
        for (region, r) in &mut w.regions {
            let h = header(r);
            if self.regions.get(region) != Some(&h) {
                self.regions.insert(region.clone(), h.clone());
                regions.insert(region.clone(), Some(h));
            }
            for name in r.tables.take_touched() {
                let value = r.tables.get(&name).map(serde_json::to_vec).transpose()?;
                self.entry(&mut delta, Key::Table(region.clone(), name), value);
            }
            for arn in r.keys.take_touched() {
                let value = r.keys.get(&arn).map(serde_json::to_vec).transpose()?;
                self.entry(&mut delta, Key::Kms(region.clone(), arn), value);
            }
            for name in r.vaults.take_touched() {
                let value = r.vaults.get(&name).map(vault_header).transpose()?;
                if value.is_none() {
                    self.forget_points(region, &name);
                }
                self.entry(&mut delta, Key::Vault(region.clone(), name), value);
            }
            for (name, v) in r.vaults.untracked() {
                for arn in v.points.take_touched() {
                    let value = v.points.get(&arn).map(serde_json::to_vec).transpose()?;
                    self.entry(&mut delta, Key::Point(region.clone(), name.clone(), arn), value);
                }
                let written = self.points.get(&(region.clone(), name.clone())).copied();
                if written.unwrap_or(0) != v.points.len() {
                    self.reconcile_points(&mut delta, region, name, &v.points)?;
                }
            }
        }
        let gone: Vec<String> =
            self.regions.keys().filter(|r| !w.regions.contains_key(*r)).cloned().collect();
        for region in gone {
            self.regions.remove(&region);
            self.hashes.retain(|k, _| match k {
                Key::Table(r, _) | Key::Vault(r, _) | Key::Point(r, _, _) | Key::Kms(r, _) => {
                    *r != region
                }
                _ => true,
            });
            self.points.retain(|(r, _), _| *r != region);
            regions.insert(region, None);
        }
        for id in w.jobs.take_touched() {
            let value = w.jobs.get(&id).map(serde_json::to_vec).transpose()?;
            self.entry(&mut delta, Key::Job(id), value);
        }
        for t in w.tokens.take_touched() {
            let value = w.tokens.get(&t).map(serde_json::to_vec).transpose()?;
            self.entry(&mut delta, Key::Token(t), value);
        }
        for t in w.tables_restored.take_touched() {
            let value = w.tables_restored.get(&t).map(serde_json::to_vec).transpose()?;
            self.entry(&mut delta, Key::Restored(t), value);
        }

        let mut line = LineWriter::default();
        let account = (w.account != self.account).then(|| w.account.clone());
        let organization = (w.organization != self.organization).then(|| w.organization.clone());
        let model = (w.model != self.model).then_some(w.model);
        let faults = (w.faults != self.faults).then(|| w.faults.clone());
        let realism = (w.realism != self.realism).then(|| w.realism.clone());
        let jobs_started = changed(&self.jobs_started, &w.jobs_started);
        let real = !delta.put.is_empty()
            || !delta.del.is_empty()
            || !regions.is_empty()
            || account.is_some()
            || organization.is_some()
            || model.is_some()
            || faults.is_some()
            || realism.is_some()
            || !jobs_started.is_empty();
        if !real {
            return Ok(None);
        }
        // The lazy state rides along.
        if w.time != self.time {
            line.field("time", &w.time)?;
        }
        if w.rng != self.rng {
            line.field("rng", &w.rng)?;
        }
        let calls = changed(&self.calls, &w.calls);
        if !calls.is_empty() {
            line.field("calls", &calls)?;
        }
        let effects = changed(&self.effects, &w.effects);
        if !effects.is_empty() {
            line.field("effects", &effects)?;
        }
        if let Some(account) = &account {
            line.field("account", account)?;
        }
        if let Some(organization) = &organization {
            line.field("organization", organization)?;
        }
        if let Some(model) = &model {
            line.field("model", model)?;
        }
        if let Some(faults) = &faults {
            line.field("faults", faults)?;
        }
        if let Some(realism) = &realism {
            line.field("realism", realism)?;
        }
        if !jobs_started.is_empty() {
            line.field("jobs_started", &jobs_started)?;
        }
        if !regions.is_empty() {
            line.field("regions", &regions)?;
        }
        line.put(&delta.put)?;
        if !delta.del.is_empty() {
            line.field("del", &delta.del)?;
        }
        self.snapshotted(w);
        Ok(Some(line.finish()))
    }

    /// Whether the world's lazy state differs from what was written.
    pub(crate) fn lazy_differs(&self, w: &World) -> bool {
        w.rng != self.rng
            || w.time != self.time
            || w.calls != self.calls
            || w.effects != self.effects
    }

    /// Notes that the world's small and lazy state as it is now is written (a record, or a
    /// snapshot).
    pub(crate) fn snapshotted(&mut self, w: &World) {
        w.account.clone_into(&mut self.account);
        self.organization.clone_from(&w.organization);
        self.model = w.model;
        self.faults.clone_from(&w.faults);
        self.realism.clone_from(&w.realism);
        self.jobs_started.clone_from(&w.jobs_started);
        self.rng = w.rng.clone();
        self.time = w.time;
        self.calls.clone_from(&w.calls);
        self.effects.clone_from(&w.effects);
    }
}

/// The entries of `now` that differ from `before` (counters only grow: none disappear).
fn changed<K: Ord + Clone + Serialize>(
    before: &BTreeMap<K, u64>,
    now: &BTreeMap<K, u64>,
) -> BTreeMap<K, u64> {
    now.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), *v)).collect()
}

/// A record line being written: a JSON object, field by field, with the entries' serialized
/// forms copied in as they are.
#[derive(Default)]
struct LineWriter {
    out: Vec<u8>,
}

impl LineWriter {
    fn name(&mut self, name: &str) {
        self.out.push(if self.out.is_empty() { b'{' } else { b',' });
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.name(name);
        serde_json::to_writer(&mut self.out, value)
    }

    fn put(&mut self, put: &[(Key, Vec<u8>)]) -> Result<(), serde_json::Error> {
        if put.is_empty() {
            return Ok(());
        }
        self.name("put");
        self.out.push(b'[');
        for (i, (key, bytes)) in put.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.push(b'[');
            serde_json::to_writer(&mut self.out, key)?;
            self.out.push(b',');
            self.out.extend_from_slice(bytes);
            self.out.push(b']');
        }
        self.out.push(b']');
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        if self.out.is_empty() {
            self.out.push(b'{');
        }
        self.out.extend_from_slice(b"}\n");
        self.out
    }
}

/// What is wrong with a record that parses but cannot be applied.
fn invalid(message: String) -> serde_json::Error {
    serde::de::Error::custom(message)
}

/// Applies one record (a line of the change log) to `w`, a world loaded from the snapshot the
/// log follows and the records before this one. Nothing is noted as touched: it is written.
pub(crate) fn apply(w: &mut World, line: &[u8]) -> Result<(), serde_json::Error> {
    let r: Record = serde_json::from_slice(line)?;
    if r.time.is_some() {
        w.time = r.time;
    }
    if let Some(rng) = r.rng {
        w.rng = rng;
    }
    if let Some(account) = r.account {
        w.account = account;
    }
    if let Some(organization) = r.organization {
        w.organization = organization;
    }
    if let Some(model) = r.model {
        w.model = model;
    }
    if let Some(faults) = r.faults {
        w.faults = faults;
    }
    if let Some(realism) = r.realism {
        w.realism = realism;
    }
    w.calls.extend(r.calls);
    w.effects.extend(r.effects);
    w.jobs_started.extend(r.jobs_started);
    for (name, h) in r.regions {
        match h {
            Some(h) => {
                let region = w.regions.entry(name).or_default();
                region.advanced_backup = h.advanced_backup;
                region.down = h.down;
                region.account = h.account;
            }
            None => {
                w.regions.remove(&name);
            }
        }
    }
    for (key, value) in r.put {
        match key {
            Key::Table(region, name) => {
                let t = serde_json::from_value(value)?;
                w.regions.entry(region).or_default().tables.untracked().insert(name, t);
            }
            Key::Kms(region, arn) => {
                let k = serde_json::from_value(value)?;
                w.regions.entry(region).or_default().keys.untracked().insert(arn, k);
            }
            Key::Vault(region, name) => {
                let VaultHeader { arn, key_arn, access_policy, lock } =
                    serde_json::from_value(value)?;
                let vaults = w.regions.entry(region).or_default().vaults.untracked();
                let v = vaults.entry(name).or_insert_with(|| Vault::new(String::new(), None));
                v.arn = arn;
                v.key_arn = key_arn;
                v.access_policy = access_policy;
                v.lock = lock;
            }
            Key::Point(region, vault, arn) => {
                let p = serde_json::from_value(value)?;
                let v = w
                    .regions
                    .get_mut(&region)
                    .and_then(|r| r.vaults.untracked().get_mut(&vault))
                    .ok_or_else(|| {
                        invalid(format!("a point of vault {vault} ({region}), which is not there"))
                    })?;
                v.points.untracked().insert(arn, p);
            }
            Key::Job(id) => {
                w.jobs.untracked().insert(id, serde_json::from_value(value)?);
            }
            Key::Token(t) => {
                w.tokens.untracked().insert(t, serde_json::from_value(value)?);
            }
            Key::Restored(t) => {
                w.tables_restored.untracked().insert(t, serde_json::from_value(value)?);
            }
        }
    }
    for key in r.del {
        match key {
            Key::Table(region, name) => {
                if let Some(r) = w.regions.get_mut(&region) {
                    r.tables.untracked().remove(&name);
                }
            }
            Key::Kms(region, arn) => {
                if let Some(r) = w.regions.get_mut(&region) {
                    r.keys.untracked().remove(&arn);
                }
            }
            Key::Vault(region, name) => {
                if let Some(r) = w.regions.get_mut(&region) {
                    r.vaults.untracked().remove(&name);
                }
            }
            Key::Point(region, vault, arn) => {
                if let Some(v) =
                    w.regions.get_mut(&region).and_then(|r| r.vaults.untracked().get_mut(&vault))
                {
                    v.points.untracked().remove(&arn);
                }
            }
            Key::Job(id) => {
                w.jobs.untracked().remove(&id);
            }
            Key::Token(t) => {
                w.tokens.untracked().remove(&t);
            }
            Key::Restored(t) => {
                w.tables_restored.untracked().remove(&t);
            }
        }
    }
    w.indexed = false;
    Ok(())
}
