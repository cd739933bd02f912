//! Runs whose state lives in a bucket (the memory store of `objects.rs`): the journal as
//! objects (group commit, fencing by `If-None-Match`, lost answers, an unreachable store,
//! tampering) and leases (taking, refusing, expiry, skew, keeping, breaking, releasing).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_engine::journal::{Entry, JournalError};
use drover_engine::state::{RunEvent, RunState};
use drover_engine::store::lease::{self, Holder, LeaseError, Taking};
use drover_engine::store::{Bucket, ObjectStore, Store};
use drover_engine::{Clock, EngineError, ErrorKind};

use super::objects::{MemStore, Op};
use super::*;

fn journal_prefix(run_id: &str) -> String {
    format!("runs/{run_id}/journal/")
}

/// The journal objects of a run, in order.
fn journal_keys(mem: &MemStore, run_id: &str) -> Vec<String> {
    mem.keys(&journal_prefix(run_id))
}

/// Every record in a run's journal objects, as written (read behind the port's back).
fn entries_in(mem: &MemStore, run_id: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for key in journal_keys(mem, run_id) {
        let text = String::from_utf8(mem.raw_get(&key).unwrap()).unwrap();
        for line in text.lines() {
            let (_, json) = line.split_once(' ').unwrap();
            out.push(serde_json::from_str(json).unwrap());
        }
    }
    out
}

/// The jobs an uninterrupted drill of DEMO starts: one of each kind per table.
fn once_each() -> BTreeMap<JobKind, u64> {
    BTreeMap::from([(JobKind::Backup, 3), (JobKind::Copy, 3), (JobKind::Restore, 3)])
}

/// What a drill of DEMO must have left: its jobs started once each, every drill table
/// restored once and deleted, the source as it was.
fn assert_clean_drill(h: &Harness, what: &str) {
    assert_eq!(h.sim.with(|w| w.jobs_started.clone()), once_each(), "{what}: a job started twice");
    let restored = h.sim.with(|w| w.tables_restored.clone());
    assert!(restored.values().all(|n| *n == 1), "{what}: a table restored twice: {restored:?}");
    assert!(
        h.sim.table_names("us-west-2").is_empty(),
        "{what}: {:?}",
        h.sim.table_names("us-west-2")
    );
    assert_eq!(h.sim.table_names("us-east-1"), ["customers", "invoices", "orders"], "{what}");
    assert_eq!(h.sim.item_count("us-east-1", "customers"), Some(21), "{what}: the marker was left");
}

/// The parts of two states that the journal determines.
fn assert_same_state(a: &RunState, b: &RunState, what: &str) {
    assert_eq!(a.header, b.header, "{what}: header");
    assert_eq!(a.steps, b.steps, "{what}: steps");
    assert_eq!(
        (a.started_at, a.last_at, a.interruptions, a.records, a.finished),
        (b.started_at, b.last_at, b.interruptions, b.records, b.finished),
        "{what}"
    );
    assert_eq!(
        (a.teardown_requested, a.markers_removed, &a.source_points, &a.cuts),
        (b.teardown_requested, b.markers_removed, &b.source_points, &b.cuts),
        "{what}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_drill_on_a_bucket_succeeds_and_reads_back_like_a_directory_run() {
    let on_dir = Harness::new(plan(DEMO), DEMO);
    on_dir.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_clean_drill(&h, "drill on a bucket");
    // What the run asked of the bucket (before this test reads it back).
    let requests = h.mem().all_requests();

    // The bucket holds exactly what the run knew, and what a directory run holds.
    let (read, torn) = h.store.read(RUN_ID).await.unwrap();
    assert_eq!(torn, None);
    assert_same_state(&read, &report.state, "read back");
    let (dir_read, _) = on_dir.store.read(RUN_ID).await.unwrap();
    assert_same_state(&read, &dir_read, "bucket vs directory");
    // The same records, at the same times; interleaved differently across steps (on a
    // bucket, steps that journal together wait for one group, so their next records follow
    // in another order).
    let per_step = |entries: Vec<Entry>| {
        let mut out: BTreeMap<String, Vec<(Millis, Record)>> = BTreeMap::new();
        for e in entries {
            let who = match &e.record {
                Record::Step { step, .. } => step.to_string(),
                _ => "run".to_owned(),
            };
            out.entry(who).or_default().push((e.at, e.record));
        }
        out
    };
    let on_bucket = entries_in(h.mem(), RUN_ID);
    let on_disk = entries(&on_dir, RUN_ID);
    assert_eq!(on_bucket.len(), on_disk.len());
    assert_eq!(per_step(on_bucket), per_step(on_disk), "the same records");
    let listed = h.store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, RUN_ID);
    assert_eq!(listed[0].1.as_ref().unwrap().finished, Some(true));

    // Group commit: records appended while a group is in flight go out together.
    let objects = journal_keys(h.mem(), RUN_ID).len() as u64;
    let records = report.state.records;
    let count = |op: Op| requests.get(&op).copied().unwrap_or(0);
    let per_table = |op: Op| count(op) as f64 / h.plan.tables.len() as f64;
    println!(
        "demo drill on a bucket: {records} records in {objects} objects ({:.2} objects per \
         record); the run's requests {requests:?}; per table: {:.1} puts, {:.1} gets, {:.1} \
         lists",
        objects as f64 / records as f64,
        per_table(Op::Put),
        per_table(Op::Get),
        per_table(Op::List),
    );
    // Seen on DEMO in virtual time: 58 records in 49 objects (0.84). On a bucket every record
    // is waited for (its write is the check that the run is still this process's), so only
    // records appended while a write is in flight share an object.
    assert!(objects * 100 <= records * 90, "{objects} objects for {records} records");
    // One put per object (no conflict, no retry), the header's included; one listing (does
    // the run exist?) and no read: a writer never reads its own journal back.
    assert_eq!(count(Op::Put), objects);
    assert_eq!((count(Op::Get), count(Op::List), count(Op::Delete)), (0, 1, 0));
    assert_eq!(h.mem().conflicts(), 0);
}

