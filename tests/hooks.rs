//! Validation hooks through the real binary (docs/hooks.md), on the simulated cloud: real
//! processes, their environment and tables file, a failing hook that blocks its dependents, a
//! hanging hook killed at its timeout, a hook that prints megabytes, and SIGKILL during a hook
//! followed by `resume`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{drover, repo_root, wait};

/// The demo plan with hooks: `orders` runs `table_hooks`, every target `app-smoke`, and the run
/// `ticket`; each hook script is written next to the plan.
struct Hooked {
    dir: tempfile::TempDir,
    plan: PathBuf,
}

fn hooked(orders_hooks: &[(&str, &str, &str)]) -> Hooked {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(repo_root().join("plans/demo.yaml")).unwrap();
    let mut hooks = String::from("      hooks:\n");
    for (name, script, timeout) in orders_hooks {
        script_file(dir.path(), name, script);
        hooks.push_str(&format!(
            "        - {{name: {name}, run: [\"./{name}.sh\", \"--strict\"], timeout: {timeout}}}\n"
        ));
    }
    let with_table_hooks = demo.replacen(
        "        - {pk: \"ORDER#1\", sk: \"META\"}\n",
        &format!("        - {{pk: \"ORDER#1\", sk: \"META\"}}\n{hooks}"),
        1,
    );
    assert_ne!(with_table_hooks, demo, "the demo plan changed: the test's hooks found no place");
    script_file(dir.path(), "app-smoke", "echo app smoke in $DROVER_REGION >> \"$OUT/calls\"");
    script_file(dir.path(), "ticket", "echo ticket $DROVER_OUTCOME >> \"$OUT/calls\"");
    let yaml = format!(
        "{with_table_hooks}hooks:\n  after_target: [{{name: app-smoke, run: [\"./app-smoke.sh\"]}}]\n  after_run: [{{name: ticket, run: [\"./ticket.sh\"]}}]\n"
    )
    .replace("# yaml-language-server: $schema=../crates/drover-plan/schema/plan.schema.json\n", "");
    let plan = dir.path().join("shop-hooks.yaml");
    std::fs::write(&plan, yaml).unwrap();
    Hooked { dir, plan }
}

/// A `#!/bin/sh` script `dir/name.sh` running `body` (`$OUT` is its directory).
fn script_file(dir: &Path, name: &str, body: &str) {
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\nOUT=\"$(dirname \"$0\")\"\n{body}\n")).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
}

impl Hooked {
    fn state(&self) -> String {
        self.dir.path().join("state").to_str().unwrap().to_owned()
    }

    fn drill(&self, id: &str) -> crate::common::Run {
        drover(&[
            "drill",
            self.plan.to_str().unwrap(),
            "--cloud",
            "sim",
            "--sim-speed",
            "max",
            "--run-id",
            id,
            "--state-dir",
            &self.state(),
        ])
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn report(&self, id: &str) -> Value {
        let run = drover(&["report", id, "--format", "json", "--state-dir", &self.state()]);
        serde_json::from_str(&run.stdout).unwrap()
    }

    fn journal(&self, id: &str) -> String {
        std::fs::read_to_string(
            Path::new(&self.state()).join("runs").join(id).join("journal.jsonl"),
        )
        .unwrap()
    }
}

fn step<'a>(report: &'a Value, table: &str, kind: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .and_then(|t| t["steps"].as_array().unwrap().iter().find(|s| s["step"] == kind))
        .unwrap_or_else(|| panic!("no {kind} of {table}: {report}"))
}

