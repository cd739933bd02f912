//! The checkpoint journal: an append-only file of the run's state transitions.
//!
//! Each line is `HASH JSON\n`, where `HASH` is the first 32 hex digits of
//! `sha256(previous HASH || JSON)` (the first record chains from 32 zeros). Every append is
//! written and `fsync`ed before the engine acts on it. Reading verifies the chain:
//!
//! - a bad **last** line (no newline, bad hash, bad JSON: a crash mid-write) is a *torn tail*,
//!   reported and cut off before the next append;
//! - a bad line **followed by others** (corruption, tampering, a removed record) is an error:
//!   nothing after it can be trusted, and nothing is silently skipped.
//!
//! The run's state is rebuilt by replaying the records ([`crate::state::RunState::replay`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ports::Millis;
use crate::state::{Header, RunEvent, StepEvent, StepKey};

pub(crate) const GENESIS: &str = "00000000000000000000000000000000";
/// Longest record accepted when reading (a header carries the plan text: 16 MiB at most).
pub(crate) const MAX_LINE: usize = 64 * 1024 * 1024;

/// One record of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// First record: the run's identity, plan and options.
    Header(Box<Header>),
    /// A step's transition.
    Step {
        /// Which step.
        step: StepKey,
        /// What happened.
        #[serde(flatten)]
        event: StepEvent,
    },
    /// A run-level event.
    Run {
        /// What happened.
        #[serde(flatten)]
        event: RunEvent,
    },
}

/// A record with its sequence number and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 1-based position in the journal.
    pub seq: u64,
    /// When it was appended (the run's clock).
    pub at: Millis,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
}

/// Errors reading or writing a journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A record in the middle does not verify: the journal was corrupted or edited.
    #[error(
        "journal {path}: record on line {line} is corrupt or was modified ({reason}); the \
         records after it cannot be trusted, so the run cannot be replayed"
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What failed.
        reason: String,
    },
    /// The journal has no valid header.
    #[error("journal {path}: no header record; this is not a drover journal")]
    NoHeader {
        /// The journal file.
        path: PathBuf,
    },
    /// The records do not replay (a transition the state machine forbids).
    #[error("journal {path}: record {seq} does not replay: {reason}")]
    Replay {
        /// The journal file.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The journal verifies but is not the run's own: it was copied or moved from another
    /// run, or its header does not match the plan it carries.
    #[error("journal {path} is not this run's: {reason}")]
    Foreign {
        /// The journal file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// An earlier append failed; the journal takes no more records until it is reopened.
    #[error(
        "journal {path}: an earlier write failed, so the journal was closed to further \
         records; fix the cause and resume the run"
    )]
    Closed {
        /// The journal file.
        path: PathBuf,
    },
    /// Another process wrote the journal's next record first (the store refused this
    /// process's write of record `seq` because it exists): this process no longer holds the
    /// run, and stops before any further effect.
    #[error(
        "journal {path}: another drover wrote record {seq} of this run first, so this process no \
         longer holds the run; it stopped before doing anything more"
    )]
    Lost {
        /// The journal's location.
        path: PathBuf,
        /// The record both wrote.
        seq: u64,
    },
    /// The store holding the journal failed or could not be reached.
    #[error("journal {path}: {message}")]
    Store {
        /// The journal's location.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A test asked the journal to fail here (crash simulation).
    #[error("journal {path}: simulated crash after record {after}")]
    SimulatedCrash {
        /// The journal file.
        path: PathBuf,
        /// Records written before the crash.
        after: u64,
    },
}

/// Where to fail, to simulate a crash in tests: after `after` records in total, optionally
/// writing half of the next record first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPoint {
    /// Fail when the journal would hold more than this many records.
    pub after: u64,
    /// Write the first half of the next record before failing (a torn write).
    pub torn: bool,
}

/// A torn last record that was found and cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// 1-based line of the torn record.
    pub line: usize,
    /// Bytes removed.
    pub bytes: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// An open journal, positioned at its end for appending.
#[derive(Debug)]
pub struct Journal {
    /// The journal's file, or the location of its objects.
    path: PathBuf,
    sink: Sink,
    last_hash: String,
    next_seq: u64,
    crash: Option<CrashPoint>,
    durable: bool,
    /// Set when an append failed: nothing more is appended after a possibly partial write.
    closed: bool,
}