#[tokio::test(start_paused = true)]
async fn two_writers_the_second_loses_and_writes_nothing() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let now = h.clock.now_ms();
    let (created, _) =
        h.store.create(h.header(Mode::Drill, RUN_ID, Limits::default()), now).await.unwrap();
    drop(created);
    let mut first = h.store.open(RUN_ID).await.unwrap();
    let mut second = h.store.open(RUN_ID).await.unwrap();
    assert_eq!((first.journal.len(), second.journal.len()), (1, 1));

    let resumed = Record::Run { event: RunEvent::Resumed { plan_replaced: None } };
    first.journal.append(now, resumed.clone()).unwrap();
    first.journal.flush().await.unwrap();

    second.journal.append(now, Record::Run { event: RunEvent::Interrupted }).unwrap();
    let lost = second.journal.flush().await.unwrap_err();
    let JournalError::Lost { seq, path } = &lost else { panic!("{lost:?}") };
    assert_eq!(*seq, 2);
    assert_eq!(
        path.display().to_string(),
        format!("s3://test-bucket/drover/runs/{RUN_ID}/journal/")
    );
    let message = lost.to_string();
    assert!(
        message.contains("another drover wrote record 2 of this run first")
            && message.contains("no longer holds the run"),
        "{message}"
    );
    // The lost writer takes nothing more.
    let again = second.journal.append(now, Record::Run { event: RunEvent::Interrupted });
    assert!(matches!(again, Err(JournalError::Lost { seq: 2, .. })), "{again:?}");
    drop(second);
    tokio::task::yield_now().await;

    // Nothing of the second writer is in the store.
    let keys = journal_keys(h.mem(), RUN_ID);
    assert_eq!(
        keys,
        [
            format!("runs/{RUN_ID}/journal/00000000000000000001.jsonl"),
            format!("runs/{RUN_ID}/journal/00000000000000000002.jsonl"),
        ]
    );
    let records: Vec<Record> = entries_in(h.mem(), RUN_ID).into_iter().map(|e| e.record).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1], resumed);
    assert_eq!(h.store.read(RUN_ID).await.unwrap().0.records, 2);

    // The first writer carries on.
    first.journal.append(now, Record::Run { event: RunEvent::Interrupted }).unwrap();
    first.journal.flush().await.unwrap();
    assert_eq!(h.store.read(RUN_ID).await.unwrap().0.interruptions, 1);
}

/// The message of a lost run reads as a sentence.
#[tokio::test(start_paused = true)]
async fn the_lost_run_message_has_no_stray_spaces() {
    let lost = JournalError::Lost { path: "s3://b/runs/r/journal/".into(), seq: 7 };
    let message = lost.to_string();
    assert!(!message.contains("  "), "a run of spaces in: {message}");
    assert!(message.contains("first, so this process no longer holds the run"), "{message}");
}

/// A drill created on `h`'s bucket and opened by two processes; the first resumes it
/// (durably). Returns the second, now stale.
async fn opened_twice_then_resumed(h: &Harness) -> run::Opened {
    let now = h.clock.now_ms();
    drop(h.store.create(h.header(Mode::Drill, RUN_ID, Limits::default()), now).await.unwrap());
    let mut live = h.store.open(RUN_ID).await.unwrap();
    let stale = h.store.open(RUN_ID).await.unwrap();
    run::prepare_resume(&mut live.journal, &mut live.state, now, None).unwrap();
    live.journal.flush().await.unwrap();
    stale
}

