//! The hook runner of real runs (`drover_engine::hooks::HookRunner`): each hook a process
//! (argv, no shell) in its own process group, started in the plan file's directory with the
//! environment drover runs in plus the `DROVER_*` variables, its stdout and stderr captured
//! together and bounded, killed with its whole group at its timeout.
//!
//! Processes are waited for on a blocking thread against the wall clock: a simulated run's
//! tokio clock is paused and would otherwise jump straight to the timeout.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use drover_engine::hooks::{Bounded, HookCall, HookOutcome, HookRunner, OUTPUT_LIMIT};

/// Runs hooks as processes.
pub(crate) struct ProcessHooks {
    /// Where hooks start: the plan file's directory.
    dir: PathBuf,
}

impl ProcessHooks {
    /// Hooks of the plan at `plan_path` (relative programs such as `./smoke/x.sh` are found
    /// from its directory).
    pub(crate) fn new(plan_path: &std::path::Path) -> ProcessHooks {
        let dir = plan_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
        ProcessHooks { dir }
    }
}

#[async_trait]
impl HookRunner for ProcessHooks {
    async fn run(&self, call: &HookCall) -> HookOutcome {
        let call = call.clone();
        let dir = self.dir.clone();
        let name = call.name.clone();
        // When the run stops (Ctrl-C drops this future), the hook is killed too: it runs in a
        // process group of its own, which the terminal's SIGINT does not reach.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        match tokio::task::spawn_blocking(move || run_blocking(&call, &dir, &stop)).await {
            Ok(outcome) => outcome,
            Err(e) => HookOutcome {
                name,
                exit_code: None,
                timed_out: false,
                error: Some(format!("the hook's thread stopped: {e}")),
                output: String::new(),
                truncated_bytes: 0,
                duration_ms: 0,
            },
        }
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How long the output of a hook that ended is waited for: a process that left the hook's
/// group may hold its pipes open for ever.
const DRAIN: Duration = Duration::from_secs(2);

fn run_blocking(call: &HookCall, dir: &std::path::Path, stop: &AtomicBool) -> HookOutcome {
    let started = Instant::now();
    let failed = |error: String| HookOutcome {
        name: call.name.clone(),
        exit_code: None,
        timed_out: false,
        error: Some(error),
        output: String::new(),
        truncated_bytes: 0,
        duration_ms: 0,
    };
    let Some((program, args)) = call.argv.split_first() else {
        return failed("the hook has no program".to_owned());
    };
    // The tables file lives as long as the hook runs.
    let tables = match &call.tables_json {
        Some(json) => {
            match tempfile::Builder::new().prefix("drover-tables-").suffix(".json").tempfile() {
                Ok(mut f) => {
                    if let Err(e) = std::io::Write::write_all(&mut f, json.as_bytes()) {
                        return failed(format!("could not write the tables file: {e}"));
                    }
                    Some(f)
                }
                Err(e) => return failed(format!("could not create the tables file: {e}")),
            }
        }
        None => None,
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .envs(&call.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(f) = &tables {
        cmd.env("DROVER_TABLES_JSON", f.path());
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return failed(format!("`{program}` could not be started in {}: {e}", dir.display()));
        }
    };
    let output = Arc::new(Mutex::new(Bounded::new(OUTPUT_LIMIT)));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut pipe| {
        let output = Arc::clone(&output);
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut out) = output.lock() {
                    out.push(&buf[..n]);
                }
            }
            let _ = done.send(());
        })
    })
    .collect();
    drop(done_tx);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= call.timeout || stop.load(Ordering::Relaxed) => {
                timed_out = started.elapsed() >= call.timeout;
                kill_group(child.id());
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // Whatever the hook left running holds the pipes: its group is killed once it exits.
    kill_group(child.id());
    let deadline = Instant::now() + DRAIN;
    let mut drained = 0;
    while drained < readers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
        drained += 1;
    }
    let complete = drained == readers.len();
    if complete {
        for r in readers {
            let _ = r.join();
        }
    }
    let (mut text, dropped) = output.lock().map(|b| b.clone().finish()).unwrap_or_default();
    if !complete {
        text.push_str("\n[output incomplete: a process outside the hook's group holds it open]");
    }
    HookOutcome {
        name: call.name.clone(),
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        error: None,
        output: text,
        truncated_bytes: dropped,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Kills the hook's process group (the hook and whatever it started), through kill(1): drover
/// has no unsafe code to call kill(2) with.
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