/// Where appended records go.
#[derive(Debug)]
enum Sink {
    /// A local file, synced on each durable append.
    File {
        file: File,
        /// Length of the verified, fully written records.
        len: u64,
    },
    /// Objects in a bucket, one per group of records, written by a task of their own
    /// ([`crate::store`]): an append stages its records, and they are durable once
    /// [`Durability::until`] says so.
    Objects(crate::store::remote::Writer),
}

/// Waits for appended records to be durable (see [`Journal::durability`]).
#[derive(Debug, Clone)]
pub struct Durability(Option<crate::store::remote::Waiter>);

impl Durability {
    /// Returns once record `seq` (and so every record before it) is durable.
    ///
    /// # Errors
    /// The write of a group that holds it failed: the run lost its journal to another
    /// writer, or the store could not be reached for longer than the journal rides out.
    pub async fn until(&self, seq: u64) -> Result<(), JournalError> {
        match &self.0 {
            None => Ok(()),
            Some(waiter) => waiter.until(seq).await,
        }
    }

    /// Returns once everything appended so far is durable or has failed, and the writer is
    /// idle (the end of a run, whatever its outcome: nothing is left in flight).
    pub async fn settle(&self) {
        if let Some(waiter) = &self.0 {
            waiter.settle().await;
        }
    }
}

