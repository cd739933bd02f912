//! drover's benchmark suite (results in docs/performance.md):
//!
//! ```sh
//! cargo run --release -p drover-bench                 # everything on the simulator
//! cargo run --release -p drover-bench -- --quick      # 10- and 100-table plans only
//! cargo run --release -p drover-bench -- --emulator   # also validation throughput on the emulator
//! cargo run --release -p drover-bench -- --realism    # only: API calls of a real drill on the emulator
//! cargo run --release -p drover-bench -- --scale      # only: --cloud sim drills of 100 to 10,000 tables
//! ```
//!
//! Generated plans (chain, wide, diamond lattice, random DAG) of 10, 100 and 1,000 tables with
//! heavy-tailed sizes run as drills on the simulator in virtual time, with the simulator's
//! duration model and ±10% noise. For each: the makespan against a lower bound (the larger of
//! the critical path and the quota bound, from the jobs' true durations), a one-table-at-a-time
//! script and a barrier-per-wave run on the same durations, the detection lag, the calls spent,
//! and the RTO estimate's error.
//!
//! `--scale` (`[--quick]`: up to 1,000 tables) runs only the section of `scale.rs`: wall time,
//! peak memory, journal size and `status`/`report` times of `drover drill --cloud sim` through
//! the release binary, as whole processes.
//!
//! `--realism` (`[--seed N] [--job-seconds S]`) runs only the section of `realism.rs`: a
//! seven-table `drover drill` through the release binary against the emulator, in its realism
//! mode and then without it, counted by the emulator's call log (`GET /_drover/calls`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use drover_engine::graph::StepGraph;
use drover_engine::ports::Millis;
use drover_engine::state::{Limits, RunState, StepKey};
use drover_plan::{Mode, Plan, StepKind};
use drover_sim::estimate::{Sizes, estimate, simulate_with};
use drover_sim::{DurationModel, JobKind, SimCloud};

mod realism;
mod scale;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Chain,
    Wide,
    Diamond,
    Random,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Wide => "wide",
            Shape::Diamond => "diamond lattice",
            Shape::Random => "random DAG",
        }
    }
}

/// A plan of `n` tables in `shape`, and heavy-tailed sizes (Pareto, x_m = 100 MB, α = 1.16,
/// capped at 2 TB).
fn generate(shape: Shape, n: usize, seed: u64) -> (Plan, Sizes) {
    let mut rng = Rng(seed);
    let width = (n as f64).sqrt().ceil() as usize;
    let mut yaml = String::from(
        "version: 1\nname: bench\nsource: {region: us-east-1, account_id: \"123456789012\", backup_vault: src}\n\
         iam_role_arn: arn:aws:iam::123456789012:role/r\ntargets:\n  - {region: us-west-2, backup_vault: dr, \
         kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}\ntables:\n",
    );
    let mut sizes = Sizes::new();
    for i in 0..n {
        let name = format!("t{i:04}");
        let deps: Vec<usize> = match shape {
            Shape::Chain if i > 0 => vec![i - 1],
            Shape::Diamond if i >= width => {
                let layer_start = (i / width - 1) * width;
                let a = layer_start + i % width;
                let b = layer_start + (i + 1) % width;
                if a == b { vec![a] } else { vec![a, b] }
            }
            Shape::Random if i > 0 => {
                let k = rng.below(4);
                let mut d: Vec<usize> = (0..k).map(|_| i - 1 - rng.below(i.min(50))).collect();
                d.sort_unstable();
                d.dedup();
                d
            }
            _ => Vec::new(),
        };
        let _ = writeln!(yaml, "  - name: {name}");
        if !deps.is_empty() {
            let names: Vec<String> = deps.iter().map(|d| format!("t{d:04}")).collect();
            let _ = writeln!(yaml, "    depends_on: [{}]", names.join(", "));
        }
        let pareto = 100e6 / (1.0 - rng.unit()).powf(1.0 / 1.16);
        sizes.insert(name, pareto.min(2e12) as u64);
    }
    let loaded = drover_plan::load("bench.yaml", yaml.as_bytes());
    let Some(plan) = loaded.plan else {
        println!("generated plan is invalid: {:?}", loaded.diagnostics.items().first());
        std::process::exit(1);
    };
    (plan, sizes)
}