/// A process that opened the run before another wrote to it (a stale holder: a laptop that
/// slept through its lease) loses the run at its first durable record: it starts no job.
#[tokio::test(start_paused = true)]
async fn a_stale_writer_loses_the_run_before_starting_any_job() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let stale = opened_twice_then_resumed(&h).await;

    let err = h.exec(stale.journal, stale.state, Limits::default()).await.unwrap_err();
    assert!(matches!(err, EngineError::Journal(JournalError::Lost { seq: 2, .. })), "{err:?}");
    assert!(h.sim.with(|w| w.jobs_started.clone()).is_empty(), "the stale writer started a job");
    assert_eq!(h.store.read(RUN_ID).await.unwrap().0.records, 2, "it wrote no record");
}

/// Nor does it leave a drill marker in a production table: the run it lost may have removed
/// its markers already, and no one would remove this one.
#[tokio::test(start_paused = true)]
async fn a_stale_writer_leaves_no_marker_in_the_source() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let stale = opened_twice_then_resumed(&h).await;

    let items = |t: &str| h.sim.item_count("us-east-1", t);
    let before = [items("customers"), items("orders"), items("invoices")];
    let err = h.exec(stale.journal, stale.state, Limits::default()).await.unwrap_err();
    assert!(matches!(err, EngineError::Journal(JournalError::Lost { .. })), "{err:?}");
    assert_eq!(
        [items("customers"), items("orders"), items("invoices")],
        before,
        "the stale writer wrote drill markers into the source tables before it learnt it lost"
    );
}

#[tokio::test(start_paused = true)]
async fn two_processes_creating_the_same_run_at_once_one_is_refused() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let now = h.clock.now_ms();
    let mine = h.header(Mode::Drill, RUN_ID, Limits::default());
    let theirs =
        drover_engine::state::Header { plan_path: "elsewhere.yaml".into(), ..mine.clone() };
    // Both check that the run does not exist before either writes its header.
    let (a, b) = tokio::join!(h.store.create(mine, now), h.store.create(theirs, now));
    let (won, refused) = match (a, b) {
        (Ok((journal, _)), Err(e)) | (Err(e), Ok((journal, _))) => (journal, e),
        (a, b) => panic!("exactly one create must win: {:?} / {:?}", a.map(|_| ()), b.map(|_| ())),
    };
    assert!(matches!(refused, EngineError::Refused(_)), "{refused:?}");
    assert!(refused.to_string().contains("exists already"), "{refused}");
    assert_eq!(won.len(), 1);
    assert_eq!(journal_keys(h.mem(), RUN_ID).len(), 1);
    // And once it exists, a later create is refused before writing.
    let puts = h.mem().requests(Op::Put);
    let again = h.store.create(h.header(Mode::Drill, RUN_ID, Limits::default()), now).await;
    assert!(again.unwrap_err().to_string().contains("exists already"));
    assert_eq!(h.mem().requests(Op::Put), puts);
}

/// A put that S3 applied but whose answer was lost: retried, it meets its own object, which
/// the writer recognises by its bytes. The run carries on; nothing is written twice.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_is_recognised_and_the_run_carries_on() {
    let clean = Harness::on_bucket(plan(DEMO), DEMO);
    let clean_report = clean.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    for retried_by_the_sdk in [false, true] {
        let h = Harness::on_bucket(plan(DEMO), DEMO);
        if retried_by_the_sdk {
            h.mem().lose_answers_then_retry(5);
        } else {
            h.mem().lose_answers(5);
        }
        let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
        let what = format!("lost answers (retried by the SDK: {retried_by_the_sdk})");
        assert_eq!(report.outcome, Outcome::Succeeded, "{what}");
        assert_eq!(h.mem().answers_lost(), 5, "{what}: the faults happened");
        assert_eq!(h.mem().conflicts(), 5, "{what}: each retry met its own object");
        assert_clean_drill(&h, &what);
        let entries = entries_in(h.mem(), RUN_ID);
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=report.state.records).collect::<Vec<_>>(), "{what}: a duplicate");
        assert_eq!(report.state.records, clean_report.state.records, "{what}");
        let (read, _) = h.store.read(RUN_ID).await.unwrap();
        assert_same_state(&read, &report.state, &what);
    }
}

/// The next `puts` puts fail with `kind` from some moment of the run on.
fn failing_later(
    h: &Harness,
    after: Duration,
    puts: u64,
    kind: ErrorKind,
) -> tokio::task::JoinHandle<()> {
    let mem = Arc::clone(h.mem());
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        mem.fail_next(Op::Put, puts, kind);
    })
}

