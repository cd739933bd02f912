//! `--scale`: the embedded default at scale, through the release `drover` binary as a whole
//! process (issue 12). Generated plans (a random DAG where each table depends on two random
//! earlier ones, and a wide plan without dependencies) of 100 to 10,000 tables run as
//! `drover drill --cloud sim` drills, unpaced (`--sim-speed max`) and with the default
//! pacing. For each: wall time and peak memory of the process (its maximum resident set, from
//! `getrusage` of a wrapper process that runs only it), per table; the journal's size per
//! table; and the time `drover status` and `drover report` take on the finished run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Rng;
use crate::realism::drover_binary;

/// The flag with which the bench runs itself as the wrapper that measures one process.
pub(crate) const CHILD_FLAG: &str = "--scale-measure-child";

/// What one measured process did.
struct Measured {
    wall: Duration,
    peak_bytes: u64,
    code: i32,
}

/// Runs the command after [`CHILD_FLAG`] and prints its exit code and its peak resident set
/// (bytes): `getrusage(RUSAGE_CHILDREN)` of this process, which has no other child.
pub(crate) fn measure_child(args: &[String]) {
    let Some(at) = args.iter().position(|a| a == CHILD_FLAG) else { return };
    let (Some(program), rest) = (args.get(at + 1), args.get(at + 2..).unwrap_or_default()) else {
        println!("-1 0");
        return;
    };
    let status = Command::new(program)
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .status();
    let code = status.map_or(-1, |s| s.code().unwrap_or(-1));
    let peak = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_or(0, |u| u.max_rss().max(0) as u64 * 1024);
    println!("{code} {peak}");
}

/// Runs `drover args` in a fresh wrapper process and measures it.
fn run(bin: &Path, args: &[&str]) -> Result<Measured, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let out = Command::new(me)
        .arg(CHILD_FLAG)
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().map(str::parse::<i64>);
    let (Some(Ok(code)), Some(Ok(peak))) = (words.next(), words.next()) else {
        return Err(format!("the measuring wrapper said `{}`", text.trim()));
    };
    Ok(Measured { wall, peak_bytes: peak.max(0) as u64, code: code as i32 })
}

/// A plan of `n` tables: `random` (each table after the first two depends on two random
/// earlier ones) or wide; in `targets` target regions.
fn plan_text(n: usize, random: bool, targets: usize, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut yaml = String::from(
        "version: 1\nname: scale\nsource: {region: us-east-1, account_id: \"123456789012\", backup_vault: src}\n\
         iam_role_arn: arn:aws:iam::123456789012:role/r\ntargets:\n",
    );
    for region in ["us-west-2", "eu-west-1"].iter().take(targets) {
        let _ = writeln!(
            yaml,
            "  - {{region: {region}, backup_vault: dr, kms_key_arn: \"arn:aws:kms:{region}:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}"
        );
    }
    yaml.push_str("tables:\n");
    for i in 0..n {
        let _ = writeln!(yaml, "  - name: t{i:05}");
        if random && i >= 2 {
            let a = rng.below(i);
            let mut b = rng.below(i);
            if b == a {
                b = (a + 1) % i;
            }
            let _ = writeln!(yaml, "    depends_on: [t{:05}, t{:05}]", a.min(b), a.max(b));
        }
    }
    yaml
}

struct Case {
    tables: usize,
    random: bool,
    targets: usize,
    paced: bool,
}

struct Row {
    case: Case,
    drill: Measured,
    journal_bytes: u64,
    status: Duration,
    report: Duration,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn one(bin: &Path, dir: &Path, case: Case) -> Result<Row, String> {
    let name = format!(
        "{}-{}-{}t{}",
        case.tables,
        if case.random { "random" } else { "wide" },
        case.targets,
        if case.paced { "-paced" } else { "" }
    );
    let plan = dir.join(format!("{name}.yaml"));
    std::fs::write(&plan, plan_text(case.tables, case.random, case.targets, 7))
        .map_err(|e| e.to_string())?;
    let state = dir.join(&name);
    let (plan_s, state_s) = (plan.to_string_lossy(), state.to_string_lossy());
    let id = "scale-00000001";
    let mut args =
        vec!["drill", &plan_s, "--cloud", "sim", "--run-id", id, "--state-dir", &state_s];
    if !case.paced {
        args.extend(["--sim-speed", "max"]);
    }
    let drill = run(bin, &args)?;
    if drill.code != 0 {
        return Err(format!("the {name} drill exited {}", drill.code));
    }
    let journal = state.join("runs").join(id).join("journal.jsonl");
    let journal_bytes = std::fs::metadata(&journal).map_or(0, |m| m.len());
    let status = run(bin, &["status", id, "--state-dir", &state_s])?.wall;
    let report = run(bin, &["report", id, "--state-dir", &state_s, "--format", "json"])?.wall;
    let _ = std::fs::remove_dir_all(&state);
    Ok(Row { case, drill, journal_bytes, status, report })
}

/// The section's Markdown. `quick`: up to 1,000 tables.
pub(crate) fn suite(quick: bool) -> Result<String, String> {
    let bin = drover_binary()?;
    let dir: PathBuf = std::env::temp_dir().join(format!("drover-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut cases = vec![
        Case { tables: 100, random: true, targets: 1, paced: false },
        Case { tables: 1000, random: true, targets: 1, paced: false },
        Case { tables: 1000, random: true, targets: 2, paced: false },
        Case { tables: 1000, random: true, targets: 2, paced: true },
    ];
    if !quick {
        cases.push(Case { tables: 10_000, random: true, targets: 1, paced: false });
        cases.push(Case { tables: 10_000, random: false, targets: 1, paced: false });
    }
    let mut out = String::from(
        "| plan | targets | pacing | wall | peak memory | wall per table | memory per table | journal per table | status | report |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for case in cases {
        let row = one(&bin, &dir, case)?;
        let n = row.case.tables as f64;
        let _ = writeln!(
            out,
            "| {} tables, {} | {} | {} | {:.2} s | {:.0} MiB | {:.2} ms | {:.1} KiB | {:.2} KiB | {:.2} s | {:.2} s |",
            row.case.tables,
            if row.case.random { "random DAG" } else { "wide" },
            row.case.targets,
            if row.case.paced { "default" } else { "max" },
            row.drill.wall.as_secs_f64(),
            mib(row.drill.peak_bytes),
            row.drill.wall.as_secs_f64() * 1000.0 / n,
            row.drill.peak_bytes as f64 / 1024.0 / n,
            row.journal_bytes as f64 / 1024.0 / n,
            row.status.as_secs_f64(),
            row.report.as_secs_f64(),
        );
        eprintln!("{}", out.lines().last().unwrap_or_default());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}