impl Journal {
    /// Creates a new journal holding `header` (fails if the file exists). The file and its
    /// directory are synced before this returns.
    ///
    /// # Errors
    /// I/O errors, or the file already existing.
    pub fn create(path: &Path, header: Header, at: Millis) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().create_new(true).append(true).open(path).map_err(io)?;
        let mut journal = Journal {
            path: path.to_owned(),
            sink: Sink::File { file, len: 0 },
            last_hash: GENESIS.to_owned(),
            next_seq: 1,
            crash: None,
            durable: true,
            closed: false,
        };
        journal.append(at, Record::Header(Box::new(header)))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(io)?;
        }
        Ok(journal)
    }

    /// Opens an existing journal: verifies every record, cuts off a torn tail, and returns the
    /// journal ready to append with its entries.
    ///
    /// # Errors
    /// I/O errors, a corrupt record before the last one, or no header.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Entry>, Option<TornTail>), JournalError> {
        let io = |source| JournalError::Io { path: path.to_owned(), source };
        let read = read_file(path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        if read.torn.is_some() {
            file.set_len(read.valid_len).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let journal = Journal {
            path: path.to_owned(),
            sink: Sink::File { file, len: read.valid_len },
            last_hash: read.last_hash,
            next_seq: read.entries.len() as u64 + 1,
            crash: None,
            durable: true,
            closed: false,
        };
        Ok((journal, read.entries, read.torn))
    }

    /// Reads and verifies a journal without opening it for writing (for `status` and
    /// `runs`). A torn tail is reported, not removed.
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn read(path: &Path) -> Result<(Vec<Entry>, Option<TornTail>), JournalError> {
        let read = read_file(path)?;
        Ok((read.entries, read.torn))
    }

    /// As [`Journal::read`], handing each verified entry to `sink` as it is read instead of
    /// keeping them all (`status` and `report` of a large run: a quarter of a million entries
    /// need not be held, nor freed, at once).
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn read_each(
        path: &Path,
        sink: &mut dyn FnMut(Entry),
    ) -> Result<Option<TornTail>, JournalError> {
        let file = File::open(path)
            .map_err(|source| JournalError::Io { path: path.to_owned(), source })?;
        Ok(stream_entries(path, file, sink)?.torn)
    }

    /// Reads and verifies journal bytes from any reader; `path` only names it in errors.
    /// This is what [`Journal::read`] does after opening the file (and what the fuzzer
    /// drives).
    ///
    /// # Errors
    /// As [`Journal::open`].
    pub fn read_from(
        path: &Path,
        reader: impl std::io::Read,
    ) -> Result<(Vec<Entry>, Option<TornTail>), JournalError> {
        let read = read_entries(path, reader)?;
        Ok((read.entries, read.torn))
    }

    /// A journal whose records go to a bucket's objects through `writer`, continuing after
    /// `count` verified records whose chain ends in `last_hash`.
    pub(crate) fn on_objects(
        location: String,
        writer: crate::store::remote::Writer,
        count: u64,
        last_hash: String,
    ) -> Journal {
        Journal {
            path: PathBuf::from(location),
            sink: Sink::Objects(writer),
            last_hash: if count == 0 { GENESIS.to_owned() } else { last_hash },
            next_seq: count + 1,
            crash: None,
            durable: true,
            closed: false,
        }
    }

    /// What waits for appended records to be durable. A file journal's appends are durable
    /// when they return; an object journal's once the group that holds them is written.
    #[must_use]
    pub fn durability(&self) -> Durability {
        match &self.sink {
            Sink::File { .. } => Durability(None),
            Sink::Objects(writer) => Durability(Some(writer.waiter())),
        }
    }

    /// Whether the journal is a local file (an object journal's records are fenced: each is
    /// known to be this process's only once written).
    #[must_use]
    pub fn is_local(&self) -> bool {
        matches!(self.sink, Sink::File { .. })
    }

    /// Waits until every record appended so far is durable.
    ///
    /// # Errors
    /// As [`Durability::until`].
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.durability().until(self.len()).await
    }

    /// Makes appends fail at `point` (tests: crash simulation).
    pub fn crash_at(&mut self, point: Option<CrashPoint>) {
        self.crash = point;
    }

    /// Whether appends are synced to disk (the default). Only throw-away journals
    /// (simulations, estimates, benchmarks of scheduling) turn it off.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// The journal file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records appended so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.next_seq - 1
    }

    /// Whether the journal has no record (never true for a created journal).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a record and syncs it to disk before returning. On an object journal the
    /// record is staged for the next group: it is durable once [`Journal::durability`] says
    /// so (wait for it before acting on the record).
    ///
    /// # Errors
    /// I/O errors (disk full, ...). After an error the journal is cut back to its last whole
    /// record when the file system allows it, and takes no more records
    /// ([`JournalError::Closed`]): a partial write is never followed by more records, so the
    /// next open finds at worst a torn tail, which it cuts off.
    pub fn append(&mut self, at: Millis, record: Record) -> Result<Entry, JournalError> {
        let entry = Entry { seq: self.next_seq, at, record };
        self.append_entries(std::slice::from_ref(&entry))?;
        Ok(entry)
    }

    /// Appends a record without syncing it: it becomes durable with the next synced append.
    /// For records whose loss in a crash only makes the step run again from its previous
    /// phase (a step that began, a step blocked by a failure): never for a record that an
    /// effect depends on.
    ///
    /// # Errors
    /// As [`Journal::append`].
    pub fn append_lazy(&mut self, at: Millis, record: Record) -> Result<Entry, JournalError> {
        let durable = std::mem::replace(&mut self.durable, false);
        let entry = self.append(at, record);
        self.durable = durable;
        entry
    }

    /// Appends records with one sync (group commit).
    ///
    /// # Errors
    /// As [`Journal::append`].
    pub fn append_all(
        &mut self,
        at: Millis,
        records: Vec<Record>,
    ) -> Result<Vec<Entry>, JournalError> {
        let entries: Vec<Entry> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| Entry { seq: self.next_seq + i as u64, at, record })
            .collect();
        self.append_entries(&entries)?;
        Ok(entries)
    }

    fn append_entries(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        if self.closed {
            return Err(JournalError::Closed { path: self.path.clone() });
        }
        let result = self.write_entries(entries);
        if let Err(e) = &result {
            self.closed = true;
            if matches!(e, JournalError::SimulatedCrash { .. }) {
                // A simulated crash leaves the file as a dying process would.
                return result;
            }
            // Whatever reached the file after the last whole record is not trusted: cut it
            // (best effort: on a full disk truncation still works; if it does not, the next
            // open treats the partial record as a torn tail).
            if let Sink::File { file, len } = &mut self.sink {
                let _ = file.set_len(*len).and_then(|()| file.sync_data());
            }
        }
        result
    }

    fn write_entries(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        let mut buf = Vec::new();
        let mut hash = self.last_hash.clone();
        let mut crashed = None;
        let mut written = 0;
        for entry in entries {
            if let Some(crash) = self.crash
                && entry.seq > crash.after
            {
                if crash.torn {
                    let line = encode(&hash, entry).map_err(io)?.0;
                    match self.sink {
                        // A torn file write: half of the record.
                        Sink::File { .. } => {
                            buf.extend_from_slice(&line.as_bytes()[..line.len() / 2])
                        }
                        // An object is written whole or not at all: the dying process's
                        // last group landed, but it never learnt so.
                        Sink::Objects(_) => {
                            buf.extend_from_slice(line.as_bytes());
                            written += 1;
                        }
                    }
                }
                crashed = Some(crash.after);
                break;
            }
            let (line, next) = encode(&hash, entry).map_err(io)?;
            buf.extend_from_slice(line.as_bytes());
            hash = next;
            written += 1;
        }
        let first = entries.first().map_or(self.next_seq, |e| e.seq);
        match &mut self.sink {
            Sink::File { file, len } => {
                file.write_all(&buf).map_err(io)?;
                if crashed.is_some() || self.durable {
                    file.sync_data().map_err(io)?;
                }
                if crashed.is_none() {
                    *len += buf.len() as u64;
                }
            }
            Sink::Objects(writer) => {
                if written > 0 {
                    writer.stage(first, first + written - 1, buf, self.durable)?;
                }
                if crashed.is_some() {
                    writer.crash();
                }
            }
        }
        if let Some(after) = crashed {
            return Err(JournalError::SimulatedCrash { path: self.path.clone(), after });
        }
        self.last_hash = hash;
        self.next_seq += entries.len() as u64;
        Ok(())
    }
}