#[tokio::test(start_paused = true)]
async fn a_store_unreachable_for_less_than_the_ride_out_is_ridden_out() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    // Six failures in a row back off 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 s: well within 60 s.
    let fault = failing_later(&h, Duration::from_secs(300), 6, ErrorKind::Transient);
    let report = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap();
    fault.await.unwrap();
    assert_eq!(h.mem().failures_left(Op::Put), 0, "the store was unreachable during the run");
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_clean_drill(&h, "ridden out");
    let (read, _) = h.store.read(RUN_ID).await.unwrap();
    assert_same_state(&read, &report.state, "ridden out");
}

#[tokio::test(start_paused = true)]
async fn a_store_unreachable_for_longer_than_the_ride_out_stops_the_run_and_resume_finishes_it() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let fault = failing_later(&h, Duration::from_secs(300), 10_000, ErrorKind::Unreachable);
    let started = tokio::time::Instant::now();
    let err = h.start(Mode::Drill, RUN_ID, Limits::default(), None).await.unwrap_err();
    fault.await.unwrap();
    let EngineError::Journal(JournalError::Store { message, .. }) = &err else { panic!("{err:?}") };
    assert!(
        message.contains("Connection refused") && message.contains("kept failing for 60s"),
        "{err}"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(360), "it rode the failures out first: {took:?}");
    let failed_puts = 10_000 - h.mem().failures_left(Op::Put);
    assert!((10..40).contains(&failed_puts), "{failed_puts} attempts in 60 s");
    let durable = h.store.read(RUN_ID).await.unwrap().0;
    assert_eq!(durable.finished, None);

    h.mem().heal();
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.state.records > durable.records);
    assert_clean_drill(&h, "resumed after the store came back");
}

/// A snapshot of a finished run's bucket, with the journal objects' keys.
struct Finished {
    mem: Arc<MemStore>,
    keys: Vec<String>,
}

