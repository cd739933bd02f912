//! The world on disk, at the path the caller names (`runs/<id>/sim.json`) and next to it:
//!
//! - **the snapshot** (`sim.json`): the whole world in its serde form, the format older drovers
//!   wrote after every change (such files load as snapshots without a log);
//! - **the change log** (`sim.log`): a header line naming the snapshot it follows (its length
//!   and FNV-1a hash), then one line per call that changed something: what changed and nothing
//!   else ([`crate::changes`]). A line is written (`write`, no `fsync`) before the call
//!   answers: the kernel has it when the caller sees the answer, so a killed process loses no
//!   change it reported. The engine's journal is what is synced.
//!
//! **Compaction.** When the log is past [`COMPACT_FACTOR`] times the snapshot (and at least
//! [`COMPACT_MIN`] bytes), and when the last handle on the world goes, the world is written
//! as a new snapshot (a temporary file, synced, renamed over `sim.json`), then a new log that
//! names it replaces the old one (a temporary file, renamed). A crash between the two leaves
//! the new snapshot and a log that names the old one: that log is ignored, its records are all
//! in the snapshot. At every instant the files hold every change.
//!
//! **Loading** reads the snapshot, then the log when it names this snapshot. A last line
//! without its newline is a write the crash cut short (its call never answered): ignored, and
//! cut off before the next append. Any other line that is not a record is an error that says
//! which line.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::changes::{self, Written};
use crate::world::World;

/// The log may grow to this many times the snapshot's size before it is compacted.
pub(crate) const COMPACT_FACTOR: u64 = 4;

/// The log is not compacted below this size (bytes): small worlds do not rewrite their
/// snapshot every few calls.
pub(crate) const COMPACT_MIN: u64 = 1 << 20;

/// Errors loading or saving a simulator state file.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing failed.
    #[error("simulator state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a simulator state.
    #[error("simulator state {path} is unreadable: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The change log's first line: the snapshot it follows.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct LogHeader {
    /// `drover-sim-log/1`.
    format: String,
    /// The snapshot's length in bytes.
    snapshot_len: u64,
    /// Its FNV-1a hash, in hex.
    snapshot_fnv: String,
}

const LOG_FORMAT: &str = "drover-sim-log/1";

impl LogHeader {
    fn of(snapshot: &[u8]) -> LogHeader {
        LogHeader {
            format: LOG_FORMAT.to_owned(),
            snapshot_len: snapshot.len() as u64,
            snapshot_fnv: format!("{:016x}", fnv1a(snapshot)),
        }
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across builds (the log names its snapshot by
/// it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The change log's path for the snapshot at `path` (`sim.json` → `sim.log`).
pub(crate) fn log_path(path: &Path) -> PathBuf {
    path.with_extension("log")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io { path: path.to_owned(), source }
}

fn format(path: &Path) -> impl FnOnce(serde_json::Error) -> SimError + '_ {
    move |e| SimError::Format { path: path.to_owned(), message: e.to_string() }
}

/// Writes `bytes` to `path` atomically: a temporary file (synced when `sync`), renamed.
fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), SimError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        if sync {
            f.sync_data().map_err(io(&tmp))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// What loading found in the log.
enum LogState {
    /// It follows the snapshot; its good part is this long (a torn last line after it), with
    /// records after its header or not.
    Follows { good_len: u64, torn: bool, records: bool },
    /// Missing, empty, torn in its header, or following another snapshot: to start anew.
    Stale,
}

/// Reads the world at `path`: its snapshot, then its log's records.
fn read(path: &Path) -> Result<(World, LogState, LogHeader), SimError> {
    let snapshot = std::fs::read(path).map_err(io(path))?;
    let mut world: World = serde_json::from_slice(&snapshot).map_err(format(path))?;
    let header = LogHeader::of(&snapshot);
    drop(snapshot);
    let log = log_path(path);
    let text = match std::fs::read(&log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((world, LogState::Stale, header));
        }
        Err(e) => return Err(io(&log)(e)),
    };
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = complete < text.len();
    let mut lines = text[..complete].split_inclusive(|b| *b == b'\n');
    let Some(first) = lines.next() else { return Ok((world, LogState::Stale, header)) };
    let corrupt = |n: usize, e: &dyn std::fmt::Display| SimError::Format {
        path: log.clone(),
        message: format!(
            "line {n} is not a change record ({e}); only a torn last line (a crash while \
             writing) is skipped, so this file was changed or damaged"
        ),
    };
    let follows: LogHeader = serde_json::from_slice(first).map_err(|e| corrupt(1, &e))?;
    if follows.format != LOG_FORMAT {
        return Err(corrupt(1, &format!("unknown format {:?}", follows.format)));
    }
    if follows != header {
        return Ok((world, LogState::Stale, header));
    }
    let mut records = false;
    for (i, line) in lines.enumerate() {
        changes::apply(&mut world, line).map_err(|e| corrupt(i + 2, &e))?;
        records = true;
    }
    Ok((world, LogState::Follows { good_len: complete as u64, torn, records }, header))
}

/// Reads a world saved by [`ChangeLog`] (or a whole-world file of older drovers).
#[cfg(test)]
pub(crate) fn load(path: &Path) -> Result<World, SimError> {
    read(path).map(|(world, _, _)| world)
}

/// The change log of a world: the files, and what of the world they hold.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    snapshot: PathBuf,
    log: PathBuf,
    /// The log, open to append; `None` after a failed write (the next change compacts).
    file: Option<File>,
    log_len: u64,
    snapshot_len: u64,
    /// Whether the log holds records (the snapshot is not the whole story).
    records: bool,
    written: Written,
    /// The log is not compacted below this size ([`COMPACT_MIN`]; tests lower it).
    pub(crate) compact_min: u64,
    /// Tests: after every call, load the files and compare them with the live world.
    #[cfg(test)]
    pub(crate) verify: bool,
}

