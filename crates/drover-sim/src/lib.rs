//! drover's simulated cloud: a strict, deterministic, multi-region fake of DynamoDB, AWS
//! Backup and KMS that implements the engine's ports.
//!
//! It is the embedded default for offline runs, estimates and fast tests; it never replaces
//! the emulator tests of the AWS adapter. Like jj's test backend it is *strict*: it refuses
//! what AWS refuses (restoring over an existing table, copying a non-advanced recovery point,
//! restoring with a disabled key, updating a table that is not ACTIVE, deleting a protected
//! table) so that engine bugs show up here first.
//!
//! - **Time.** Jobs take time from a [`DurationModel`] by table size, measured on the clock
//!   the simulator is given (virtual time in tests, accelerated in the CLI). State advances
//!   lazily: every call first applies whatever finished by "now".
//! - **Determinism.** Ids, noise and fault decisions come from a seeded generator.
//! - **Faults.** Throttling, failing jobs, disabled keys, regions that are down, latency
//!   ([`Faults`]).
//! - **Realism.** The documented ways AWS is not an ideal service, each switched on its own
//!   ([`Realism`]): tags shown late, PITR unavailable on new tables, UPDATING / ENABLING /
//!   DELETING states, restored tables settling, backups missing the last minute's writes, jobs
//!   unseen at first, the restore quota, one backup or copy job per table, copy jobs queued,
//!   passing server faults. [`Realism::off`] (the default) is the simulator as it was;
//!   [`Realism::aws`] is AWS-like.
//! - **Persistence.** With [`SimCloud::persist_to`] the world is written as a snapshot
//!   (`sim.json`) and every call that changes something appends what it changed, and only that,
//!   to a change log next to it (`sim.log`) before it answers; the log is compacted into a new
//!   snapshot as it grows and when the last handle goes. A killed process resumes against the
//!   same cloud ([`SimCloud::load`], which also reads the whole-world files of older drovers),
//!   its clock from [`SimCloud::time`]. Read-only calls write nothing. The keyed parts of the
//!   world are [`Tracked`] maps, which is how a call's changes are found without looking at
//!   the rest of the world.
//! - **Items** are stored compactly: `N` generated items (`pk = "ITEM#<i>"`) plus explicit
//!   ones (canaries, markers), so large tables cost nothing.
//! - **Accounts.** Each region is in one account (the world's unless set, as a plan puts
//!   it), and its resources' ARNs say so. Copies into another account's vault need what AWS
//!   needs (an [`Organization`] with cross-account backup on, the vault's access policy, a
//!   customer managed key) and otherwise fail as jobs; Vault Lock keeps a vault's points and
//!   fails jobs outside its retention; a role of another account cannot be passed.
//! - **Point-in-time recovery**, as the emulator's `pitr.py` has it: while PITR is on, a
//!   table keeps its item writes of the recovery period; RestoreTableToPointInTime undoes
//!   the later ones, refuses what the emulator refuses in its order, and takes (CREATING) as
//!   long as the duration model's `pitr_restore_*` say (AWS: at least 20 minutes).
//!
//! One module per concern: [`DurationModel`] and [`JobKind`] (`model`), [`Faults`] and the
//! decisions they make (`faults`), [`Realism`] and what AWS does (`realism`), the seeded
//! generator (`rng`), compact items (`items`), point-in-time recovery (`pitr`), the
//! world's state and lookups ([`World`], `world`), what jobs do (`jobs`), maps that note what
//! was changed ([`Tracked`], `tracked`), change records (`changes`), the files on disk
//! (`persist`), [`SimCloud`] and its set-up helpers (`cloud`), one module per port
//! (`backup`, `tables`, `keys`, `identity`), resource policies (`policy`), and [`estimate`].

#[cfg(test)]
mod accounts_tests;
mod backup;
mod changes;
mod cloud;
pub mod estimate;
mod faults;
mod identity;
mod items;
mod jobs;
mod keys;
mod model;
mod notify;
mod persist;
mod pitr;
mod policy;
mod realism;
mod rng;
mod tables;
mod tracked;
mod world;

use drover_engine::CloudError;
use drover_engine::ErrorKind;

pub use cloud::SimCloud;
pub use faults::Faults;
pub use items::ITEM_BYTES;
pub use model::{DurationModel, JobKind};
pub use notify::Sent;
pub use persist::SimError;
pub use realism::Realism;
pub use tracked::Tracked;
pub use world::{Organization, World};

/// The error an API call answers with.
fn err(kind: ErrorKind, op: &str, message: impl Into<String>) -> CloudError {
    CloudError::new(kind, op, message)
}