fn chain(prev: &str, json: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(json.as_bytes());
    let digest = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in digest.iter().take(16) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

fn encode(prev: &str, entry: &Entry) -> Result<(String, String), std::io::Error> {
    let json = serde_json::to_string(entry)?;
    let hash = chain(prev, &json);
    Ok((format!("{hash} {json}\n"), hash))
}

struct ReadJournal {
    entries: Vec<Entry>,
    torn: Option<TornTail>,
    valid_len: u64,
    last_hash: String,
}

fn read_file(path: &Path) -> Result<ReadJournal, JournalError> {
    let file =
        File::open(path).map_err(|source| JournalError::Io { path: path.to_owned(), source })?;
    read_entries(path, file)
}

fn read_entries(path: &Path, reader: impl std::io::Read) -> Result<ReadJournal, JournalError> {
    let mut entries = Vec::new();
    let tail = stream_entries(path, reader, &mut |entry| entries.push(entry))?;
    Ok(ReadJournal {
        entries,
        torn: tail.torn,
        valid_len: tail.valid_len,
        last_hash: tail.last_hash,
    })
}

/// What reading a journal found besides its entries.
struct Tail {
    torn: Option<TornTail>,
    valid_len: u64,
    last_hash: String,
}

/// Reads and verifies a journal, handing each entry to `sink` in order.
fn stream_entries(
    path: &Path,
    reader: impl std::io::Read,
    sink: &mut dyn FnMut(Entry),
) -> Result<Tail, JournalError> {
    let io = |source| JournalError::Io { path: path.to_owned(), source };
    let mut reader = BufReader::new(reader);
    let mut count = 0u64;
    let mut last_hash = GENESIS.to_owned();
    let mut valid_len = 0u64;
    let mut bad: Option<(usize, u64, String)> = None;
    let mut line_no = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if let Some((line, _, reason)) = bad {
            // A bad record with more after it: corruption, not a torn write.
            return Err(JournalError::Corrupt { path: path.to_owned(), line, reason });
        }
        match verify(&buf, &last_hash, count + 1) {
            Ok((entry, hash)) => {
                if count == 0 && !matches!(entry.record, Record::Header(_)) {
                    return Err(JournalError::NoHeader { path: path.to_owned() });
                }
                count += 1;
                sink(entry);
                last_hash = hash;
                valid_len += n as u64;
            }
            Err(reason) => bad = Some((line_no, n as u64, reason)),
        }
    }
    if count == 0 {
        return Err(JournalError::NoHeader { path: path.to_owned() });
    }
    let torn = bad.map(|(line, bytes, reason)| TornTail { line, bytes, reason });
    Ok(Tail { torn, valid_len, last_hash })
}