/// Greedy list scheduling (longest first) of `durations` on `slots` machines: the makespan.
fn lpt(mut durations: Vec<Millis>, slots: usize) -> Millis {
    durations.sort_unstable_by(|a, b| b.cmp(a));
    let mut machines = vec![0; slots.max(1)];
    for d in durations {
        if let Some(m) = machines.iter_mut().min() {
            *m += d;
        }
    }
    machines.into_iter().max().unwrap_or(0)
}

struct Measured {
    makespan: Millis,
    lower_bound: Millis,
    script: Millis,
    barrier: Millis,
    lags: Vec<f64>,
    polls_per_job: f64,
    calls_per_table: f64,
}

fn measure(plan: &Plan, state: &RunState, sim: &SimCloud, limits: Limits) -> Measured {
    let jobs = sim.with(|w| w.job_times());
    let graph = StepGraph::new(plan, Mode::Drill, false);
    // True durations: the job's for job steps, the journal's otherwise.
    let true_ms = |k: &StepKey| -> Millis {
        let Some(s) = state.steps.get(k) else { return 0 };
        match s.job_ids.last().and_then(|id| jobs.get(id)) {
            Some((_, start, end)) => end - start,
            None => s.began_at.zip(s.ended_at).map_or(0, |(b, e)| e - b),
        }
    };
    let mut finish = vec![0; graph.len()];
    for i in 0..graph.len() {
        let ready = graph.waits(i).iter().map(|(j, _)| finish[*j]).max().unwrap_or(0);
        finish[i] = ready + true_ms(&graph.steps()[i]);
    }
    let critical = finish.iter().copied().max().unwrap_or(0);
    let mut per_class: BTreeMap<&str, Millis> = BTreeMap::new();
    for k in graph.steps() {
        let class = match k.kind {
            StepKind::RecoveryPoint => "backup",
            StepKind::Copy => "copy",
            StepKind::Restore => "restore",
            _ => "table-ops",
        };
        *per_class.entry(class).or_default() += true_ms(k);
    }
    let quota = per_class
        .iter()
        .map(|(c, total)| {
            let limit = match *c {
                "backup" => limits.backups,
                "copy" => limits.copies,
                "restore" => limits.restores,
                _ => limits.table_ops,
            };
            total / limit as Millis
        })
        .max()
        .unwrap_or(0);
    let end = state
        .steps
        .iter()
        .filter(|(k, _)| k.kind == StepKind::Validate)
        .filter_map(|(_, s)| s.ended_at)
        .max()
        .unwrap_or(state.started_at);
    let by_kind = |t: &str, kind: StepKind| {
        let key = StepKey {
            table: t.to_owned(),
            target: (kind != StepKind::RecoveryPoint).then(|| "us-west-2".to_owned()),
            kind,
        };
        true_ms(&key)
    };
    let script: Millis = plan
        .tables
        .iter()
        .map(|t| {
            [
                StepKind::RecoveryPoint,
                StepKind::Copy,
                StepKind::Restore,
                StepKind::Configure,
                StepKind::Validate,
            ]
            .iter()
            .map(|k| by_kind(&t.name, *k))
            .sum::<Millis>()
        })
        .sum();
    let names: Vec<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
    let mut barrier =
        lpt(names.iter().map(|t| by_kind(t, StepKind::RecoveryPoint)).collect(), limits.backups)
            + lpt(names.iter().map(|t| by_kind(t, StepKind::Copy)).collect(), limits.copies);
    let region = plan.targets[0].region.clone();
    for wave in plan.graph.waves(plan, &region) {
        let wave: Vec<&str> = wave.iter().map(|id| plan.table(*id).name.as_str()).collect();
        for (kind, slots) in [
            (StepKind::Restore, limits.restores),
            (StepKind::Configure, limits.table_ops),
            (StepKind::Validate, limits.table_ops),
        ] {
            barrier += lpt(wave.iter().map(|t| by_kind(t, kind)).collect(), slots);
        }
    }
    let mut lags = Vec::new();
    for (k, s) in &state.steps {
        if !matches!(k.kind, StepKind::RecoveryPoint | StepKind::Copy) {
            continue;
        }
        if let (Some((_, start, job_end)), Some(ended)) =
            (s.job_ids.last().and_then(|id| jobs.get(id)), s.ended_at)
        {
            let duration = (job_end - start).max(1);
            lags.push((ended - job_end).max(0) as f64 / duration as f64);
        }
    }
    let calls = sim.with(|w| w.calls.clone());
    let polls: u64 = ["DescribeBackupJob", "DescribeCopyJob", "DescribeRestoreJob"]
        .iter()
        .filter_map(|op| calls.get(*op))
        .sum();
    Measured {
        makespan: end - state.started_at,
        lower_bound: critical.max(quota),
        script,
        barrier,
        lags,
        polls_per_job: polls as f64 / jobs.len().max(1) as f64,
        calls_per_table: calls.values().sum::<u64>() as f64 / plan.tables.len() as f64,
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn hours(ms: Millis) -> String {
    format!("{:.1}h", ms as f64 / 3_600_000.0)
}

fn schedule_suite(sizes_to_run: &[usize]) {
    let limits = Limits::default();
    let noisy = DurationModel::default();
    let noiseless = DurationModel { noise: 0.0, ..noisy };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    println!("## Schedule efficiency, detection lag, API economy, estimate accuracy\n");
    println!(
        "| shape | tables | makespan | lower bound | efficiency | script / LB | barrier / LB | lag (median) | polls/job | calls/table | estimate error |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (mut effs, mut lags, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for &n in sizes_to_run {
        for shape in [Shape::Chain, Shape::Wide, Shape::Diamond, Shape::Random] {
            let (plan, sizes) = generate(shape, n, 7 + n as u64);
            let started = Instant::now();
            let (state, sim) = rt
                .block_on(simulate_with(&plan, Mode::Drill, &sizes, noisy, limits, 11, false))
                .unwrap_or_else(|e| panic!("{} {n}: {e}", shape.name()));
            let m = measure(&plan, &state, &sim, limits);
            let est = estimate(&plan, Mode::Drill, &sizes, noiseless, limits).expect("estimate");
            let eff = m.makespan as f64 / m.lower_bound as f64;
            let err = (est.rto_ms - m.makespan).abs() as f64 / m.makespan as f64;
            let mut l = m.lags.clone();
            let lag = median(&mut l);
            effs.push(eff);
            lags.extend(m.lags.iter().copied());
            errors.push(err);
            println!(
                "| {} | {n} | {} | {} | {eff:.3} | {:.2} | {:.2} | {:.2}% | {:.1} | {:.1} | {:.1}% |",
                shape.name(),
                hours(m.makespan),
                hours(m.lower_bound),
                m.script as f64 / m.lower_bound as f64,
                m.barrier as f64 / m.lower_bound as f64,
                lag * 100.0,
                m.polls_per_job,
                m.calls_per_table,
                err * 100.0,
            );
            eprintln!("  ({} {n}: {:.1}s of CPU)", shape.name(), started.elapsed().as_secs_f64());
        }
    }
    let worst = effs.iter().copied().fold(0.0, f64::max);
    let worst_err = errors.iter().copied().fold(0.0, f64::max);
    println!(
        "\nefficiency: median {:.3}, worst {worst:.3}; detection lag: median {:.2}% of the job's duration; \
         estimate error: median {:.1}%, worst {:.1}%",
        median(&mut effs),
        median(&mut lags) * 100.0,
        median(&mut errors) * 100.0,
        worst_err * 100.0
    );
}

/// Polls of one job of about an hour (a single 89 GB table restored).
fn one_hour_job() {
    let (plan, _) = generate(Shape::Wide, 1, 1);
    let model = DurationModel { noise: 0.0, ..DurationModel::default() };
    // restore: 300 s + bytes / 25 MB/s = 3600 s at 82.5 GB.
    let sizes = Sizes::from([("t0000".to_owned(), 82_500_000_000)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (_, sim) = rt
        .block_on(simulate_with(&plan, Mode::Failover, &sizes, model, Limits::default(), 1, false))
        .expect("run");
    let calls = sim.with(|w| w.calls.clone());
    let jobs = sim.with(|w| w.job_times());
    let (_, (_, start, end)) =
        jobs.iter().find(|(_, (k, _, _))| *k == JobKind::Restore).expect("restore job");
    println!(
        "\n## One job of {:.0} minutes\n\nDescribeRestoreJob calls: {}\n",
        (end - start) as f64 / 60_000.0,
        calls.get("DescribeRestoreJob").copied().unwrap_or(0)
    );
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A 1,000-table drill with zero-duration jobs, in this (fresh) process: wall time and peak
/// memory, with the journal durable (fsync) or not.
fn overhead_child(durable: bool) {
    let (plan, sizes) = generate(Shape::Random, 1000, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (state, _) = rt
        .block_on(simulate_with(
            &plan,
            Mode::Drill,
            &sizes,
            DurationModel::instant(),
            Limits::default(),
            1,
            durable,
        ))
        .expect("run");
    let wall = started.elapsed();
    println!("{:.3} {:.1} {}", wall.as_secs_f64(), peak_rss_mib(), state.records);
}

fn overhead() {
    println!("## Overhead: a 1,000-table drill with zero-duration jobs\n");
    println!("| journal | wall time | peak RSS | records |\n|---|---|---|---|");
    for durable in [true, false] {
        let exe = std::env::current_exe().expect("exe");
        let out = std::process::Command::new(exe)
            .arg(if durable { "--overhead-child-durable" } else { "--overhead-child-volatile" })
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let parts: Vec<&str> = text.split_whitespace().collect();
        if let [wall, rss, records] = parts.as_slice() {
            println!(
                "| {} | {wall} s | {rss} MiB | {records} |",
                if durable { "durable (fsync per record)" } else { "volatile" }
            );
        } else {
            println!("| {durable} | failed: {} |", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn validation_throughput(emulator: bool) {
    println!("\n## Validation throughput (parallel segmented scan, Select=COUNT)\n");
    let model = DurationModel::default();
    println!("simulator (modelled, {} MB/s per segment, 200-byte items):", model.scan_mb_s);
    for segments in [1u32, 2, 4, 8, 16] {
        let items_s = model.scan_mb_s * f64::from(segments) * 1e6 / 200.0;
        println!("  {segments:>2} segments: {items_s:>12.0} items/s");
    }
    if emulator {
        match emulator_throughput() {
            Ok(lines) => println!("emulator (moto over HTTP, this machine):\n{lines}"),
            Err(e) => println!("emulator: not measured: {e}"),
        }
    }
}

/// Seeds a table in the emulator and counts it with the AWS adapter at growing segments.
fn emulator_throughput() -> Result<String, String> {
    use drover_engine::ports::TableService;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = std::process::Command::new("bash")
        .arg(root.join("tests/emulator/setup.sh"))
        .output()
        .map_err(|e| e.to_string())?;
    let python = String::from_utf8_lossy(&py.stdout).trim().to_owned();
    let dir = std::env::temp_dir().join(format!("drover-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port_file = dir.join("port");
    let mut server = std::process::Command::new(&python)
        .arg(root.join("tests/emulator/drover_moto.py"))
        .args(["--port", "0", "--port-file", port_file.to_str().unwrap_or_default()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let port = loop {
        if let Some(p) =
            std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok())
        {
            break p;
        }
        if started.elapsed().as_secs() > 60 {
            let _ = server.kill();
            return Err("the emulator did not start".to_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let items = 20_000;
    let spec = serde_json::json!({"source": "us-east-1", "targets": [], "source_vault": "v", "target_vaults": {}, "tables": [{"name": "bench", "items": items}]});
    let mut seed = std::process::Command::new(&python)
        .arg(root.join("tests/emulator/fixture.py"))
        .args(["seed", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = seed.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(spec.to_string().as_bytes());
    }
    let _ = seed.wait();
    let aws = drover_aws::AwsCloud::new(drover_aws::AwsOptions {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        emulator_credentials: true,
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    for segments in [1u32, 2, 4, 8, 16] {
        let t = Instant::now();
        let n = rt
            .block_on(aws.count_items(
                "us-east-1",
                "bench",
                &drover_engine::ports::ScanOptions::unpaced(segments),
            ))
            .map_err(|e| e.to_string())?;
        let _ = writeln!(
            out,
            "  {segments:>2} segments: {:>12.0} items/s ({n} items in {:.2}s)",
            n as f64 / t.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    if has(scale::CHILD_FLAG) {
        return scale::measure_child(&args);
    }
    if has("--overhead-child-durable") {
        return overhead_child(true);
    }
    if has("--overhead-child-volatile") {
        return overhead_child(false);
    }
    println!(
        "# drover benchmark ({} cores)\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    if has("--realism") {
        println!("## AWS realism: API calls per table and polls per job\n");
        match realism::run(&realism::Options::from_args(&args)) {
            Ok(tables) => println!("{tables}"),
            Err(e) => {
                println!("not measured: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if has("--scale") {
        println!("## The embedded default at scale, through the release binary\n");
        match scale::suite(has("--quick")) {
            Ok(table) => println!("{table}"),
            Err(e) => {
                println!("not measured: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let sizes: &[usize] = if has("--quick") { &[10, 100] } else { &[10, 100, 1000] };
    schedule_suite(sizes);
    one_hour_job();
    overhead();
    validation_throughput(has("--emulator"));
}
