//! [`SimCloud`]: the world and its change log behind a lock, the clock; its set-up helpers
//! (regions and their accounts, the Organization, vaults with their policies and locks, keys,
//! tables, a plan's world, seeded copies) and the wrapper every API call goes through
//! ([`SimCloud::op`]). The ports' implementations are in [`crate::backup`],
//! [`crate::tables`], [`crate::keys`] and [`crate::identity`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_engine::ports::{
    CloudResult, Item, KeyAttribute, KeyType, Millis, TableSettings, Value, VaultLock,
};
use drover_engine::{Clock, ErrorKind};

use crate::err;
use crate::faults::Faults;
use crate::items::{ITEM_BYTES, Items, Schema, key_part};
use crate::model::DurationModel;
use crate::persist::{ChangeLog, SimError};
use crate::policy;
use crate::realism::{Realism, TableRealism};
use crate::world::{Key, Organization, Point, RegionState, SimTable, Vault, World};

/// The simulated cloud: a [`World`] and its change log behind a lock, and a clock. Clones
/// share the world (and its persistence).
#[derive(Clone)]
pub struct SimCloud {
    state: Arc<Mutex<State>>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The world and, once persisted, its change log: under one lock, so that what a call changed
/// is written before it answers.
pub(crate) struct State {
    pub(crate) world: World,
    pub(crate) log: Option<ChangeLog>,
}

impl State {
    /// Writes what the last call changed, if the world is persisted.
    fn persist(&mut self) -> Result<(), SimError> {
        match &mut self.log {
            Some(log) => log.record(&mut self.world),
            None => Ok(()),
        }
    }
}

impl Drop for State {
    /// The last handle went: a final snapshot of a persisted world.
    fn drop(&mut self) {
        if let Some(log) = &mut self.log
            && let Err(e) = log.close(&mut self.world)
        {
            tracing::warn!(error = %e, "simulator could not persist its state");
        }
    }
}

impl SimCloud {
    /// An empty world for `account`, deterministic under `seed`.
    #[must_use]
    pub fn new(account: &str, seed: u64, clock: Arc<dyn Clock>) -> SimCloud {
        SimCloud::of(World::new(account, seed), None, clock)
    }

    fn of(world: World, log: Option<ChangeLog>, clock: Arc<dyn Clock>) -> SimCloud {
        SimCloud { state: Arc::new(Mutex::new(State { world, log })), clock }
    }

    /// Loads a world saved by [`SimCloud::persist_to`] (or a whole-world `sim.json` of an
    /// older drover), and goes on saving it there after every change.
    ///
    /// # Errors
    /// The file is missing or not a simulator state, or its change log is damaged (other than
    /// in its last line, which a crash may cut short).
    pub fn load(path: &Path, clock: Arc<dyn Clock>) -> Result<SimCloud, SimError> {
        let (world, log) = ChangeLog::open(path)?;
        Ok(SimCloud::of(world, Some(log), clock))
    }

    /// Saves the world to `path` now (a snapshot) and what changes after every call from here
    /// on (the change log next to it, `path` with the extension `log`), for every clone of
    /// this cloud. When the last clone goes, the world is written whole to `path` again.
    ///
    /// # Errors
    /// The files cannot be written.
    pub fn persist_to(self, path: &Path) -> Result<SimCloud, SimError> {
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            state.log = Some(ChangeLog::create(path, &mut state.world)?);
        }
        Ok(self)
    }

    /// The latest time the world was asked at (the clock's `now` of its last call), saved
    /// with it: where the clock of a run that resumes against a loaded world may start again.
    /// `None` for a world that saw no call, or that an older drover saved.
    #[must_use]
    pub fn time(&self) -> Option<Millis> {
        self.lock().world.time
    }