async fn finished_drill(run_id: &str) -> Finished {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let report = h.start(Mode::Drill, run_id, Limits::default(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let keys = journal_keys(h.mem(), run_id);
    assert!(keys.len() >= 5, "{keys:?}");
    Finished { mem: h.mem().snapshot(), keys }
}

fn store_on(mem: &Arc<MemStore>) -> Store {
    Store::Bucket(Bucket { objects: mem.clone(), ride_out: RIDE_OUT })
}

/// Both `read` and `open` refuse the run; the message names `object` and says `what`.
async fn refused(mem: &Arc<MemStore>, run_id: &str, object: &str, what: &[&str]) -> JournalError {
    let store = store_on(mem);
    let read = store.read(run_id).await.unwrap_err().to_string();
    let Err(EngineError::Journal(open)) = store.open(run_id).await else {
        panic!("opened a tampered journal ({read})")
    };
    let message = open.to_string();
    assert_eq!(read, message, "read and open say the same");
    assert!(message.contains(&format!("s3://test-bucket/drover/{object}")), "{message}");
    for w in what {
        assert!(message.contains(w), "`{w}` missing from: {message}");
    }
    // `drover runs` lists it, with why it cannot be read.
    let listed = store.list().await.unwrap();
    let (_, state) = listed.iter().find(|(id, _)| id == run_id).unwrap();
    assert_eq!(state.as_ref().unwrap_err(), &message);
    open
}

#[tokio::test(start_paused = true)]
async fn tampered_journal_objects_are_refused_naming_the_object() {
    let run = finished_drill(RUN_ID).await;
    let middle = &run.keys[2];

    // A record's bytes changed: its checksum no longer matches.
    let mem = run.mem.snapshot();
    let text = String::from_utf8(mem.raw_get(middle).unwrap()).unwrap();
    let seq = text.split("\"seq\":").nth(1).unwrap().split(',').next().unwrap().to_owned();
    mem.raw_put(
        middle,
        text.replacen(&format!("\"seq\":{seq},\"at\":"), &format!("\"seq\":{seq},\"at\":1"), 1)
            .into_bytes(),
    );
    let e = refused(&mem, RUN_ID, middle, &["line 1", "checksum mismatch"]).await;
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");

    // An object removed from the middle: a gap in the records.
    let mem = run.mem.snapshot();
    assert!(mem.raw_remove(middle));
    let next = &run.keys[3];
    let e = refused(&mem, RUN_ID, next, &["where record", "records are missing"]).await;
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");

    // The last object truncated: on a bucket there is no torn tail (objects are whole), so
    // it is not cut off but refused.
    let mem = run.mem.snapshot();
    let last = run.keys.last().unwrap();
    let mut bytes = mem.raw_get(last).unwrap();
    bytes.truncate(bytes.len() / 2);
    mem.raw_put(last, bytes);
    let e = refused(&mem, RUN_ID, last, &["incomplete record"]).await;
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");

    // A middle object truncated to whole lines: the records after it do not chain.
    let mem = run.mem.snapshot();
    let two_lines = run.keys[..run.keys.len() - 1]
        .iter()
        .find(|k| String::from_utf8(mem.raw_get(k).unwrap()).unwrap().lines().count() >= 2)
        .unwrap()
        .clone();
    let text = String::from_utf8(mem.raw_get(&two_lines).unwrap()).unwrap();
    let first_line = format!("{}\n", text.lines().next().unwrap());
    mem.raw_put(&two_lines, first_line.into_bytes());
    let after = &run.keys[run.keys.iter().position(|k| *k == two_lines).unwrap() + 1];
    let e = refused(&mem, RUN_ID, after, &["where record"]).await;
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");

    // A key that is not a journal object.
    let mem = run.mem.snapshot();
    let notes = format!("runs/{RUN_ID}/journal/notes.txt");
    mem.raw_put(&notes, b"remember the milk\n".to_vec());
    let e = refused(&mem, RUN_ID, &notes, &["not a journal object"]).await;
    assert!(matches!(e, JournalError::Foreign { .. }), "{e:?}");

    // An empty object.
    let mem = run.mem.snapshot();
    mem.raw_put(middle, Vec::new());
    let e = refused(&mem, RUN_ID, middle, &["empty object"]).await;
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn journal_objects_copied_from_another_run_are_refused() {
    const OTHER: &str = "test-20261124t000000z-89abcdef";
    let run = finished_drill(RUN_ID).await;
    let other = finished_drill(OTHER).await;

    // One object of the other run in this run's journal: it does not chain.
    let mem = run.mem.snapshot();
    let (theirs, ours) = (&other.keys[2], &run.keys[2]);
    assert_eq!(theirs.rsplit('/').next(), ours.rsplit('/').next(), "the same sequence number");
    mem.raw_put(ours, other.mem.raw_get(theirs).unwrap());
    let e = refused(&mem, RUN_ID, ours, &["checksum mismatch"]).await;
    assert!(matches!(e, JournalError::Corrupt { .. }), "{e:?}");

    // The other run's whole journal copied under this run's name: it verifies, but it is
    // the other run's.
    let mem = MemStore::standalone();
    for key in &other.keys {
        mem.raw_put(&key.replace(OTHER, RUN_ID), other.mem.raw_get(key).unwrap());
    }
    let e =
        refused(&mem, RUN_ID, &journal_prefix(RUN_ID), &[&format!("records run `{OTHER}`")]).await;
    assert!(matches!(e, JournalError::Foreign { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------
// Leases

fn holder(user: &str, pid: u32) -> Holder {
    Holder {
        user: user.to_owned(),
        host: "laptop".to_owned(),
        pid,
        version: "test".to_owned(),
        ci: None,
    }
}

fn taking(ttl_secs: u64, wait_secs: u64) -> Taking {
    Taking { ttl: Duration::from_secs(ttl_secs), wait: Duration::from_secs(wait_secs) }
}

fn bucket() -> (Arc<MemStore>, Arc<dyn ObjectStore>, Arc<dyn Clock>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::starting_at(T0));
    let mem = MemStore::new(clock.clone());
    let objects: Arc<dyn ObjectStore> = mem.clone();
    (mem, objects, clock)
}

fn quiet() -> impl Fn(String) + Send + Sync {
    |_| {}
}

/// The lease id in the bucket now.
async fn current_lease(objects: &Arc<dyn ObjectStore>) -> Option<String> {
    lease::read(objects, RUN_ID).await.unwrap().map(|(body, _)| body.lease)
}

/// A clock that reads ahead of the others (a machine whose clock runs fast).
struct Ahead {
    by: Millis,
    clock: SystemClock,
}

#[async_trait]
impl Clock for Ahead {
    fn now(&self) -> Millis {
        self.clock.now() + self.by
    }
    fn monotonic(&self) -> Duration {
        self.clock.monotonic()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_free_run_is_leased_and_a_held_one_refused_naming_its_holder() {
    let (_, objects, clock) = bucket();
    let a = lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(60, 0), &quiet())
        .await
        .unwrap();
    assert!(a.took_over.is_none());
    let body = a.lease.body().clone();
    assert_eq!((body.run.as_str(), body.ttl_ms, body.renewals), (RUN_ID, 60_000, 0));
    assert_eq!(body.expires_at, clock.now() + 60_000);
    assert_eq!(body.lease.len(), 16);
    let (read, etag) = lease::read(&objects, RUN_ID).await.unwrap().unwrap();
    assert_eq!(read, body);
    assert!(etag.starts_with('"'));

    let held = lease::acquire(&objects, RUN_ID, holder("bob", 9), &clock, taking(60, 0), &quiet())
        .await
        .unwrap_err();
    let LeaseError::Held(current) = &held else { panic!("{held:?}") };
    assert_eq!(current.lease, body.lease);
    let message = held.to_string();
    for want in [
        "alice@laptop (pid 7, drover test)".to_owned(),
        format!("under lease {}", body.lease),
        format!("`drover unlock {RUN_ID} --lease {}`", body.lease),
        "--wait".to_owned(),
    ] {
        assert!(message.contains(&want), "`{want}` missing from: {message}");
    }
    assert_eq!(current_lease(&objects).await, Some(body.lease), "the refusal changed nothing");
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_taken_over_only_after_staying_unrenewed_for_its_time_to_live() {
    let (_, objects, clock) = bucket();
    // A 3 s lease, renewed every second; its holder stops renewing (it died).
    let old = lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(3, 0), &quiet())
        .await
        .unwrap();
    let old_id = old.lease.body().lease.clone();
    assert_eq!(old.lease.body().renew_every(), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(clock.now() >= old.lease.body().expires_at, "expired");

    let notes = Arc::new(Mutex::new(Vec::new()));
    let taker = {
        let (objects, clock, notes) = (objects.clone(), clock.clone(), notes.clone());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let note = move |n: String| notes.lock().unwrap().push(n);
            let got =
                lease::acquire(&objects, RUN_ID, holder("bob", 9), &clock, taking(3, 0), &note)
                    .await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(!taker.is_finished(), "taken over before its time to live passed unrenewed");
    assert_eq!(current_lease(&objects).await, Some(old_id.clone()));
    let (got, waited) = taker.await.unwrap();
    let got = got.unwrap();
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(4), "{waited:?}");
    assert_eq!(got.took_over.map(|b| b.lease), Some(old_id.clone()));
    assert_eq!(got.lease.body().holder, holder("bob", 9));
    assert_eq!(current_lease(&objects).await, Some(got.lease.body().lease.clone()));
    let notes = notes.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("alice@laptop") && notes[0].contains("unrenewed for 3s"),
        "{notes:?}"
    );

    // A lease that is live when asked for, and waited for, is taken once it expired, having
    // stayed unrenewed for longer than its renewal interval meanwhile.
    let (_, objects, clock) = bucket();
    lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(3, 0), &quiet())
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let got = lease::acquire(&objects, RUN_ID, holder("bob", 9), &clock, taking(3, 10), &quiet())
        .await
        .unwrap();
    let waited = started.elapsed();
    // It was seen unrenewed from the start: taken as soon as it expired (3 s), not before.
    assert!(got.took_over.is_some());
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_millis(3600), "{waited:?}");
}

/// Alice holds the run and keeps her 3 s lease renewed (every second); bob, whose clock
/// is an hour ahead, starts looking `offset` after she took it. By bob's clock her lease
/// expired long ago every time he looks; only its changing entity tag tells him it is live.
async fn skewed_taker(offset: Duration, wait: Duration, fail_a_renewal: bool) -> SkewedTake {
    let (mem, objects, clock) = bucket();
    let a = lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(3, 0), &quiet())
        .await
        .unwrap();
    let id = a.lease.body().lease.clone();
    let run = CancellationToken::new();
    let keeper = lease::keep(a.lease, clock.clone(), run.clone());
    let ahead: Arc<dyn Clock> =
        Arc::new(Ahead { by: 3_600_000, clock: SystemClock::starting_at(T0) });
    tokio::time::sleep(offset).await;
    if fail_a_renewal {
        // The next renewal's first attempt fails (a 503); the keeper retries a second later.
        mem.fail_next(Op::Put, 1, ErrorKind::Transient);
    }
    let taking = Taking { ttl: Duration::from_secs(3), wait };
    let tried = tokio::time::timeout(
        Duration::from_secs(30),
        lease::acquire(&objects, RUN_ID, holder("bob", 9), &ahead, taking, &quiet()),
    )
    .await;
    let taken = matches!(tried, Ok(Ok(_)));
    let outcome = format!("{tried:?}");
    let held = matches!(tried, Ok(Err(LeaseError::Held(_))));
    let still_alices = current_lease(&objects).await == Some(id);
    let renewals = lease::read(&objects, RUN_ID).await.unwrap().map_or(0, |(b, _)| b.renewals);
    let failed_once = mem.failures_left(Op::Put) == 0;
    let lost = keeper.lost();
    let cancelled = run.is_cancelled();
    let _ = keeper.release().await;
    SkewedTake { taken, held, still_alices, renewals, failed_once, lost, cancelled, outcome }
}

#[derive(Debug)]
struct SkewedTake {
    taken: bool,
    held: bool,
    still_alices: bool,
    renewals: u64,
    failed_once: bool,
    lost: Option<String>,
    cancelled: bool,
    outcome: String,
}

#[tokio::test(start_paused = true)]
async fn a_renewed_lease_is_never_taken_over_by_a_clock_that_runs_ahead() {
    for offset_ms in [100, 500, 900] {
        let t = skewed_taker(Duration::from_millis(offset_ms), Duration::ZERO, false).await;
        assert!(!t.taken, "offset {offset_ms} ms: a live lease was taken over: {t:?}");
        assert!(t.still_alices && !t.cancelled && t.lost.is_none(), "{t:?}");
        // Refused as soon as a renewal is seen: the lease is live, whatever bob's clock says.
        assert!(t.renewals >= 1, "renewed: {t:?}");
        assert!(t.held, "{}", t.outcome);
    }
}

/// The same when bob happens to look just as a renewal is due: he has then seen the entity
/// tag unchanged for exactly one renewal interval, while alice's renewal is under way.
#[tokio::test(start_paused = true)]
async fn a_renewal_due_as_the_taker_looks_is_not_overtaken() {
    let t = skewed_taker(Duration::ZERO, Duration::ZERO, false).await;
    assert!(!t.taken && t.still_alices && !t.cancelled, "a live lease was taken over: {t:?}");
}

/// A renewal that needed a retry (a passing failure: the keeper tries again a second later)
/// still keeps the lease from a taker whose clock runs ahead: the holder is alive and
/// renewing, and by its own clock the lease has two thirds of its time left.
#[tokio::test(start_paused = true)]
async fn a_renewal_retried_after_a_passing_failure_is_not_taken_over_by_a_clock_ahead() {
    let t = skewed_taker(Duration::from_millis(100), Duration::ZERO, true).await;
    assert!(t.failed_once, "the renewal failed once: {t:?}");
    assert!(!t.taken && t.still_alices && !t.cancelled, "a live lease was taken over: {t:?}");
}

/// With `wait` 0 a live lease is refused (as soon as the taker can tell it is renewed), even
/// when the taker's clock makes it look expired; not waited on for ever.
#[tokio::test(start_paused = true)]
async fn a_taker_whose_clock_runs_ahead_is_told_the_run_is_held() {
    let t = skewed_taker(Duration::from_millis(100), Duration::ZERO, false).await;
    assert!(!t.taken && t.still_alices, "{t:?}");
    assert!(t.held, "a renewed lease must be refused within the wait (0 s): {}", t.outcome);
}

#[tokio::test(start_paused = true)]
async fn a_keeper_stops_the_run_when_its_lease_is_broken_and_says_why() {
    let (_, objects, clock) = bucket();
    let a = lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(30, 0), &quiet())
        .await
        .unwrap();
    let run = CancellationToken::new();
    let keeper = lease::keep(a.lease, clock.clone(), run.clone());
    // Renewals go on meanwhile.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(!run.is_cancelled());
    let (body, etag) = lease::read(&objects, RUN_ID).await.unwrap().unwrap();
    assert_eq!(body.renewals, 2);
    assert_eq!(keeper.lease_id(), body.lease);

    // `drover unlock`, and another process takes the run at once.
    lease::break_lease(&objects, &body, &etag).await.unwrap();
    let broken_at = tokio::time::Instant::now();
    let b = lease::acquire(&objects, RUN_ID, holder("bob", 9), &clock, taking(30, 0), &quiet())
        .await
        .unwrap();
    assert!(b.took_over.is_none(), "a broken lease is gone");
    tokio::time::timeout(Duration::from_secs(11), run.cancelled()).await.unwrap();
    assert!(broken_at.elapsed() <= Duration::from_secs(10), "within a renewal interval");
    let why = keeper.lost().unwrap();
    assert!(why.contains("taken over by another process or broken with `drover unlock`"), "{why}");
    assert!(why.contains(RUN_ID), "{why}");
    // Releasing the lost keeper leaves bob's lease alone.
    keeper.release().await.unwrap();
    assert_eq!(current_lease(&objects).await, Some(b.lease.body().lease.clone()));
    // Breaking a lease that changed meanwhile is refused.
    let stale = lease::break_lease(&objects, &body, &etag).await;
    assert!(matches!(stale, Err(LeaseError::Lost { .. })), "{stale:?}");
    assert_eq!(current_lease(&objects).await, Some(b.lease.body().lease.clone()));
}

/// A run whose lease is broken mid-way stops (interrupted, journaled) within a renewal
/// interval; resumed under a new lease, it finishes, every job started once.
#[tokio::test(start_paused = true)]
async fn a_run_whose_lease_is_broken_stops_and_resumes() {
    let h = Harness::on_bucket(plan(DEMO), DEMO);
    let objects: Arc<dyn ObjectStore> = h.mem().clone();
    let clock: Arc<dyn Clock> = h.clock.clone();
    let a = lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(30, 0), &quiet())
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let keeper = lease::keep(a.lease, clock.clone(), cancel.clone());
    let (journal, state) = h
        .store
        .create(h.header(Mode::Drill, RUN_ID, Limits::default()), h.clock.now_ms())
        .await
        .unwrap();
    let breaker = {
        let objects = objects.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(300)).await;
            let (body, etag) = lease::read(&objects, RUN_ID).await.unwrap().unwrap();
            lease::break_lease(&objects, &body, &etag).await.unwrap();
            clock.now()
        })
    };
    let report = execute(Execution {
        plan: h.plan.clone(),
        journal,
        state,
        ports: h.ports(),
        settings: Settings { scan_segments: 4, ..Settings::default() },
        cancel: cancel.clone(),
        observer: Arc::new(Silent),
        hooks: None,
    })
    .await
    .unwrap();
    let broken_at = breaker.await.unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted);
    assert!(keeper.lost().unwrap().contains("broken with `drover unlock`"));
    keeper.release().await.unwrap();
    let entries = entries_in(h.mem(), RUN_ID);
    let interrupted = entries
        .iter()
        .find(|e| matches!(e.record, Record::Run { event: RunEvent::Interrupted }))
        .unwrap();
    assert!(
        (broken_at..=broken_at + 10_000).contains(&interrupted.at),
        "stopped {} ms after the break",
        interrupted.at - broken_at
    );

    let b = lease::acquire(&objects, RUN_ID, holder("bob", 9), &clock, taking(30, 0), &quiet())
        .await
        .unwrap();
    let report = h.resume(RUN_ID, Limits::default()).await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.state.interruptions, 1);
    assert_clean_drill(&h, "resumed after the lease was broken");
    b.lease.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn release_deletes_the_lease_but_not_one_taken_over() {
    let (_, objects, clock) = bucket();
    let a = lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(3, 0), &quiet())
        .await
        .unwrap();
    a.lease.release().await.unwrap();
    assert_eq!(current_lease(&objects).await, None);

    // Renewing works while the lease is this process's...
    let mut a =
        lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(3, 0), &quiet())
            .await
            .unwrap()
            .lease;
    a.renew(clock.as_ref()).await.unwrap();
    assert_eq!(a.body().renewals, 1);
    // ...then alice's process pauses past expiry, and bob takes the run over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let b = lease::acquire(&objects, RUN_ID, holder("bob", 9), &clock, taking(3, 0), &quiet())
        .await
        .unwrap();
    assert_eq!(b.took_over.as_ref().map(|l| l.lease.as_str()), Some(a.body().lease.as_str()));
    let renewed = a.renew(clock.as_ref()).await;
    assert!(matches!(renewed, Err(LeaseError::Lost { .. })), "{renewed:?}");
    let released = a.release().await;
    let Err(LeaseError::Lost { run }) = &released else { panic!("{released:?}") };
    assert_eq!(run, RUN_ID);
    assert!(released.unwrap_err().to_string().contains("taken over"));
    assert_eq!(
        current_lease(&objects).await,
        Some(b.lease.body().lease.clone()),
        "bob's lease kept"
    );
    b.lease.release().await.unwrap();
    assert_eq!(current_lease(&objects).await, None);
}

