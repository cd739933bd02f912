//! The `journal` and `journal_replay` targets: bytes through `Journal::read_from`, then
//! `RunState::replay`.

use std::collections::BTreeSet;
use std::path::Path;

use drover_engine::journal::{Entry, Journal, JournalError, Record};
use drover_engine::state::{Phase, RunEvent, RunState, StepKey};
use sha2::{Digest as _, Sha256};

/// The hash the first record chains from (`crates/drover-engine/src/journal.rs`).
const GENESIS: &[u8] = b"00000000000000000000000000000000";

/// Reads `data` as a journal file and checks the answer:
///
/// - reading from memory never fails with an I/O error; a corrupt record is a line that has
///   lines after it;
/// - the entries read are a header followed by records numbered 1, 2, 3...: exactly the first
///   lines of the input; what follows them is one torn line at most, and it is reported
///   (so is a last line without its end of line);
/// - every entry read survives JSON and back unchanged (what the writer writes, the reader
///   reads);
/// - replaying them either fails at one of their records, after which the records before it
///   still replay, or yields a state that agrees with the records ([`replayed`]).
///
/// # Panics
/// When any of these does not hold.
pub fn journal(data: &[u8]) {
    let _ = read(data);
}

/// Seals `data` with the journal's hash chain ([`seal`]) and checks it as [`journal`] does;
/// in addition no record may fail its checksum.
///
/// # Panics
/// When any of these does not hold.
pub fn journal_replay(data: &[u8]) {
    let sealed = seal(data);
    match read(&sealed) {
        Err(JournalError::Corrupt { reason, .. }) => {
            assert_ne!(reason, "checksum mismatch", "a sealed record fails its checksum");
        }
        Ok(Some(reason)) => {
            assert_ne!(reason, "checksum mismatch", "a sealed record fails its checksum");
        }
        _ => {}
    }
}

/// Turns each line of `data` (a JSON record) into a journal line, `HASH JSON\n`, where `HASH`
/// is the first 32 hex digits of `sha256(previous HASH || JSON)` and the first record chains
/// from 32 zeros, as the journal writes them. A last line without an end of line stays
/// without one (a torn write).
#[must_use]
pub fn seal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 34);
    let mut prev = GENESIS.to_vec();
    for line in data.split_inclusive(|b| *b == b'\n') {
        let (json, end) = match line.strip_suffix(b"\n") {
            Some(json) => (json, true),
            None => (line, false),
        };
        let digest = Sha256::new().chain_update(&prev).chain_update(json).finalize();
        let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        out.extend_from_slice(hash.as_bytes());
        out.push(b' ');
        out.extend_from_slice(json);
        if end {
            out.push(b'\n');
        }
        prev = hash.into_bytes();
    }
    out
}

/// Reads and checks; `Ok(Some(reason))` when a torn tail was reported.
fn read(data: &[u8]) -> Result<Option<String>, JournalError> {
    let lines: Vec<&[u8]> = data.split_inclusive(|b| *b == b'\n').collect();
    let (entries, torn) = match Journal::read_from(Path::new("fuzz.jsonl"), data) {
        Ok(read) => read,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match &e {
                JournalError::Corrupt { line, reason, .. } => {
                    assert!(*line >= 1 && *line < lines.len(), "corrupt line {line} is the last");
                    assert!(!reason.is_empty());
                }
                JournalError::NoHeader { .. } => {}
                other => panic!("reading from memory failed: {other}"),
            }
            return Err(e);
        }
    };
    assert!(
        matches!(entries.first(), Some(Entry { record: Record::Header(_), .. })),
        "entries without a header"
    );
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, i as u64 + 1, "entry {i} is numbered {}", entry.seq);
    }
    match &torn {
        Some(t) => {
            assert_eq!(lines.len(), entries.len() + 1, "lines after the torn one: {t:?}");
            assert_eq!(t.line, lines.len(), "torn line: {t:?}");
            assert_eq!(t.bytes, lines[lines.len() - 1].len() as u64, "torn bytes: {t:?}");
            assert!(!t.reason.is_empty());
        }
        None => {
            assert_eq!(lines.len(), entries.len(), "lines not read and not reported");
            assert!(data.ends_with(b"\n"), "a last line without an end of line, not reported");
        }
    }
    for entry in &entries {
        let json = serde_json::to_string(entry).expect("an entry serializes");
        let back: Entry = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("an entry read does not read back ({e}): {json}"));
        assert!(back == *entry, "an entry changes through JSON: {json}\n{back:?}\n{entry:?}");
    }
    replay(&entries);
    Ok(torn.map(|t| t.reason))
}