    /// This cloud on another clock (a resumed run's, which starts where the world stopped).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SimCloud {
        self.clock = clock;
        self
    }

    /// The clock the cloud answers by.
    #[must_use]
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The engine's ports on this cloud (every one a handle on the same world) and its clock.
    #[must_use]
    pub fn ports(&self) -> drover_engine::Ports {
        drover_engine::Ports {
            backup: Arc::new(self.clone()),
            tables: Arc::new(self.clone()),
            keys: Arc::new(self.clone()),
            identity: Arc::new(self.clone()),
            events: Arc::new(self.clone()),
            metrics: Arc::new(self.clone()),
            clock: self.clock.clone(),
        }
    }

    /// The world and its log, even if a panic poisoned the lock.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tests: after every call, the files are loaded and compared with the live world; the
    /// log is compacted from `compact_min` bytes on.
    #[cfg(test)]
    pub(crate) fn verify_persistence(&self, compact_min: u64) {
        if let Some(log) = &mut self.lock().log {
            log.verify = true;
            log.compact_min = compact_min;
        }
    }

    /// Reads or changes the world directly (test set-up, assertions, fault injection).
    pub fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut state = self.lock();
        let now = self.clock.now();
        state.world.advance(now);
        let out = f(&mut state.world);
        if let Err(e) = state.persist() {
            tracing::warn!(error = %e, "simulator could not persist its state");
        }
        out
    }

    /// Sets the duration model.
    pub fn set_model(&self, model: DurationModel) {
        self.with(|w| w.model = model);
    }

    /// Sets the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.with(|w| w.faults = faults);
    }

    /// Sets the AWS behaviours modelled ([`Realism::off`] in a new world).
    pub fn set_realism(&self, realism: Realism) {
        self.with(|w| w.realism = realism);
    }

    /// Adds a region (with advanced DynamoDB backup on).
    pub fn add_region(&self, region: &str) {
        self.with(|w| {
            w.regions
                .entry(region.to_owned())
                .or_insert_with(|| RegionState { advanced_backup: true, ..RegionState::default() });
        });
    }

    /// Turns advanced DynamoDB backup on or off in a region (off: backups are not copyable).
    pub fn set_advanced_backup(&self, region: &str, on: bool) {
        self.with(|w| {
            if let Some(r) = w.regions.get_mut(region) {
                r.advanced_backup = on;
            }
        });
    }

    /// Makes a region unreachable (or reachable again).
    pub fn set_region_down(&self, region: &str, down: bool) {
        self.with(|w| {
            if let Some(r) = w.regions.get_mut(region) {
                r.down = down;
            }
        });
    }

    /// Puts a region (added, as [`SimCloud::add_region`] does, when missing) in `account`.
    /// Set it before adding the region's resources: their ARNs name the account they were
    /// made in.
    pub fn set_account(&self, region: &str, account: &str) {
        self.add_region(region);
        self.with(|w| {
            let own = (account != w.account).then(|| account.to_owned());
            if let Some(r) = w.regions.get_mut(region) {
                r.account = own;
            }
        });
    }

    /// Sets the AWS Organization the accounts are in (`None`: none is).
    pub fn set_organization(&self, organization: Option<Organization>) {
        self.with(|w| w.organization = organization);
    }

    /// Adds a backup vault, encrypted with `key_arn` (`None`: with the account's AWS managed
    /// key `aws/backup`, as AWS Backup encrypts a vault made without a key of its own).
    pub fn add_vault(&self, region: &str, name: &str, key_arn: Option<&str>) {
        self.with(|w| {
            let account = w.account_of(region).to_owned();
            if w.regions.get(region).is_some_and(|r| r.vaults.contains_key(name)) {
                return;
            }
            let key = match key_arn {
                Some(key) => key.to_owned(),
                None => w.aws_backup_key(region),
            };
            let arn = format!("arn:aws:backup:{region}:{account}:backup-vault:{name}");
            let r = w.regions.entry(region.to_owned()).or_default();
            r.vaults.insert(name.to_owned(), Vault::new(arn, Some(key)));
        });
    }

    /// Sets a vault's access policy (JSON; `None`: none).
    pub fn set_vault_access_policy(&self, region: &str, vault: &str, policy: Option<&str>) {
        self.with(|w| {
            if let Some(v) = w.regions.get_mut(region).and_then(|r| r.vaults.get_mut(vault)) {
                v.access_policy = policy.map(str::to_owned);
            }
        });
    }

    /// Gives a vault an access policy that lets each of `accounts` copy into it
    /// (`backup:CopyIntoBackupVault` for the account's root).
    pub fn allow_copies_from(&self, region: &str, vault: &str, accounts: &[&str]) {
        self.set_vault_access_policy(region, vault, Some(&policy::copy_from(accounts)));
    }

    /// Puts a vault under Vault Lock (`None`: lifts it): copies and backups into it must be
    /// kept between its minimum and maximum retention, and its points cannot be deleted.
    pub fn set_vault_lock(&self, region: &str, vault: &str, lock: Option<VaultLock>) {
        self.with(|w| {
            if let Some(v) = w.regions.get_mut(region).and_then(|r| r.vaults.get_mut(vault)) {
                v.lock = lock;
            }
        });
    }

    /// Adds a KMS key (`Enabled`, customer managed, with KMS's default key policy).
    pub fn add_key(&self, region: &str, key_arn: &str) {
        self.with(|w| {
            w.regions
                .entry(region.to_owned())
                .or_default()
                .keys
                .insert(key_arn.to_owned(), Key::new("Enabled"));
        });
    }

    /// Adds a KMS key that AWS manages (`Enabled`), such as `aws/backup`: it cannot be shared
    /// with another account.
    pub fn add_aws_managed_key(&self, region: &str, key_arn: &str) {
        self.with(|w| {
            let key = Key { aws_managed: true, ..Key::new("Enabled") };
            w.regions.entry(region.to_owned()).or_default().keys.insert(key_arn.to_owned(), key);
        });
    }

    /// The ARN of the account's AWS managed key `aws/backup` in `region`, made on first use
    /// (as AWS makes it): what a vault made without a key of its own is encrypted with.
    pub fn aws_backup_key(&self, region: &str) -> String {
        self.with(|w| w.aws_backup_key(region))
    }

    /// Sets a key's policy (JSON).
    pub fn set_key_policy(&self, region: &str, key_arn: &str, policy: &str) {
        self.with(|w| {
            if let Some(k) = w.regions.get_mut(region).and_then(|r| r.keys.get_mut(key_arn)) {
                k.policy = Some(policy.to_owned());
            }
        });
    }

    /// Sets a key's state (`Enabled`, `Disabled`, `PendingDeletion`).
    pub fn set_key_state(&self, region: &str, key_arn: &str, state: &str) {
        self.with(|w| {
            if let Some(k) = w.regions.get_mut(region).and_then(|r| r.keys.get_mut(key_arn)) {
                state.clone_into(&mut k.state);
            }
        });
    }

    /// Adds a table with `items` generated items and the given explicit items. The key
    /// schema is `partition_key` (a string), plus `sort_key` (a string) when given.
    pub fn add_table(
        &self,
        region: &str,
        name: &str,
        partition_key: &str,
        sort_key: Option<&str>,
        items: u64,
        explicit: &[Item],
    ) {
        let key = |name: &str| KeyAttribute { name: name.to_owned(), kind: KeyType::S };
        self.add_keyed_table(region, name, key(partition_key), sort_key.map(key), items, explicit);
    }

    /// Adds a table with `items` generated items and the given explicit items, keyed by
    /// `partition_key` and `sort_key` of any key type.
    pub fn add_keyed_table(
        &self,
        region: &str,
        name: &str,
        partition_key: KeyAttribute,
        sort_key: Option<KeyAttribute>,
        items: u64,
        explicit: &[Item],
    ) {
        let now = self.clock.now();
        self.with(|w| {
            let account = w.account_of(region).to_owned();
            let schema = Schema {
                partition_key,
                sort_key,
                global_indexes: Vec::new(),
                local_indexes: Vec::new(),
            };
            let explicit = explicit
                .iter()
                .map(|i| (Items::canonical(&key_part(&schema, i)), i.clone()))
                .collect();
            w.regions.entry(region.to_owned()).or_default().tables.insert(
                name.to_owned(),
                SimTable {
                    name: name.to_owned(),
                    arn: format!("arn:aws:dynamodb:{region}:{account}:table/{name}"),
                    schema,
                    kms_key_arn: None,
                    settings: TableSettings::default(),
                    tags: BTreeMap::new(),
                    items: Items { generated: items, explicit },
                    busy_until: None,
                    deleting_until: None,
                    realism: TableRealism::created(now),
                    created_at: Some(now),
                    pitr: None,
                    restored_from: None,
                },
            );
        });
    }

    /// Sets up the world a plan expects: its regions, each in the account the plan puts it
    /// in, vaults and keys, and its source tables with `items` generated items each plus every
    /// canary item. When targets are in other accounts than the source, what copies there
    /// need: an Organization of the plan's accounts (the source's its management account) with
    /// cross-account backup on, target vaults whose access policy lets the source account copy
    /// in, and a source vault encrypted with a customer managed key shared with their accounts. A table's key attributes are those its canary keys name (`pk`, and `sk` for
    /// two-attribute keys, otherwise). A table whose plan turns point-in-time recovery on has it on
    /// as for its whole recovery period ([`SimCloud::seed_point_in_time_recovery`]).
    pub fn seed_from_plan(&self, plan: &drover_plan::Plan, items: u64) {
        for (region, account) in plan.regions_and_accounts() {
            self.add_region(region.as_str());
            if !account.is_empty() {
                self.set_account(region.as_str(), account);
            }
        }
        let src = plan.source.region.as_str();
        let source_account = plan.source_account();
        let away: Vec<&str> = plan
            .targets
            .iter()
            .filter(|t| plan.crosses_accounts(t))
            .map(|t| plan.target_account(t))
            .collect();
        if away.is_empty() {
            self.add_vault(src, &plan.source.backup_vault, None);
        } else {
            // Copies into other accounts: the source vault's key is customer managed and
            // shared with them (AWS Backup's guidance; an AWS managed key cannot be shared).
            let key = self.with(|w| {
                crate::world::derived_key_arn(src, w.account_of(src), "drover source vault")
            });
            self.add_key(src, &key);
            self.set_key_policy(src, &key, &policy::shared_key(source_account, &away));
            self.add_vault(src, &plan.source.backup_vault, Some(&key));
        }
        for t in &plan.targets {
            self.add_key(t.region.as_str(), &t.kms_key_arn);
            self.add_vault(t.region.as_str(), &t.backup_vault, Some(&t.kms_key_arn));
            if plan.crosses_accounts(t) {
                self.allow_copies_from(t.region.as_str(), &t.backup_vault, &[source_account]);
            }
        }
        if !away.is_empty() {
            let members = plan.regions_and_accounts().map(|(_, a)| a);
            self.set_organization(Some(Organization::new(source_account, members, true)));
        }
        for t in &plan.tables {
            // The key attributes (and their types) are those of the canary key that names the
            // most attributes; `pk` (a string) without canaries.
            let key: Vec<KeyAttribute> = t
                .validate
                .canary_keys
                .iter()
                .max_by_key(|k| k.len())
                .map(|k| {
                    k.iter()
                        .map(|(name, v)| KeyAttribute {
                            name: name.clone(),
                            kind: match v {
                                Value::S(_) => KeyType::S,
                                Value::N(_) => KeyType::N,
                                Value::B(_) => KeyType::B,
                            },
                        })
                        .collect()
                })
                .unwrap_or_else(|| vec![KeyAttribute { name: "pk".to_owned(), kind: KeyType::S }]);
            let canaries: Vec<Item> = t
                .validate
                .canary_keys
                .iter()
                .map(|k| {
                    let mut item = k.clone();
                    item.insert("canary".to_owned(), Value::S("true".to_owned()));
                    item
                })
                .collect();
            let mut key = key.into_iter();
            let Some(partition) = key.next() else { continue };
            self.add_keyed_table(src, &t.name, partition, key.next(), items, &canaries);
            if t.point_in_time_recovery {
                self.seed_point_in_time_recovery(src, &t.name);
            }
        }
    }

    /// Turns point-in-time recovery on for a table as if it had been on for its whole recovery
    /// period (35 days: enabled that long before now), so that any instant of the period can be
    /// restored (test set-up; a world seeded from a plan has it on for the tables whose plan
    /// says so).
    pub fn seed_point_in_time_recovery(&self, region: &str, name: &str) {
        let since = self.clock.now().saturating_sub(
            Millis::from(crate::pitr::RECOVERY_PERIOD_DAYS).saturating_mul(crate::pitr::DAY_MS),
        );
        self.enable_point_in_time_recovery_since(region, name, since);
    }

    /// Turns point-in-time recovery on for a table, enabled at `since` (test set-up), with an
    /// empty history: the writes before now are not known, so the table's items are what it
    /// held at every instant before now.
    pub fn enable_point_in_time_recovery_since(&self, region: &str, name: &str, since: Millis) {
        self.with(|w| {
            if let Some(t) = w.regions.get_mut(region).and_then(|r| r.tables.get_mut(name)) {
                t.settings.point_in_time_recovery = true;
                t.pitr = Some(crate::pitr::PitrState::enabled(since));
            }
        });
    }

    /// Puts, in every target vault, a completed copy of each of the plan's source tables as
    /// it was `age_ms` ago: what an account with a backup schedule and copy rules holds, and
    /// what a failover restores from.
    pub fn seed_copies(&self, plan: &drover_plan::Plan, age_ms: Millis) {
        for t in &plan.tables {
            self.seed_copy(plan, &t.name, age_ms);
        }
    }

    /// Puts, in every target vault of `table`, a completed copy of it as it is now, dated
    /// `age_ms` ago.
    pub fn seed_copy(&self, plan: &drover_plan::Plan, table: &str, age_ms: Millis) {
        let now = self.clock.now();
        let Some((_, t)) = plan.table_by_name(table) else { return };
        self.with(|w| {
            let src = plan.source.region.to_string();
            let Some(source) = w.regions.get(&src).and_then(|r| r.tables.get(table)).cloned()
            else {
                return;
            };
            for region in &t.targets {
                let Some(target) = plan.target(region) else { continue };
                let id = w.rng.new_id();
                let account = w.account_of(region.as_str()).to_owned();
                let Some(vault) = w
                    .regions
                    .get_mut(region.as_str())
                    .and_then(|r| r.vaults.get_mut(&target.backup_vault))
                else {
                    continue;
                };
                let arn = format!("arn:aws:backup:{region}:{account}:recovery-point:{id}");
                vault.points.insert(
                    arn.clone(),
                    Point {
                        arn,
                        vault: target.backup_vault.clone(),
                        resource_arn: source.arn.clone(),
                        created_at: now - age_ms,
                        key_arn: vault.key_arn.clone(),
                        advanced: true,
                        size: source.items.count(&source.schema) * ITEM_BYTES,
                        schema: source.schema.clone(),
                        items: source.items.clone(),
                        deleting_until: None,
                        tags: BTreeMap::new(),
                        delete_after_days: None,
                    },
                );
            }
        });
    }

    /// Names of the tables in a region.
    #[must_use]
    pub fn table_names(&self, region: &str) -> Vec<String> {
        self.with(|w| {
            w.regions.get(region).map(|r| r.tables.keys().cloned().collect()).unwrap_or_default()
        })
    }

    /// Item count of a table (all items, generated and explicit).
    #[must_use]
    pub fn item_count(&self, region: &str, name: &str) -> Option<u64> {
        self.with(|w| w.regions.get(region)?.tables.get(name).map(|t| t.items.count(&t.schema)))
    }

    /// Runs one API call: waits the injected latency, applies what finished by now, counts
    /// the call, answers as AWS does for a region that is missing or down, for the faults in
    /// force and for a passing server fault ([`Realism::fault_rate`]), else runs `f`; then writes what
    /// changed to the change log, if the world is persisted, before answering (a failure to
    /// persist fails the call).
    pub(crate) async fn op<T>(
        &self,
        op: &str,
        region: &str,
        f: impl FnOnce(&mut World, Millis) -> CloudResult<T>,
    ) -> CloudResult<T> {
        self.op_in(op, Some(region), f).await
    }

    /// [`SimCloud::op`] for a service the world models in every region (EventBridge, SNS,
    /// CloudWatch): a region the world does not hold is not an error; a region it holds that
    /// is down still is.
    pub(crate) async fn op_anywhere<T>(
        &self,
        op: &str,
        region: &str,
        f: impl FnOnce(&mut World, Millis) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let known = self.with(|w| w.regions.contains_key(region));
        self.op_in(op, known.then_some(region), f).await
    }

    async fn op_in<T>(
        &self,
        op: &str,
        region: Option<&str>,
        f: impl FnOnce(&mut World, Millis) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let latency = self.lock().world.faults.latency_ms;
        if latency > 0 {
            self.clock.sleep(Duration::from_millis(latency)).await;
        }
        let now = self.clock.now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let w = &mut state.world;
        w.advance(now);
        *w.calls.entry(op.to_owned()).or_default() += 1;
        let result = (|| {
            if let Some(region) = region {
                check_region(w, op, region)?;
            }
            w.faults.on_call(op, &mut w.rng)?;
            if let Err(e) = w.realism.passing_fault(op, &mut w.rng) {
                w.saw("fault_rate");
                return Err(e);
            }
            let answer = f(w, now)?;
            if w.faults.answer_lost(op) {
                return Err(err(
                    ErrorKind::Transient,
                    op,
                    "timeout: no answer within the call timeout (the request was served)",
                ));
            }
            Ok(answer)
        })();
        if let Err(e) = state.persist() {
            return Err(err(
                ErrorKind::Fatal,
                op,
                format!("simulator could not persist its state: {e}"),
            ));
        }
        result
    }
}

/// A region the world holds answers; one it does not, or one that is down, cannot be reached.
fn check_region(w: &World, op: &str, region: &str) -> CloudResult<()> {
    let r = w.regions.get(region).ok_or_else(|| {
        err(
            ErrorKind::Transient,
            op,
            format!("could not connect to the endpoint for region {region}"),
        )
    })?;
    if r.down {
        return Err(err(
            ErrorKind::Transient,
            op,
            format!("could not connect to the endpoint for region {region} (region down)"),
        ));
    }
    Ok(())
}