#[test]
fn a_passing_hook_sees_the_restored_tables_and_a_failing_one_blocks_its_dependents() {
    let h = hooked(&[
        (
            "read-an-order",
            // Records what it was told, and checks the tables file names every table.
            "env | grep '^DROVER_' | sort > \"$OUT/env\"; cp \"$DROVER_TABLES_JSON\" \"$OUT/tables.json\"; \
             echo \"args: $*\" >> \"$OUT/calls\"",
            "1m",
        ),
        ("list-orders", "echo 'order ORDER#2 not found through the API' >&2; exit 3", "1m"),
    ]);
    let id = "shop-demo-20261124t000000z-ee000001";
    let run = h.drill(id);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let env = std::fs::read_to_string(h.dir.path().join("env")).unwrap();
    for var in [
        format!("DROVER_RUN_ID={id}"),
        "DROVER_MODE=drill".to_owned(),
        "DROVER_PLAN=shop-demo".to_owned(),
        "DROVER_REGION=us-west-2".to_owned(),
        "DROVER_TABLE=orders".to_owned(),
        "DROVER_RESTORED_TABLE=orders-drill-ee000001".to_owned(),
    ] {
        assert!(env.contains(&var), "{var} missing from\n{env}");
    }
    let tables: Value =
        serde_json::from_str(&std::fs::read_to_string(h.dir.path().join("tables.json")).unwrap())
            .unwrap();
    assert_eq!(tables["tables"].as_object().unwrap().len(), 4, "{tables}");
    assert_eq!(tables["tables"]["customers"]["restored_name"], "customers-drill-ee000001");
    assert!(
        tables["tables"]["orders"]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":table/orders-drill-ee000001")
    );
    assert_eq!(tables["tables"]["invoices"]["arn"], Value::Null, "invoices is not restored yet");
    assert_eq!(h.calls()[0], "args: --strict");

    let report = h.report(id);
    let validate = step(&report, "orders", "validate");
    assert_eq!(validate["phase"], "failed");
    let why = validate["detail"].as_str().unwrap();
    assert!(
        why.contains("hook `list-orders` failed: exit 3") && why.contains("ORDER#2 not found"),
        "{why}"
    );
    assert_eq!(step(&report, "invoices", "restore")["phase"], "blocked");
    // `status` shows the target's hooks step (table `*`), blocked.
    let status = drover(&["status", id, "--state-dir", &h.state()]);
    assert!(status.stdout.contains("HOOKS"), "{}", status.stdout);
    let row = status.stdout.lines().find(|l| l.starts_with("* ")).unwrap_or_default();
    assert!(row.contains("us-west-2") && row.trim_end().ends_with("blocked"), "{}", status.stdout);
    // The after_target hook needs every table validated: it did not run; after_run did.
    assert!(!h.calls().iter().any(|c| c.starts_with("app smoke")), "{:?}", h.calls());
    assert!(h.calls().contains(&"ticket failed".to_owned()), "{:?}", h.calls());
}

#[test]
fn a_hanging_hook_is_killed_at_its_timeout_and_megabytes_of_output_are_truncated() {
    let h = hooked(&[
        (
            "chatty",
            "i=0; while [ $i -lt 60000 ]; do echo \"line $i of a very chatty hook\"; i=$((i+1)); done; echo THE-END",
            "1m",
        ),
        // A child that would keep the pipes open: killed with the group.
        ("hangs", "sleep 600 & sleep 600", "2s"),
    ]);
    let id = "shop-demo-20261124t000000z-ee000002";
    let started = Instant::now();
    let run = h.drill(id);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    let report = h.report(id);
    let why = step(&report, "orders", "validate")["detail"].as_str().unwrap().to_owned();
    assert!(why.contains("hook `hangs` failed: killed at its timeout of 2s"), "{why}");
    // The chatty hook's 2 MB are in the journal as about 8 KiB, its end kept.
    let journal = h.journal(id);
    let line =
        journal.lines().find(|l| l.contains("\"hook-finished\"") && l.contains("chatty")).unwrap();
    assert!(line.len() < 12_000, "{} bytes", line.len());
    assert!(line.contains("THE-END") && line.contains("bytes left out"), "{}", &line[..300]);
    let hooked_process_left = Command::new("pgrep").args(["-f", "sleep 600"]).output().unwrap();
    assert!(hooked_process_left.stdout.is_empty(), "the hook's child survived its timeout");
}

#[test]
fn sigkill_during_a_hook_then_resume_runs_the_hook_again_without_repeating_the_step() {
    let h = hooked(&[(
        "slow",
        "echo started >> \"$OUT/slow\"; sleep 3; echo finished >> \"$OUT/slow\"",
        "1m",
    )]);
    let id = "shop-demo-20261124t000000z-ee000003";
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_drover"))
            .current_dir(repo_root())
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let state = h.state();
    let plan = h.plan.to_str().unwrap();
    let mut child = spawn(&[
        "drill",
        plan,
        "--cloud",
        "sim",
        "--sim-speed",
        "max",
        "--run-id",
        id,
        "--state-dir",
        &state,
    ]);
    let slow = h.dir.path().join("slow");
    let began = Instant::now();
    while !std::fs::read_to_string(&slow).unwrap_or_default().contains("started") {
        assert!(began.elapsed() < Duration::from_secs(60), "the hook never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut resumed = spawn(&["resume", id, "--state-dir", &state]);
    assert_eq!(wait(&mut resumed, Duration::from_secs(120)), Some(0));
    let runs: Vec<String> =
        std::fs::read_to_string(&slow).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(runs.iter().filter(|l| *l == "started").count(), 2, "{runs:?}");
    // The step was not repeated: one restore job per table, one validation success of orders.
    let world: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&state).join("runs").join(id).join("sim.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(world["jobs_started"]["restore"], 4, "{}", world["jobs_started"]);
    let journal = h.journal(id);
    let validated = journal
        .lines()
        .filter(|l| {
            l.contains("\"table\":\"orders\"")
                && l.contains("\"kind\":\"validate\"")
                && l.contains("\"event\":\"succeeded\"")
        })
        .count();
    assert_eq!(validated, 1);
    assert!(h.calls().contains(&"ticket succeeded".to_owned()), "{:?}", h.calls());
}
