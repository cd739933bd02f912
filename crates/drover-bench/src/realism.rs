//! API calls per table and polls per job of a real drill against the AWS emulator (issue 11).
//!
//! Starts the emulator (tests/emulator/drover_moto.py) on 127.0.0.1, in realism mode with a
//! fixed seed and then without it, seeds the seven-table plan of tests/aws.rs's
//! `seven_tables_drill_then_backup_then_failover_in_realism_mode` (dependencies, PITR, TTL,
//! streams, tags, the drill marker and digests), runs `drover drill` through the release binary
//! and reads the emulator's call log (`GET /_drover/calls`) before and after it. The emulator
//! is stopped at the end, also when something fails (`Server`'s `Drop`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";
const TABLES: usize = 7;
/// Longest a drill may take before it is stopped (the bench stays bounded).
const DRILL_LIMIT: Duration = Duration::from_secs(600);
/// What the bench passes to every drill: the emulator's backups miss the last second's
/// writes, so the marker and the digests need the backup to wait a little longer than that.
const DRILL_ARGS: [&str; 2] = ["--backup-settle", "2s"];

/// The options of the realism section.
pub(crate) struct Options {
    /// Realism mode's seed.
    pub(crate) seed: u64,
    /// The emulator's job duration (`--job-seconds`).
    pub(crate) job_seconds: f64,
}

