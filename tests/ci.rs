//! GitHub Actions through the real binary: the step summary and `::error` annotations of runs
//! and checks, and the workflows of docs/ci.md.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{Run, repo_root};

/// `drover args` with `env` set and any GitHub Actions variables of the test's own
/// environment removed (the tests may themselves run in GitHub Actions).
fn drover_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run drover");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn drill(plan: &str, dir: &Path, id: &str, env: &[(&str, &str)]) -> Run {
    let d = dir.to_str().unwrap();
    drover_env(
        &["drill", plan, "--cloud", "sim", "--sim-speed", "max", "--run-id", id, "--state-dir", d],
        env,
    )
}

fn annotations(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("::error")).collect()
}

/// plans/demo.yaml with a `min_items` no simulated `customers` table reaches.
fn failing_plan(dir: &Path) -> String {
    let text = std::fs::read_to_string(repo_root().join("plans/demo.yaml")).unwrap();
    let text = text.replacen("min_items: 1\n", "min_items: 100000\n", 1);
    let path = dir.join("fail.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_drill_in_github_actions_appends_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "# an earlier step\n").unwrap();
    let s = summary.to_str().unwrap();
    let run = drill(
        "plans/demo.yaml",
        &dir.path().join("state"),
        "ci-summary-0001",
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", s)],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(annotations(&run.stderr).is_empty(), "{}", run.stderr);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("# an earlier step\n"), "{text}");
    for table in ["customers", "products", "orders", "invoices"] {
        assert!(text.contains(&format!("| {table} | us-west-2 | ok |")), "{table}: {text}");
    }
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        filters => vec![
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]"),
            (r"(\| R[TP]O \| [^|]+\| )[^|]+\|", "$1[achieved] |"),
        ],
    }, {
        insta::assert_snapshot!("ci_drill_step_summary", text);
    });
}

#[test]
fn a_failed_drill_annotates_each_failed_table_and_summarises_why() {
    let dir = tempfile::tempdir().unwrap();
    let plan = failing_plan(dir.path());
    let summary = dir.path().join("summary.md");
    let s = summary.to_str().unwrap();
    let env = [("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", s)];
    let run = drover_env(
        &[
            "drill",
            &plan,
            "--cloud",
            "sim",
            "--sim-items",
            "10",
            "--sim-speed",
            "max",
            "--run-id",
            "ci-fail-0001",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let errors = annotations(&run.stderr);
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].starts_with("::error title=drover drill customers in us-west-2::validate: "),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("fewer than the 100000 required"), "{}", errors[0]);
    // Annotations are on stderr: stdout carries only the run's summary table.
    assert!(!run.stdout.contains("::error"), "{}", run.stdout);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("**failed**"), "{text}");
    assert!(text.contains("| customers | us-west-2 | **failed** | validate: "), "{text}");
    assert!(text.contains("| orders | us-west-2 | **blocked** | restore: blocked by"), "{text}");
    assert!(text.contains("| products | us-west-2 | ok |"), "{text}");
}

#[test]
fn outside_github_actions_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let s = summary.to_str().unwrap();
    let plan = failing_plan(dir.path());
    let run =
        drill(&plan, &dir.path().join("state"), "ci-quiet-0001", &[("GITHUB_STEP_SUMMARY", s)]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(annotations(&run.stderr).is_empty(), "{}", run.stderr);
    assert!(!summary.exists());
}

#[test]
fn an_unwritable_summary_warns_once_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be appended to.
    let s = dir.path().to_str().unwrap();
    let run = drill(
        "plans/demo.yaml",
        &dir.path().join("state"),
        "ci-unwritable-0001",
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", s)],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("step summary")).collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].starts_with("warning: "), "{}", warnings[0]);
    // Unset: also one warning.
    let run = drill(
        "plans/demo.yaml",
        &dir.path().join("state2"),
        "ci-unset-0001",
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(run.stderr.matches("GITHUB_STEP_SUMMARY is not set").count(), 1, "{}", run.stderr);
}

#[test]
fn a_failing_check_annotates_each_failed_finding() {
    let dir = tempfile::tempdir().unwrap();
    // Simulated recovery points are 30 minutes old: beyond an RPO of 10 minutes.
    let text = std::fs::read_to_string(repo_root().join("plans/demo.yaml")).unwrap();
    let plan = dir.path().join("rpo.yaml");
    std::fs::write(&plan, text.replacen("rpo: 1h", "rpo: 10m", 1)).unwrap();
    let summary = dir.path().join("summary.md");
    let env = [("GITHUB_ACTIONS", "true"), ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())];
    let run =
        drover_env(&["check", plan.to_str().unwrap(), "--cloud", "sim", "--format", "junit"], &env);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let errors = annotations(&run.stderr);
    assert_eq!(errors.len(), 4, "{}", run.stderr);
    for table in ["customers", "products", "orders", "invoices"] {
        let title = format!("::error title=drover check recovery-point {table} in us-west-2::");
        assert!(errors.iter().any(|e| e.starts_with(&title)), "{table}: {errors:?}");
    }
    assert!(run.stdout.starts_with("<?xml"), "{}", run.stdout);
    assert!(!run.stdout.contains("::error"), "{}", run.stdout);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("## drover check of plan `shop-demo`: **failed**"), "{text}");
    assert!(text.contains("4 checks: 0 passed, 0 warned, 4 failed"), "{text}");
    // A passing check: a summary and no annotation.
    let run = drover_env(&["check", "plans/demo.yaml", "--cloud", "sim", "--pitr"], &env);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(annotations(&run.stderr).is_empty(), "{}", run.stderr);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("## drover check --pitr of plan `shop-demo`: passed"), "{text}");
}

