//! Benchmark: validate and outline a generated plan of 10,000 tables and 30,000 dependency
//! edges in two targets (the goal: under 0.5 s and 200 MB peak, release build).
//!
//! Run with `cargo bench -p drover-plan --bench plan`; results go to docs/performance.md.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use drover_plan::{Mode, Outline};

const TABLES: usize = 10_000;
const EDGES: usize = 30_000;
const RUNS: usize = 7;

/// A deterministic generator (SplitMix64), so every run measures the same plan.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// A plan whose table `i` depends on tables chosen among the 500 before it (so it is acyclic
/// and deep), `EDGES` dependencies in all.
fn generate() -> String {
    let mut rng = Rng(42);
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); TABLES];
    let mut edges = 0;
    while edges < EDGES {
        let i = 1 + rng.below(TABLES - 1);
        let j = i - 1 - rng.below(i.min(500));
        if !deps[i].contains(&j) {
            deps[i].push(j);
            edges += 1;
        }
    }
    let mut out = String::from(
        "version: 1\nname: bench\nsource:\n  region: us-east-1\n  account_id: \"123456789012\"\n  backup_vault: prod-vault\n\
         iam_role_arn: arn:aws:iam::123456789012:role/drover-backup\nobjectives: {rpo: 1h, rto: 4h}\ntargets:\n\
         \x20 - region: us-west-2\n    backup_vault: dr-usw2\n    kms_key_arn: arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\n\
         \x20 - region: eu-west-1\n    backup_vault: dr-euw1\n    kms_key_arn: arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\n\
         defaults:\n  point_in_time_recovery: true\n  tags: {team: bench}\ntables:\n",
    );
    for (i, d) in deps.iter().enumerate() {
        let _ = writeln!(out, "  - name: table-{i:05}");
        if !d.is_empty() {
            let names: Vec<String> = d.iter().map(|j| format!("table-{j:05}")).collect();
            let _ = writeln!(out, "    depends_on: [{}]", names.join(", "));
        }
        if i % 3 == 0 {
            let _ = writeln!(out, "    ttl_attribute: expires_at\n    stream: NEW_AND_OLD_IMAGES");
        }
        if i % 7 == 0 {
            let _ =
                writeln!(out, "    validate: {{min_items: 1, canary_keys: [{{pk: \"K#{i}\"}}]}}");
        }
    }
    out
}

/// Peak resident set size of this process so far (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[allow(clippy::print_stdout)]
fn main() {
    let text = generate();
    // `cargo bench -p drover-plan --bench plan -- --write PATH` also saves the plan, to time
    // the release binary on it.
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1))
        && let Err(e) = std::fs::write(path, &text)
    {
        println!("cannot write {path}: {e}");
        std::process::exit(1);
    }
    let rss_before = peak_rss_mib().unwrap_or(0.0);
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut waves = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let loaded = drover_plan::load("bench.yaml", text.as_bytes());
        let Some(plan) = loaded.plan else {
            println!("the generated plan is invalid: {:?}", loaded.diagnostics.items().first());
            std::process::exit(1);
        };
        let outline = Outline::new(&plan, Mode::Drill);
        let json = serde_json::to_string(&outline).unwrap_or_default();
        times.push(start.elapsed());
        waves = outline.targets[0].waves.len();
        assert!(!json.is_empty());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "plan: {TABLES} tables, {EDGES} dependency edges, 2 targets, {} bytes of YAML",
        text.len()
    );
    println!("validate + plan (load, graph, waves, critical path, JSON outline), {RUNS} runs:");
    println!(
        "  min {:.1} ms, median {:.1} ms, max {:.1} ms  ({waves} waves in us-west-2)",
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS - 1])
    );
    println!(
        "  peak RSS of the whole process {:.1} MiB (after generating the text: {rss_before:.1} MiB)",
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}