impl Options {
    /// `--seed N` (default 1, as the Rust end-to-end tests) and `--job-seconds S` (default 2).
    pub(crate) fn from_args(args: &[String]) -> Options {
        let value =
            |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        Options {
            seed: value("--seed").and_then(|s| s.parse().ok()).unwrap_or(1),
            job_seconds: value("--job-seconds").and_then(|s| s.parse().ok()).unwrap_or(2.0),
        }
    }
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The emulator's python (the virtualenv of tests/emulator/setup.sh).
fn python() -> Result<String, String> {
    let out = Command::new("bash")
        .arg(root().join("tests/emulator/setup.sh"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("tests/emulator/setup.sh: {e}"))?;
    if !out.status.success() {
        return Err("tests/emulator/setup.sh failed".to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The release `drover` binary next to this one. When run by cargo, it is (re)built first
/// (`cargo build --release --locked -p drover` into this binary's target directory, a no-op when
/// it is up to date), so that the drill measures the sources it sits with.
pub(crate) fn drover_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory for the bench binary")?.to_path_buf();
    let drover = dir.join(format!("drover{}", std::env::consts::EXE_SUFFIX));
    if let (Ok(cargo), Some(target)) = (std::env::var("CARGO"), dir.parent()) {
        let mut build = Command::new(cargo);
        // Without the variables `cargo run` sets for this binary (CARGO_PKG_NAME, ...): build
        // scripts that watch them (ring's) would otherwise rebuild, here and in the next
        // `cargo run`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_"]
                .iter()
                .any(|p| name.starts_with(p))
                || name == "OUT_DIR"
            {
                build.env_remove(name.as_ref());
            }
        }
        let built = build
            .args(["build", "--release", "--locked", "-p", "drover", "--target-dir"])
            .arg(target)
            .current_dir(root())
            .stdin(Stdio::null())
            .status();
        if !built.is_ok_and(|s| s.success()) {
            eprintln!("  (cargo build -p drover failed; using the drover binary already built)");
        }
    }
    if drover.exists() {
        Ok(drover)
    } else {
        Err(format!(
            "no {}: build it with `cargo build --release --locked -p drover`",
            drover.display()
        ))
    }
}

/// An emulator on 127.0.0.1; killed (and its directory removed) when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(
        python: &str,
        realism: Option<u64>,
        job_seconds: f64,
        tag: &str,
    ) -> Result<Server, String> {
        let dir = std::env::temp_dir().join(format!("drover-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let port_file = dir.join("port");
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(python);
        cmd.arg(root().join("tests/emulator/drover_moto.py"))
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .args(["--job-seconds", &job_seconds.to_string()]);
        if let Some(seed) = realism {
            cmd.args(["--realism", "--seed", &seed.to_string()]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start the emulator: {e}"))?;
        let mut server = Server { child, port: 0, dir };
        let started = Instant::now();
        server.port = loop {
            if let Some(p) =
                std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok())
            {
                break p;
            }
            if server.child.try_wait().map_err(|e| e.to_string())?.is_some()
                || started.elapsed() > Duration::from_secs(60)
            {
                return Err(format!("the emulator did not start: {}", server.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(server)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `GET path` on the control API.
    fn get(&self, path: &str) -> Result<Value, String> {
        self.call("GET", path, None)
    }

    /// `METHOD path` on the control API, with a JSON body; the JSON answer (200 only).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("connect to the emulator: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(format!("{method} {path}: {head}\n{body}"));
        }
        serde_json::from_str(body).map_err(|e| format!("{method} {path}: {e}"))
    }

    /// `tests/emulator/fixture.py COMMAND PORT` with `input` as JSON on stdin.
    fn fixture(&self, python: &str, command: &str, input: &Value) -> Result<Value, String> {
        let mut child = Command::new(python)
            .arg(root().join("tests/emulator/fixture.py"))
            .args([command, &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.to_string().as_bytes()).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("fixture.py {command}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("fixture.py {command}: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn seed_spec() -> Value {
    json!({
        "source": SRC,
        "targets": [DST],
        "source_vault": "prod-vault",
        "target_vaults": {DST: "dr-vault"},
        "tables": [
            {"name": "accounts", "items": 12, "canaries": [{"pk": "ACCOUNT#1"}]},
            {"name": "customers", "items": 20, "gsi": true, "canaries": [{"pk": "CUSTOMER#1"}]},
            {"name": "products", "items": 8},
            {"name": "orders", "items": 25, "sort_key": true, "gsi": true, "canaries": [{"pk": "ORDER#1", "sk": "META"}]},
            {"name": "ledger", "items": 9, "key_type": "N", "canaries": [{"pk": "42"}]},
            {"name": "invoices", "items": 10},
            {"name": "shipments", "items": 7, "sort_key": true},
        ],
    })
}

/// The plan of the seven tables: two targets' worth of settings, dependencies five waves deep.
fn plan(key: &str) -> String {
    format!(
        "version: 1
name: seven
source: {{region: {SRC}, account_id: \"123456789012\", backup_vault: prod-vault}}
iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
targets:
  - {{region: {DST}, backup_vault: dr-vault, kms_key_arn: \"{key}\"}}
defaults:
  point_in_time_recovery: true
  tags: {{team: shop}}
  validate: {{digest: true}}
drill: {{write_marker: true}}
tables:
  - name: accounts
    validate: {{min_items: 12, canary_keys: [{{pk: \"ACCOUNT#1\"}}]}}
  - name: customers
    depends_on: [accounts]
    ttl_attribute: expires_at
    validate: {{canary_keys: [{{pk: \"CUSTOMER#1\"}}]}}
  - name: products
    depends_on: [accounts]
    stream: NEW_IMAGE
  - name: orders
    depends_on: [customers, products]
    stream: NEW_AND_OLD_IMAGES
    deletion_protection: true
    tags: {{tier: \"1\"}}
    validate: {{canary_keys: [{{pk: \"ORDER#1\", sk: \"META\"}}]}}
  - name: ledger
    depends_on: [orders]
    validate: {{canary_keys: [{{pk: {{N: \"42\"}}}}]}}
  - name: invoices
    depends_on: [ledger]
    point_in_time_recovery: false
  - name: shipments
    depends_on: [orders]
    ttl_attribute: archived_at
"
    )
}

/// `drover ARGS` with an emulator run's environment (test credentials, no profile files, no
/// instance metadata), bounded by `limit`: (exit code or None if stopped, stdout, stderr).
fn drover(
    bin: &Path,
    args: &[&str],
    dir: &Path,
    limit: Duration,
) -> Result<(Option<i32>, String, String), String> {
    let out_path = dir.join("drover.out");
    let err_path = dir.join("drover.err");
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "drover-bench-secret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&err_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("run {}: {e}", bin.display()))?;
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Ok((code, read(&out_path), read(&err_path)))
}

/// What one drill cost.
struct Measured {
    outcome: String,
    wall: Duration,
    /// Calls answered during the drill, by `service:Operation` (faulted ones included).
    calls: BTreeMap<String, u64>,
    faulted: BTreeMap<String, u64>,
    /// Jobs the drill started, by kind (from the emulator's List*Jobs).
    jobs: BTreeMap<&'static str, u64>,
}

impl Measured {
    fn n(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default()
}

fn minus(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0).min(*n)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Seeds the seven tables, runs the drill, and reads what it cost.
fn drill(python: &str, bin: &Path, server: &Server, tag: &str) -> Result<Measured, String> {
    let seeded = server.fixture(python, "seed", &seed_spec())?;
    let key = seeded["keys"][DST].as_str().ok_or("fixture.py seed gave no target key")?;
    let dir = server.dir.join("run");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let plan_path = dir.join("seven.yaml");
    std::fs::write(&plan_path, plan(key)).map_err(|e| e.to_string())?;
    let plan_path = plan_path.to_string_lossy().into_owned();
    let state = dir.join("state").to_string_lossy().into_owned();
    let url = server.url();
    // A run id ends in an 8-character short id (drill table names carry it).
    let id = format!("seven-20261201t000000z-{:0<8}", tag.get(..8).unwrap_or(tag));
    let before = server.get("/_drover/calls")?;
    let mut args = vec!["drill", &plan_path, "--run-id", &id];
    args.extend(DRILL_ARGS);
    args.extend(["--cloud", "aws", "--endpoint-url", &url, "--state-dir", &state]);
    let started = Instant::now();
    let (code, stdout, stderr) = drover(bin, &args, &dir, DRILL_LIMIT)?;
    let wall = started.elapsed();
    let after = server.get("/_drover/calls")?;
    let outcome = match code {
        None => format!("stopped after {} s", DRILL_LIMIT.as_secs()),
        Some(c) => {
            let (_, report, _) = drover(
                bin,
                &["report", &id, "--format", "json", "--state-dir", &state],
                &dir,
                Duration::from_secs(60),
            )?;
            let report: Value = serde_json::from_str(&report).unwrap_or(Value::Null);
            let outcome = report["outcome"].as_str().unwrap_or("no report").to_owned();
            if c == 0 { outcome } else { format!("{outcome} (exit {c})") }
        }
    };
    if code != Some(0) {
        eprintln!("  drill ({tag}) did not succeed:\n{stdout}\n{stderr}");
    }
    let world = server.fixture(python, "inspect", &json!({"regions": [SRC, DST]}))?;
    let mut jobs = BTreeMap::new();
    for kind in ["backup", "copy", "restore"] {
        let n: u64 = [SRC, DST].iter().map(|r| world[*r]["jobs"][kind].as_u64().unwrap_or(0)).sum();
        jobs.insert(kind, n);
    }
    Ok(Measured {
        outcome,
        wall,
        calls: minus(&counts(&after["by_operation"]), &counts(&before["by_operation"])),
        faulted: minus(&counts(&after["faulted"]), &counts(&before["faulted"])),
        jobs,
    })
}

fn per_table(n: u64) -> f64 {
    n as f64 / TABLES as f64
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 { "—".to_owned() } else { format!("{:.2}", a as f64 / b as f64) }
}

/// One drill of the section: its name, whether the emulator is in realism mode, and the
/// realism knobs set on top of `--realism`'s defaults.
struct Mode {
    name: &'static str,
    tag: &'static str,
    realism: bool,
    knobs: Value,
}

fn modes() -> [Mode; 3] {
    [
        Mode { name: "realism", tag: "realism", realism: true, knobs: json!({}) },
        // Tables that take six times longer to settle after a restore, an update or a delete:
        // more DescribeTable polls of the same tables, the same settings to read.
        Mode {
            name: "realism, slow tables",
            tag: "slowtabl",
            realism: true,
            knobs: json!({"restore_settle": 6.0, "update_seconds": 3.0, "delete_seconds": 6.0}),
        },
        Mode { name: "ideal (realism off)", tag: "ideal", realism: false, knobs: json!({}) },
    ]
}

const SETTINGS_READS: [&str; 3] = [
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ListTagsOfResource",
];

/// The section's Markdown tables.
fn render(opts: &Options, runs: &[(&Mode, Measured)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Seven tables (five waves of dependencies), one target, write_marker and digests on, \
         `drover drill {}`; emulator jobs of {} s; realism seed {}.\n",
        DRILL_ARGS.join(" "),
        opts.job_seconds,
        opts.seed
    );
    for (mode, _) in runs {
        if mode.knobs.as_object().is_some_and(|k| !k.is_empty()) {
            let _ = writeln!(
                out,
                "- {}: `--realism` and `POST /_drover/realism {}`",
                mode.name, mode.knobs
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| mode | outcome | wall time | calls | calls/table | faulted | backup jobs | polls/backup job | copy jobs | polls/copy job | restore jobs | polls/restore job |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (mode, m) in runs {
        let _ = write!(
            out,
            "| {} | {} | {:.1} s | {} | {:.1} | {} |",
            mode.name,
            m.outcome,
            m.wall.as_secs_f64(),
            m.total(),
            per_table(m.total()),
            m.faulted.values().sum::<u64>()
        );
        for (kind, op) in [
            ("backup", "DescribeBackupJob"),
            ("copy", "DescribeCopyJob"),
            ("restore", "DescribeRestoreJob"),
        ] {
            let jobs = m.jobs.get(kind).copied().unwrap_or(0);
            let _ = write!(out, " {jobs} | {} |", ratio(m.n(&format!("backup:{op}")), jobs));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "\nCalls per table by operation (calls / 7; faulted calls included, their number in brackets):\n"
    );
    let head: Vec<&str> = runs.iter().map(|(m, _)| m.name).collect();
    let _ = writeln!(out, "| operation | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(runs.len()));
    let mut ops: Vec<&String> = runs.iter().flat_map(|(_, m)| m.calls.keys()).collect();
    ops.sort();
    ops.dedup();
    ops.sort_by_key(|op| std::cmp::Reverse(runs.iter().map(|(_, m)| m.n(op)).sum::<u64>()));
    for op in ops {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, m)| match m.faulted.get(op.as_str()) {
                Some(f) => format!("{:.2} ({f})", per_table(m.n(op))),
                None => format!("{:.2}", per_table(m.n(op))),
            })
            .collect();
        let _ = writeln!(out, "| `{op}` | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "\nTable polls: a poll is one DescribeTable; the settings and tags are read apart from it:\n"
    );
    let _ = writeln!(out, "| per table | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(runs.len()));
    for op in std::iter::once("dynamodb:DescribeTable").chain(SETTINGS_READS) {
        let cells: Vec<String> =
            runs.iter().map(|(_, m)| format!("{:.2}", per_table(m.n(op)))).collect();
        let _ = writeln!(out, "| `{op}` | {} |", cells.join(" | "));
    }
    let settings = |m: &Measured| SETTINGS_READS.iter().map(|op| m.n(op)).sum::<u64>();
    if let [(_, base), (_, slow), ..] = runs {
        let polls =
            slow.n("dynamodb:DescribeTable").saturating_sub(base.n("dynamodb:DescribeTable"));
        let reads = settings(slow) as f64 - settings(base) as f64;
        let _ = writeln!(
            out,
            "\nSlow tables against realism: {polls} more DescribeTable polls ({:.2} per table), \
             {reads:+} settings and tag reads: {} per extra poll.",
            per_table(polls),
            if polls == 0 { "—".to_owned() } else { format!("{:+.2}", reads / polls as f64) }
        );
    }
    let _ = writeln!(out, "\nJob starts: Start*Job calls (retries included) / jobs started:\n");
    let _ = writeln!(out, "| kind | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(runs.len()));
    for (kind, op) in
        [("backup", "StartBackupJob"), ("copy", "StartCopyJob"), ("restore", "StartRestoreJob")]
    {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, m)| {
                format!(
                    "{} / {}",
                    m.n(&format!("backup:{op}")),
                    m.jobs.get(kind).copied().unwrap_or(0)
                )
            })
            .collect();
        let _ = writeln!(out, "| {kind} | {} |", cells.join(" | "));
    }
    out
}

/// The realism section: the drills, one emulator each (stopped after it, or on failure), then
/// the tables.
pub(crate) fn run(opts: &Options) -> Result<String, String> {
    let bin = drover_binary()?;
    let python = python()?;
    eprintln!(
        "  (drover: {}; realism seed {}, jobs of {} s)",
        bin.display(),
        opts.seed,
        opts.job_seconds
    );
    let modes = modes();
    let mut runs = Vec::new();
    for mode in &modes {
        let server =
            Server::start(&python, mode.realism.then_some(opts.seed), opts.job_seconds, mode.tag)?;
        let measured = server
            .call("POST", "/_drover/realism", Some(&mode.knobs))
            .and_then(|_| drill(&python, &bin, &server, mode.tag))
            .map_err(|e| format!("{}: {e}\n{}", mode.name, server.log()))?;
        eprintln!(
            "  ({}: {:.1} s, {} calls)",
            mode.name,
            measured.wall.as_secs_f64(),
            measured.total()
        );
        runs.push((mode, measured));
        drop(server);
    }
    Ok(render(opts, &runs))
}
