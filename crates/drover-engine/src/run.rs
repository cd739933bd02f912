//! Runs on disk: ids, the state directory, starting and resuming.
//!
//! ```text
//! <state dir>/lock                      one run at a time (an OS lock, stale-proof)
//! <state dir>/runs/<run id>/journal.jsonl
//! <state dir>/runs/<run id>/...         other files of the run (the simulator's state)
//! ```

use std::path::{Path, PathBuf};

use drover_plan::RUN_SHORT_ID_LEN;
use sha2::{Digest as _, Sha256};

use crate::error::EngineError;
use crate::journal::{Entry, Journal, JournalError, Record, TornTail};
use crate::ports::Millis;
use drover_plan::StepKind;

use crate::state::{Header, RunEvent, RunState, StepEvent, StepKey};

/// The SHA-256 of a plan file's bytes, hex.
#[must_use]
pub fn plan_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new run id: `<plan>-<yyyymmdd>t<hhmmss>z-<8 hex>`, where the last 8 characters are the
/// short id used in drill table names.
#[must_use]
pub fn new_run_id(plan_name: &str, now: Millis, entropy: u64) -> String {
    let secs = now.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    let mut h = Sha256::new();
    h.update(plan_name.as_bytes());
    h.update(now.to_le_bytes());
    h.update(entropy.to_le_bytes());
    let short: String =
        h.finalize().iter().take(RUN_SHORT_ID_LEN / 2).map(|b| format!("{b:02x}")).collect();
    format!(
        "{plan_name}-{y:04}{m:02}{d:02}t{:02}{:02}{:02}z-{short}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// The longest run id.
pub const RUN_ID_MAX_LEN: usize = 64;

/// Checks a run id given on the command line: 1 to 64 lowercase letters, digits or `-`.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_run_id(id: &str) -> Result<(), String> {
    let ok_chars = id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok_chars || id.is_empty() || id.len() > RUN_ID_MAX_LEN {
        return Err(format!(
            "run id `{id}` must be 1 to {RUN_ID_MAX_LEN} lowercase letters, digits or `-`"
        ));
    }
    Ok(())
}

/// The short id of a run, which drill table names carry: the id's last 8 characters when
/// they are hex digits and the id is just them or ends in `-` and them (as generated ids do:
/// `shop-20261124t221805z-1a2b3c4d`); otherwise 8 hex digits of the id's SHA-256, so that
/// every id has one, and ids that merely end alike (`team-a-nightly1`, `team-b-nightly1`)
/// do not share drill tables.
#[must_use]
pub fn short_id(run_id: &str) -> String {
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let start = run_id.len().saturating_sub(RUN_SHORT_ID_LEN);
    if let Some(tail) = run_id.get(start..)
        && tail.len() == RUN_SHORT_ID_LEN
        && hex(tail)
        && (start == 0 || run_id.as_bytes().get(start - 1) == Some(&b'-'))
    {
        return tail.to_owned();
    }
    Sha256::digest(run_id.as_bytes())
        .iter()
        .take(RUN_SHORT_ID_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
pub fn format_time(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
}

/// The name a `mode` run restores `table` under in `region`: its own in a failover, the
/// plan's drill template in a drill (`--pitr` too), the recover's template (or its own name,
/// `--names-from-plan`) in a recover.
#[must_use]
pub fn restored_name(
    plan: &drover_plan::Plan,
    mode: drover_plan::Mode,
    pitr: Option<&crate::state::Pitr>,
    table: &str,
    region: &str,
    short_id: &str,
) -> String {
    use drover_plan::Mode;
    match (mode, pitr) {
        (Mode::Failover, _) | (Mode::Recover, None) => table.to_owned(),
        (Mode::Recover, Some(p)) => p.table_name(table, region, short_id),
        (Mode::Drill | Mode::Backup, _) => {
            let r =
                drover_plan::Region::parse(region).unwrap_or_else(|_| plan.source.region.clone());
            plan.drill.table_name(table, short_id, &r)
        }
    }
}

/// Formats epoch milliseconds as `YYYYMMDDTHHMMSSZ`, as table names may carry an instant
/// (`[a-zA-Z0-9_.-]`).
#[must_use]
pub fn compact_time(ms: Millis) -> String {
    format_time(ms).replace(['-', ':'], "")
}

/// Parses `YYYY-MM-DDTHH:MM[:SS]Z` (UTC) into epoch milliseconds.
///
/// # Errors
/// A message when the text is not such a time.
pub fn parse_time(s: &str) -> Result<Millis, String> {
    let bad = || format!("`{s}` is not a UTC time like 2026-11-24T10:30:00Z");
    let t = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> =
        date.split('-').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
    let c: Vec<i64> =
        time.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
    let (&[y, m, day], [h, min, rest @ ..]) = (d.as_slice(), c.as_slice()) else {
        return Err(bad());
    };
    let sec = rest.first().copied().unwrap_or(0);
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(h)
        || !(0..60).contains(min)
        || !(0..60).contains(&sec)
        || rest.len() > 1
    {
        return Err(bad());
    }
    let days = days_from_civil(y, m, day);
    Ok(((days * 86_400) + h * 3600 + min * 60 + sec) * 1000)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The directory of a run.
#[must_use]
pub fn run_dir(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir.join("runs").join(run_id)
}

/// The journal of a run.
#[must_use]
pub fn journal_path(state_dir: &Path, run_id: &str) -> PathBuf {
    run_dir(state_dir, run_id).join("journal.jsonl")
}

/// Creates a new run's journal.
///
/// # Errors
/// The run exists already, or the journal cannot be written.
pub fn create(
    state_dir: &Path,
    header: Header,
    now: Millis,
) -> Result<(Journal, RunState), EngineError> {
    let path = journal_path(state_dir, &header.run_id);
    if path.exists() {
        return Err(EngineError::Refused(format!(
            "run `{}` exists already in {}; resume it with `drover resume {}`",
            header.run_id,
            state_dir.display(),
            header.run_id
        )));
    }
    let journal = Journal::create(&path, header.clone(), now)?;
    Ok((journal, RunState::new(header, now)))
}

/// The header of a run's journal, when its first record reads and verifies (what kind of
/// run it is, before the journal is opened).
#[must_use]
pub fn read_header(state_dir: &Path, run_id: &str) -> Option<Header> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(journal_path(state_dir, run_id)).ok()?;
    let mut line = Vec::new();
    std::io::BufReader::new(file).read_until(b'\n', &mut line).ok()?;
    match crate::journal::verify(&line, crate::journal::GENESIS, 1).ok()?.0.record {
        Record::Header(header) => Some(*header),
        _ => None,
    }
}

/// A run opened for resuming.
#[derive(Debug)]
pub struct Opened {
    /// The journal, ready to append.
    pub journal: Journal,
    /// The replayed state.
    pub state: RunState,
    /// A torn last record that was cut off, if any.
    pub torn: Option<TornTail>,
}

/// Opens a run's journal and replays it.
///
/// # Errors
/// Unknown run, unreadable or corrupt journal, or records that do not replay.
pub fn open(state_dir: &Path, run_id: &str) -> Result<Opened, EngineError> {
    let path = journal_path(state_dir, run_id);
    if !path.exists() {
        return Err(EngineError::Refused(format!(
            "no run `{run_id}` in {} (see `drover runs`)",
            state_dir.display()
        )));
    }
    let (journal, entries, torn) = Journal::open(&path)?;
    let state = replay(&path, run_id, &entries)?;
    Ok(Opened { journal, state, torn })
}

/// Reads a run without opening it for writing (`status`, `report`, `runs`): the same checks
/// as [`open`], and a torn tail is reported, not cut.
///
/// # Errors
/// As [`open`].
pub fn read(state_dir: &Path, run_id: &str) -> Result<(RunState, Option<TornTail>), EngineError> {
    let path = journal_path(state_dir, run_id);
    // Each entry is applied as it is read (a large run's entries are never all held).
    let mut replaying = Replaying::default();
    let torn = Journal::read_each(&path, &mut |entry| replaying.feed(&entry))?;
    Ok((replaying.finish(&path, run_id)?, torn))
}

/// A journal's state, built one verified entry at a time as they are read.
#[derive(Default)]
pub(crate) struct Replaying {
    state: Option<RunState>,
    refused: Option<(u64, String)>,
}

impl Replaying {
    pub(crate) fn feed(&mut self, entry: &Entry) {
        if self.refused.is_some() {
            return;
        }
        let applied = match (&mut self.state, &entry.record) {
            (None, Record::Header(header)) => {
                self.state = Some(RunState::new((**header).clone(), entry.at));
                Ok(())
            }
            (None, _) => Err("the first record is not a header".to_owned()),
            (Some(state), _) => state.apply(entry),
        };
        if let Err(reason) = applied {
            self.refused = Some((entry.seq, reason));
        }
    }

    /// The state, checked as [`replay`] says.
    pub(crate) fn finish(self, path: &Path, run_id: &str) -> Result<RunState, JournalError> {
        let replayed = match (self.state, self.refused) {
            (Some(state), None) => Ok(state),
            (_, Some((seq, reason))) => Err((seq, reason)),
            (None, None) => Err((1, "the first record is not a header".to_owned())),
        };
        owned(path, run_id, replayed)
    }
}

/// Replays a verified journal and checks that it is this run's own: its header names this
/// run (a journal copied or moved from another run or plan is refused, not resumed under the
/// wrong name) and its embedded plan matches the hash the header records.
pub(crate) fn replay(
    path: &Path,
    run_id: &str,
    entries: &[Entry],
) -> Result<RunState, JournalError> {
    owned(path, run_id, RunState::replay(entries))
}

/// A replayed journal, checked as [`replay`] says.
fn owned(
    path: &Path,
    run_id: &str,
    replayed: Result<RunState, (u64, String)>,
) -> Result<RunState, JournalError> {
    let state = replayed.map_err(|(seq, reason)| JournalError::Replay {
        path: path.to_owned(),
        seq,
        reason,
    })?;
    let h = &state.header;
    let foreign = |reason: String| JournalError::Foreign { path: path.to_owned(), reason };
    if h.run_id != run_id {
        return Err(foreign(format!(
            "it records run `{}` of plan `{}`, not `{run_id}`; a journal copied or moved from \
             another run is never replayed under a different name",
            h.run_id, h.plan_name
        )));
    }
    if plan_hash(h.plan_text.as_bytes()) != h.plan_hash {
        return Err(foreign("the plan it carries does not match the plan hash it records".into()));
    }
    Ok(state)
}

/// Prepares a resumed run: records the resumption and gives failed and blocked steps another
/// attempt.
///
/// # Errors
/// Journal write errors.
pub fn prepare_resume(
    journal: &mut Journal,
    state: &mut RunState,
    now: Millis,
    plan_replaced: Option<String>,
) -> Result<(), EngineError> {
    use crate::state::Phase;
    let mut records = vec![Record::Run { event: RunEvent::Resumed { plan_replaced } }];
    let retried: Vec<&StepKey> = state
        .steps
        .iter()
        .filter(|(_, s)| matches!(s.phase, Phase::Failed { .. } | Phase::Blocked { .. }))
        .map(|(k, _)| k)
        .collect();
    for (key, step) in &state.steps {
        // A teardown that already ran must run again when a step of its target is retried:
        // the retry may restore a table.
        let redo_teardown = key.kind == StepKind::Teardown
            && matches!(step.phase, Phase::Succeeded { .. })
            && retried.iter().any(|r| r.target == key.target && r.kind != StepKind::Teardown);
        if retried.contains(&key) || redo_teardown {
            records.push(Record::Step { step: key.clone(), event: StepEvent::Retried });
        }
    }
    let now = crate::state::stamp(now, state);
    for entry in journal.append_all(now, records)? {
        state.apply(&entry).map_err(EngineError::Refused)?;
    }
    Ok(())
}

/// Refuses a failover whose target table names are taken: a failover restores under the
/// tables' own names and never overwrites a table.
///
/// # Errors
/// `Refused` naming every taken name; cloud errors from the reads.
pub async fn check_failover_names(
    plan: &drover_plan::Plan,
    tables: &dyn crate::ports::TableService,
) -> Result<(), EngineError> {
    let mut taken = Vec::new();
    for target in &plan.targets {
        for id in plan.tables_in(&target.region) {
            let name = &plan.table(id).name;
            if tables.describe_table(target.region.as_str(), name).await?.is_some() {
                taken.push(format!("`{name}` in {}", target.region));
            }
        }
    }
    if taken.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Refused(format!(
            "refusing to fail over: these tables already exist and drover never overwrites a table: {}",
            taken.join(", ")
        )))
    }
}

/// Every run in a state directory, oldest first, with its state (or why it cannot be read).
#[must_use]
pub fn list(state_dir: &Path) -> Vec<(String, Result<RunState, String>)> {
    let Ok(dir) = std::fs::read_dir(state_dir.join("runs")) else {
        return Vec::new();
    };
    let mut runs: Vec<(std::time::SystemTime, String, Result<RunState, String>)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .map(|id| {
            let state = read(state_dir, &id).map(|(state, _)| state).map_err(|e| e.to_string());
            (created(&journal_path(state_dir, &id)), id, state)
        })
        .collect();
    // Oldest first by when the journal was created on this machine: simulated runs all
    // start at the same simulated instant, and a run's own start time is another clock's.
    runs.sort_by(|(a, id_a, _), (b, id_b, _)| (a, id_a).cmp(&(b, id_b)));
    runs.into_iter().map(|(_, id, state)| (id, state)).collect()
}

/// When a file was created (else last modified; else the epoch).
fn created(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.created().or_else(|_| m.modified()))
        .unwrap_or(std::time::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_id_has_a_short_id_of_eight_hex_digits() {
        // Generated ids and ids ending in `-` and 8 hex digits keep their tail...
        assert_eq!(short_id("shop-20261124t221805z-1a2b3c4d"), "1a2b3c4d");
        assert_eq!(short_id("abcd1234"), "abcd1234");
        assert_eq!(short_id("nightly-00000001"), "00000001");
        // ...any other id gets one derived from it, stable and distinct.
        for id in ["nightly-1", "x", "team-a-nightly1", "team-b-nightly1", "release20261201"] {
            let s = short_id(id);
            assert_eq!(s.len(), 8, "{id}");
            assert!(s.bytes().all(|b| b.is_ascii_hexdigit()), "{id}: {s}");
            assert_eq!(short_id(id), s, "{id}");
        }
        assert_ne!(short_id("team-a-nightly1"), short_id("team-b-nightly1"));
    }

    #[test]
    fn run_ids_carry_plan_time_and_short_id() {
        // 2026-11-24T22:18:05Z
        let id = new_run_id("shop", 1_795_558_685_000, 7);
        assert!(id.starts_with("shop-20261124t221805z-"), "{id}");
        assert_eq!(short_id(&id).len(), 8);
        assert_eq!(check_run_id(&id), Ok(()));
        assert!(check_run_id("Bad_Id-12345678").is_err());
        assert!(check_run_id("").is_err());
        assert!(check_run_id(&"a".repeat(65)).is_err());
        for ok in ["nightly-1", "x", "x-1234-678", &"a".repeat(64)] {
            assert_eq!(check_run_id(ok), Ok(()), "{ok}");
        }
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(
            parse_time("2026-11-24T22:18Z").map(format_time),
            Ok("2026-11-24T22:18:00Z".to_owned())
        );
        for bad in [
            "2026-11-24",
            "2026-13-01T00:00:00Z",
            "2026-11-24T25:00:00Z",
            "yesterday",
            "2026-11-24T10:00:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