fn replay(entries: &[Entry]) {
    let state = match RunState::replay(entries) {
        Ok(state) => state,
        Err((seq, reason)) => {
            assert!(seq >= 1 && seq <= entries.len() as u64, "replay failed at record {seq}");
            assert!(!reason.is_empty());
            // Every record before the one that failed replays.
            let before = usize::try_from(seq - 1).unwrap_or(usize::MAX);
            if before >= 1 {
                RunState::replay(&entries[..before]).unwrap_or_else(|(s, r)| {
                    panic!("replay failed at {seq}, yet its prefix fails at {s}: {r}")
                });
            }
            return;
        }
    };
    replayed(&state, entries);
    if entries.len() > 2 {
        RunState::replay(&entries[..entries.len() / 2]).unwrap_or_else(|(s, r)| {
            panic!("a journal replays, yet its first half fails at {s}: {r}")
        });
    }
}

/// The state agrees with the records it was replayed from.
fn replayed(state: &RunState, entries: &[Entry]) {
    let (first, last) = (&entries[0], &entries[entries.len() - 1]);
    let Record::Header(header) = &first.record else { unreachable!("checked by read") };
    assert_eq!(&state.header, &**header);
    assert_eq!(state.records, last.seq);
    assert_eq!((state.started_at, state.last_at), (first.at, last.at));

    let mut keys: BTreeSet<&StepKey> = BTreeSet::new();
    let (mut interruptions, mut cuts) = (0u32, 0usize);
    let (mut teardown, mut markers) = (false, false);
    for entry in &entries[1..] {
        match &entry.record {
            Record::Header(_) => unreachable!("replay refuses a second header"),
            Record::Step { step, .. } => {
                keys.insert(step);
            }
            Record::Run { event } => match event {
                RunEvent::Interrupted => interruptions += 1,
                RunEvent::Cut(_) => cuts += 1,
                RunEvent::TeardownRequested => teardown = true,
                RunEvent::MarkersRemoved => markers = true,
                _ => {}
            },
        }
    }
    assert_eq!(state.steps.keys().collect::<BTreeSet<_>>(), keys, "steps and records differ");
    assert_eq!(state.interruptions, interruptions);
    assert_eq!(state.cuts.len(), cuts, "a cut was lost or doubled");
    assert_eq!((state.teardown_requested, state.markers_removed), (teardown, markers));
    if let Record::Run { event: RunEvent::Finished { success } } = &last.record {
        assert_eq!(state.finished, Some(*success));
    }

    for (key, step) in &state.steps {
        let started = matches!(
            step.phase,
            Phase::Running
                | Phase::Requested { .. }
                | Phase::Attached { .. }
                | Phase::Succeeded { .. }
                | Phase::Failed { .. }
        );
        if started {
            assert!(step.attempt >= 1 && step.began_at.is_some(), "{key}: {step:?}");
        }
        assert_eq!(step.phase.is_terminal(), step.ended_at.is_some(), "{key}: {step:?}");
        assert!(step.job_ids.len() <= step.jobs_requested as usize, "{key}: {step:?}");
        if let Phase::Attached { job_id, .. } = &step.phase {
            assert_eq!(step.job_ids.last(), Some(job_id), "{key}: {step:?}");
        }
    }
    for (target, cut) in &state.cuts {
        assert_eq!(target, &cut.target);
        // What reports show of a cut (`drover status`, `drover report`).
        assert!(cut.skew() >= 0, "negative skew: {cut:?}");
        let _ = cut.rpo_achieved();
    }
}