/// S3 applied the renewal, its answer was lost, and the SDK's retry failed `If-Match` against
/// the renewal itself. The lease is still this process's: the renewal must not say Lost.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_to_a_renewal_keeps_the_lease() {
    let (mem, objects, clock) = bucket();
    let mut a =
        lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(30, 0), &quiet())
            .await
            .unwrap()
            .lease;
    mem.lose_answers_then_retry(1);
    let renewed = a.renew(clock.as_ref()).await;
    assert_eq!(mem.answers_lost(), 1);
    assert!(renewed.is_ok(), "its own renewal taken for a takeover: {renewed:?}");
    a.renew(clock.as_ref()).await.unwrap();
    a.release().await.unwrap();
    assert_eq!(current_lease(&objects).await, None);
}

/// The same on taking a free run: the lease written is this process's own.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_to_an_acquire_does_not_hold_the_run_against_itself() {
    let (mem, objects, clock) = bucket();
    mem.lose_answers_then_retry(1);
    let got =
        lease::acquire(&objects, RUN_ID, holder("alice", 7), &clock, taking(30, 0), &quiet()).await;
    assert_eq!(mem.answers_lost(), 1);
    let got = got.unwrap_or_else(|e| panic!("refused its own lease: {e}"));
    assert_eq!(current_lease(&objects).await, Some(got.lease.body().lease.clone()));
}
