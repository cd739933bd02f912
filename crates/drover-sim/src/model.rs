//! How long simulated jobs take: the [`DurationModel`], and the [`JobKind`]s it times.

use drover_engine::ports::Millis;
use serde::{Deserialize, Serialize};

/// Job durations: `base + size / rate`, times a noise factor in `[1 - noise, 1 + noise]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DurationModel {
    /// Fixed part of a backup job, seconds.
    pub backup_base_s: f64,
    /// Backup throughput, MB/s.
    pub backup_mb_s: f64,
    /// Fixed part of a copy job, seconds.
    pub copy_base_s: f64,
    /// Copy throughput, MB/s.
    pub copy_mb_s: f64,
    /// Fixed part of a restore job, seconds.
    pub restore_base_s: f64,
    /// Restore throughput, MB/s.
    pub restore_mb_s: f64,
    /// Relative noise (0.1 = ±10%).
    pub noise: f64,
    /// Scan throughput per segment, MB/s (validation's counts and digests).
    #[serde(default = "default_scan_mb_s")]
    pub scan_mb_s: f64,
    /// Fixed part of a point-in-time restore (RestoreTableToPointInTime), seconds: "PITR
    /// restores take at least 20 min at any size" (aws-dr-facts.md §6).
    #[serde(default = "default_pitr_restore_base_s")]
    pub pitr_restore_base_s: f64,
    /// Point-in-time restore throughput, MB/s (the time is roughly proportional to the size).
    #[serde(default = "default_pitr_restore_mb_s")]
    pub pitr_restore_mb_s: f64,
}

fn default_scan_mb_s() -> f64 {
    25.0
}

fn default_pitr_restore_base_s() -> f64 {
    1200.0
}

fn default_pitr_restore_mb_s() -> f64 {
    25.0
}

impl Default for DurationModel {
    /// Defaults in the range AWS documents and users report: restores take at least several
    /// minutes even for small tables; copies of large tables take hours.
    fn default() -> Self {
        DurationModel {
            backup_base_s: 60.0,
            backup_mb_s: 100.0,
            copy_base_s: 180.0,
            copy_mb_s: 50.0,
            restore_base_s: 300.0,
            restore_mb_s: 25.0,
            noise: 0.1,
            scan_mb_s: default_scan_mb_s(),
            pitr_restore_base_s: default_pitr_restore_base_s(),
            pitr_restore_mb_s: default_pitr_restore_mb_s(),
        }
    }
}

impl DurationModel {
    /// Every job takes no time (overhead benchmarks).
    #[must_use]
    pub fn instant() -> DurationModel {
        DurationModel {
            backup_base_s: 0.0,
            backup_mb_s: f64::INFINITY,
            copy_base_s: 0.0,
            copy_mb_s: f64::INFINITY,
            restore_base_s: 0.0,
            restore_mb_s: f64::INFINITY,
            noise: 0.0,
            scan_mb_s: f64::INFINITY,
            pitr_restore_base_s: 0.0,
            pitr_restore_mb_s: f64::INFINITY,
        }
    }

    /// Expected duration of a parallel scan of `bytes` in `segments` segments, in milliseconds.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn scan_ms(&self, bytes: u64, segments: u32) -> Millis {
        let secs = bytes as f64 / 1e6 / (self.scan_mb_s * f64::from(segments.max(1)));
        if secs.is_finite() { (secs * 1000.0) as Millis } else { 0 }
    }

    /// Expected duration of a point-in-time restore of `bytes` (without noise), in
    /// milliseconds: from RestoreTableToPointInTime until the new table leaves CREATING.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn pitr_restore_ms(&self, bytes: u64) -> Millis {
        let secs = self.pitr_restore_base_s + bytes as f64 / 1e6 / self.pitr_restore_mb_s;
        if secs.is_finite() { (secs * 1000.0).max(0.0) as Millis } else { 0 }
    }

    /// Expected duration of a job of `kind` on `bytes` (without noise), in milliseconds.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn expected_ms(&self, kind: JobKind, bytes: u64) -> Millis {
        let (base, rate) = match kind {
            JobKind::Backup => (self.backup_base_s, self.backup_mb_s),
            JobKind::Copy => (self.copy_base_s, self.copy_mb_s),
            JobKind::Restore => (self.restore_base_s, self.restore_mb_s),
        };
        let secs = base + bytes as f64 / 1e6 / rate;
        (secs * 1000.0) as Millis
    }
}

/// Kinds of AWS Backup jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// StartBackupJob.
    Backup,
    /// StartCopyJob.
    Copy,
    /// StartRestoreJob.
    Restore,
}

impl JobKind {
    /// The unsuccessful terminal states of the kind's jobs, per AWS Backup's API model
    /// (`BackupJobState`, `CopyJobState`, `RestoreJobStatus`).
    #[must_use]
    pub fn failure_states(self) -> &'static [&'static str] {
        match self {
            JobKind::Backup => &["FAILED", "ABORTED", "EXPIRED", "PARTIAL"],
            JobKind::Copy => &["FAILED", "PARTIAL"],
            JobKind::Restore => &["FAILED", "ABORTED"],
        }
    }
}