/// The fenced blocks of `lang` in a Markdown text.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let end = body.find("\n```").unwrap();
        out.push(&body[..=end]);
        rest = &body[end..];
    }
    out
}

/// Every `drover ...` command line in a text: its words up to a redirection or the end.
fn drover_commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("drover ") {
            let before = &rest[..at];
            let after = &rest[at + "drover ".len()..];
            rest = after;
            // A command: at the start of a line, a list item, a `run:` or after `&&` (not
            // `name: drover nightly drill` or a URL's `drover-dr/drover`).
            let before = before.trim();
            if !(matches!(before, "" | "-" | "run:") || before.ends_with("&&")) {
                continue;
            }
            let words: Vec<String> = after
                .split_whitespace()
                .take_while(|w| !matches!(*w, ">" | ">>" | "|" | "&&" | ";" | "2>"))
                .map(str::to_owned)
                .collect();
            let Some(first) = words.first() else { continue };
            if first.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !first.is_empty() {
                out.push(words);
            }
        }
    }
    out
}

#[test]
fn docs_ci_workflows_parse_and_name_real_commands() {
    let text = std::fs::read_to_string(repo_root().join("docs/ci.md")).unwrap();
    let yamls = blocks(&text, "yaml");
    assert!(yamls.len() >= 4, "{} yaml blocks", yamls.len());
    let mut github = 0;
    let mut gitlab = 0;
    for block in &yamls {
        let doc: serde_yaml::Value = serde_yaml::from_str(block)
            .unwrap_or_else(|e| panic!("docs/ci.md: a yaml block does not parse: {e}\n{block}"));
        if doc.get("jobs").is_some() {
            github += 1;
            assert_eq!(doc["permissions"]["id-token"].as_str(), Some("write"), "{block}");
            assert_eq!(doc["permissions"]["contents"].as_str(), Some("read"), "{block}");
            assert!(doc["on"]["schedule"][0]["cron"].as_str().is_some(), "{block}");
            assert!(doc["on"].get("workflow_dispatch").is_some(), "{block}");
            let steps: Vec<&serde_yaml::Value> = doc["jobs"]
                .as_mapping()
                .unwrap()
                .values()
                .flat_map(|job| job["steps"].as_sequence().unwrap())
                .collect();
            let creds = steps
                .iter()
                .find(|s| {
                    s["uses"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))
                })
                .unwrap_or_else(|| panic!("no configure-aws-credentials step:\n{block}"));
            assert!(creds["with"]["role-to-assume"].as_str().is_some(), "{block}");
        }
        if block.contains("id_tokens:") {
            gitlab += 1;
            let tokens = &doc[".drover"]["id_tokens"];
            let aud = tokens.as_mapping().unwrap().values().next().unwrap()["aud"].as_str();
            assert_eq!(aud, Some("sts.amazonaws.com"), "{block}");
            assert!(doc["drill"]["variables"]["AWS_ROLE_ARN"].as_str().is_some(), "{block}");
            assert!(block.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{block}");
        }
    }
    assert_eq!(github, 2, "a nightly drill and a readiness check");
    assert_eq!(gitlab, 1);
    let jsons = blocks(&text, "json");
    assert_eq!(jsons.len(), 1);
    let trust: serde_json::Value = serde_json::from_str(jsons[0]).unwrap();
    let condition = &trust["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(
        condition["token.actions.githubusercontent.com:sub"],
        "repo:ORG/REPO:ref:refs/heads/main"
    );
    assert_eq!(trust["Statement"][0]["Action"], "sts:AssumeRoleWithWebIdentity");
    assert!(text.contains("(iam.md)"));

    // Every drover command in the blocks names a real subcommand and real flags.
    let commands: Vec<Vec<String>> = yamls.iter().flat_map(|b| drover_commands(b)).collect();
    let subcommands: std::collections::BTreeSet<&str> =
        commands.iter().map(|c| c[0].as_str()).collect();
    for want in ["drill", "sweep", "report", "check", "iam-policy"] {
        assert!(subcommands.contains(want), "no `drover {want}` in docs/ci.md: {subcommands:?}");
    }
    for words in &commands {
        let help = drover_env(&[&words[0], "--help"], &[]);
        assert_eq!(help.code, 0, "`drover {}`: {}", words[0], help.transcript());
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.stdout.contains(&format!("{flag} "))
                    || help.stdout.contains(&format!("{flag}\n")),
                "`drover {}` has no {flag} (docs/ci.md: {})",
                words[0],
                words.join(" ")
            );
        }
    }
    // And the commands that need no account run on the simulated cloud.
    let run = drover_env(&["iam-policy", "plans/demo.yaml"], &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let run = drover_env(&["check", "plans/demo.yaml", "--format", "junit", "--cloud", "sim"], &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}