impl ChangeLog {
    /// Starts persisting `w` at `path`: a snapshot and an empty log.
    pub(crate) fn create(path: &Path, w: &mut World) -> Result<ChangeLog, SimError> {
        let written = Written::of(w).map_err(format(path))?;
        let mut log = ChangeLog {
            snapshot: path.to_owned(),
            log: log_path(path),
            file: None,
            log_len: 0,
            snapshot_len: 0,
            records: false,
            written,
            compact_min: COMPACT_MIN,
            #[cfg(test)]
            verify: false,
        };
        log.compact(w)?;
        Ok(log)
    }

    /// Loads the world at `path` and goes on persisting it there.
    pub(crate) fn open(path: &Path) -> Result<(World, ChangeLog), SimError> {
        let (mut world, state, header) = read(path)?;
        world.index();
        let written = Written::of(&mut world).map_err(format(path))?;
        let log = log_path(path);
        let (log_len, records) = match state {
            LogState::Follows { good_len, torn, records } => {
                if torn {
                    let f = std::fs::OpenOptions::new().write(true).open(&log).map_err(io(&log))?;
                    f.set_len(good_len).map_err(io(&log))?;
                }
                (good_len, records)
            }
            LogState::Stale => {
                let mut line = serde_json::to_vec(&header).map_err(format(&log))?;
                line.push(b'\n');
                write_atomic(&log, &line, false)?;
                (line.len() as u64, false)
            }
        };
        let file = std::fs::OpenOptions::new().append(true).open(&log).map_err(io(&log))?;
        let snapshot_len = header.snapshot_len;
        let persisted = ChangeLog {
            snapshot: path.to_owned(),
            log,
            file: Some(file),
            log_len,
            snapshot_len,
            records,
            written,
            compact_min: COMPACT_MIN,
            #[cfg(test)]
            verify: false,
        };
        Ok((world, persisted))
    }

    /// Writes what a call changed in `w`, if anything (a read-only call writes nothing);
    /// compacts when the log has grown enough.
    pub(crate) fn record(&mut self, w: &mut World) -> Result<(), SimError> {
        let wrote = self.append(w);
        if wrote.is_err() {
            // The written state may be ahead of the files: the next change writes it all.
            self.file = None;
        }
        #[cfg(test)]
        if self.verify {
            self.check(w, *wrote.as_ref().unwrap_or(&false));
        }
        wrote.map(|_| ())
    }

    fn append(&mut self, w: &mut World) -> Result<bool, SimError> {
        let Some(line) = self.written.record(w).map_err(format(&self.log))? else {
            return Ok(false);
        };
        let Some(file) = &mut self.file else {
            self.compact(w)?;
            return Ok(true);
        };
        file.write_all(&line).map_err(io(&self.log))?;
        self.records = true;
        self.log_len += line.len() as u64;
        if self.log_len > (COMPACT_FACTOR * self.snapshot_len).max(self.compact_min) {
            self.compact(w)?;
        }
        Ok(true)
    }

    /// Writes `w` as a new snapshot, then a new log that follows it.
    fn compact(&mut self, w: &World) -> Result<(), SimError> {
        let snapshot = serde_json::to_vec(w).map_err(format(&self.snapshot))?;
        write_atomic(&self.snapshot, &snapshot, true)?;
        let mut header =
            serde_json::to_vec(&LogHeader::of(&snapshot)).map_err(format(&self.log))?;
        header.push(b'\n');
        self.file = None;
        write_atomic(&self.log, &header, false)?;
        let file =
            std::fs::OpenOptions::new().append(true).open(&self.log).map_err(io(&self.log))?;
        self.file = Some(file);
        self.snapshot_len = snapshot.len() as u64;
        self.log_len = header.len() as u64;
        self.records = false;
        self.written.snapshotted(w);
        Ok(())
    }

    /// The last handle on the world goes: a final snapshot, when anything happened since the
    /// last one (so that `sim.json` alone is the world after a run that ended).
    pub(crate) fn close(&mut self, w: &mut World) -> Result<(), SimError> {
        self.record(w)?;
        if self.records || self.file.is_none() || self.written.lazy_differs(w) {
            self.compact(w)?;
        }
        Ok(())
    }

    /// Tests: the files load to the live world (but its lazy state when this call wrote
    /// nothing: that waits for the next record).
    #[cfg(test)]
    fn check(&self, w: &World, wrote: bool) {
        let mut disk = serde_json::to_value(load(&self.snapshot).unwrap()).unwrap();
        let mut live = serde_json::to_value(w).unwrap();
        if !wrote {
            for v in [&mut disk, &mut live] {
                let o = v.as_object_mut().unwrap();
                for lazy in ["rng", "calls", "effects", "time"] {
                    o.remove(lazy);
                }
            }
        }
        assert!(disk == live, "the files differ from the live world: {}", diff(&disk, &live));
    }
}

#[cfg(test)]
mod tests;

/// Where two JSON values differ first (test failures).
#[cfg(test)]
pub(crate) fn diff(a: &serde_json::Value, b: &serde_json::Value) -> String {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                if x.get(k) != y.get(k) {
                    let inner = match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => diff(p, q),
                        (p, q) => format!("{p:?} vs {q:?}"),
                    };
                    return format!("{k}/{inner}");
                }
            }
            String::new()
        }
        _ => format!("{a} vs {b}"),
    }
}