pub(crate) fn verify(line: &[u8], prev: &str, seq: u64) -> Result<(Entry, String), String> {
    let Some(line) = line.strip_suffix(b"\n") else {
        return Err("incomplete record (no end of line)".to_owned());
    };
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let (hash, json) = line.split_once(' ').ok_or("no checksum")?;
    if chain(prev, json) != hash {
        return Err("checksum mismatch".to_owned());
    }
    let entry: Entry = serde_json::from_str(json).map_err(|e| format!("unreadable record: {e}"))?;
    if entry.seq != seq {
        return Err(format!("sequence number {} where {seq} was expected", entry.seq));
    }
    Ok((entry, hash.to_owned()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive lock on a state directory, held while a run executes. The operating system
/// releases it when the process ends, however it ends, so a lock file left by a killed
/// drover is stale by construction and is simply taken over.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock on `dir`, writing `owner` into the lock file for other processes'
    /// messages.
    ///
    /// # Errors
    /// `Err(message)` when another process holds it (the message names it), or on I/O errors.
    pub fn acquire(dir: &Path, owner: &str) -> Result<StateLock, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(format!(
                    "another drover is running in {} ({}); one run at a time per state directory",
                    dir.display(),
                    holder.trim()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let _ = file.set_len(0).and_then(|()| {
            file.write_all(format!("{owner}, pid {}\n", std::process::id()).as_bytes())
        });
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use drover_plan::{Mode, StepKind};

    use super::*;
    use crate::state::{
        Cut, CutPoint, Limits, RunEvent, RunOptions, StepEvent, StepKey, StepOutput,
    };

    fn header() -> Header {
        Header {
            run_id: "r-12345678".into(),
            mode: Mode::Drill,
            plan_name: "p".into(),
            plan_hash: "h".into(),
            plan_path: "p.yaml".into(),
            plan_text: "version: 1".into(),
            drover_version: "0".into(),
            options: RunOptions {
                keep: false,
                limits: Limits::default(),
                cloud: serde_json::json!({}),
                cut_at: None,
                backup_settle_ms: None,
                poll_interval_ms: None,
                source_read_units: None,
                notify: Default::default(),
                publish_metrics: false,
                pitr: None,
            },
        }
    }

    /// After a failed write the journal takes nothing more: no record can follow a partial
    /// one, so the next open finds at worst a torn tail.
    #[test]
    fn a_failed_append_closes_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut journal = Journal::create(&path, header(), 1).unwrap();
        let key = StepKey { table: "t".into(), target: None, kind: StepKind::Copy };
        let began = || Record::Step { step: key.clone(), event: StepEvent::Began };
        journal.append(2, began()).unwrap();
        journal.crash_at(Some(CrashPoint { after: 2, torn: true }));
        assert!(matches!(journal.append(3, began()), Err(JournalError::SimulatedCrash { .. })));
        journal.crash_at(None);
        let closed = journal.append(4, began()).unwrap_err();
        assert!(matches!(closed, JournalError::Closed { .. }), "{closed}");
        assert!(closed.to_string().contains("resume"), "{closed}");
        let (entries, torn) = Journal::read(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(torn.map(|t| t.line), Some(3));
    }

    /// Every kind of record reads back as written: flattened fields must not collide with the
    /// entry's own (`seq`, `at`, `type`, `event`).
    #[test]
    fn every_record_kind_round_trips() {
        let key = StepKey {
            table: "orders".into(),
            target: Some("us-west-2".into()),
            kind: StepKind::Restore,
        };
        let header = Header {
            mode: Mode::Failover,
            options: RunOptions { cut_at: Some(5), ..header().options },
            ..header()
        };
        let cut = Cut {
            target: "us-west-2".into(),
            time: 10,
            requested: false,
            points: BTreeMap::from([(
                "orders".into(),
                CutPoint { arn: "a".into(), created_at: 9, size_bytes: None },
            )]),
            missing: BTreeMap::new(),
            late: std::collections::BTreeSet::new(),
            chosen_at: 11,
        };
        let records = vec![
            Record::Header(Box::new(header)),
            Record::Step { step: key.clone(), event: StepEvent::Began },
            Record::Step {
                step: key.clone(),
                event: StepEvent::JobRequested { token: "t".into() },
            },
            Record::Step { step: key.clone(), event: StepEvent::JobStarted { job_id: "j".into() } },
            Record::Step {
                step: key.clone(),
                event: StepEvent::Succeeded(StepOutput::Restore {
                    table_name: "n".into(),
                    table_arn: "a".into(),
                    pitr: None,
                }),
            },
            Record::Step {
                step: key.clone(),
                event: StepEvent::Failed { kind: None, message: "m".into() },
            },
            Record::Step { step: key.clone(), event: StepEvent::Blocked { by: key.clone() } },
            Record::Step { step: key, event: StepEvent::Retried },
            Record::Run { event: RunEvent::Resumed { plan_replaced: Some("h2".into()) } },
            Record::Run { event: RunEvent::Cut(cut) },
            Record::Run {
                event: RunEvent::LeaseBroken {
                    lease: "0123456789abcdef".into(),
                    holder: "ops@laptop (pid 7, drover 0.1.0)".into(),
                    by: "oncall@desk (pid 9, drover 0.1.0)".into(),
                },
            },
            Record::Run { event: RunEvent::Finished { success: true } },
        ];
        for (i, record) in records.into_iter().enumerate() {
            let entry = Entry { seq: i as u64 + 1, at: 42, record };
            let json = serde_json::to_string(&entry).unwrap();
            let back: Entry = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, entry);
        }
    }
}
