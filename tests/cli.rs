//! The `drover` binary from the outside: exit codes, output formats, hostile input.

use std::io::Write as _;

use serde_json::Value;

use crate::common::{drover, repo_root};
use crate::snapshot;

fn example_plans() -> Vec<String> {
    let mut plans: Vec<String> = std::fs::read_dir(repo_root().join("plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.strip_prefix(repo_root()).unwrap().to_str().unwrap().to_owned())
        .collect();
    plans.sort();
    plans
}

#[test]
fn example_plans_are_valid() {
    let plans = example_plans();
    assert!(plans.len() >= 2);
    let mut args = vec!["validate", "--deny-warnings"];
    args.extend(plans.iter().map(String::as_str));
    let run = drover(&args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("validate-examples", run.transcript());
}

#[test]
fn example_plans_reference_the_schema() {
    for plan in example_plans() {
        let text = std::fs::read_to_string(repo_root().join(&plan)).unwrap();
        assert!(
            text.starts_with(
                "# yaml-language-server: $schema=../crates/drover-plan/schema/plan.schema.json"
            ),
            "{plan} does not reference the JSON Schema on its first line"
        );
    }
}

#[test]
fn schema_command_prints_the_schema() {
    let run = drover(&["schema"]);
    assert_eq!(run.code, 0);
    let on_disk =
        std::fs::read_to_string(repo_root().join("crates/drover-plan/schema/plan.schema.json"))
            .unwrap();
    assert_eq!(run.stdout, on_disk);
    let schema: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn json_format_lists_every_plan_with_its_diagnostics() {
    let run = drover(&[
        "validate",
        "--format",
        "json",
        "plans/demo.yaml",
        "tests/plans/invalid/cycle.yaml",
        "tests/plans/missing.yaml",
    ]);
    assert_eq!(run.code, 1);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let plans = json["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 3);
    assert_eq!(plans[0]["path"], "plans/demo.yaml");
    assert_eq!(plans[0]["valid"], true);
    assert_eq!(plans[0]["diagnostics"].as_array().unwrap().len(), 0);
    assert_eq!(plans[1]["valid"], false);
    let cycle = &plans[1]["diagnostics"][0];
    assert_eq!(cycle["code"], "cycle");
    assert_eq!(cycle["severity"], "error");
    assert_eq!(cycle["message"], "dependency cycle: accounts -> invoices -> orders -> accounts");
    assert_eq!((cycle["line"].as_u64(), cycle["column"].as_u64()), (Some(14), Some(18)));
    let keys: Vec<&String> = cycle.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["code", "column", "line", "message", "severity"]);
    assert_eq!(plans[2]["valid"], false);
    assert_eq!(plans[2]["diagnostics"][0]["code"], "unreadable");
}

#[test]
fn github_format_prints_workflow_annotations() {
    let run = drover(&[
        "validate",
        "--format",
        "github",
        "tests/plans/invalid/dependencies.yaml",
        "plans/demo.yaml",
    ]);
    assert_eq!(run.code, 1);
    snapshot!("validate-github", run.transcript());
    for line in run.stdout.lines() {
        assert!(line.starts_with("::error file=") || line.starts_with("::warning file="), "{line}");
    }
}

fn temp_plan(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(contents).unwrap();
    f.flush().unwrap();
    f
}

fn demo_with(replace: &str, with: &str) -> tempfile::NamedTempFile {
    let demo = std::fs::read_to_string(repo_root().join("plans/demo.yaml")).unwrap();
    assert!(demo.contains(replace));
    temp_plan(demo.replace(replace, with).as_bytes())
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let plan = demo_with("  rto: 2h", "  rto: 30m");
    let path = plan.path().to_str().unwrap();
    let run = drover(&["validate", path]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("rto-below-rpo"));
    assert_eq!(drover(&["validate", "--deny-warnings", path]).code, 1);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["validate"][..],
        &["validate", "--format", "xml", "plans/demo.yaml"],
        &["plan"],
        &["plan", "plans/demo.yaml", "--format", "svg"],
        &["explode"],
        &[],
    ] {
        let run = drover(args);
        assert_eq!(run.code, 2, "drover {args:?}: {}", run.transcript());
        assert!(run.stdout.is_empty(), "usage errors go to stderr");
    }
    assert_eq!(drover(&["--help"]).code, 0);
    assert_eq!(drover(&["--version"]).code, 0);
}

/// Event channels on the command line are ARNs, checked as the plan's are, before anything
/// starts; `--publish-metrics` is not for point-in-time readiness.
#[test]
fn event_channel_flags_are_checked() {
    for (args, says) in [
        (
            &["drill", "plans/demo.yaml", "--cloud", "sim", "--event-bus", "default"][..],
            "is not an event bus ARN",
        ),
        (
            &[
                "check",
                "plans/demo.yaml",
                "--cloud",
                "sim",
                "--sns-topic",
                "arn:aws:sns:us-east-1:123456789012:t:sub",
            ],
            "is a subscription ARN",
        ),
        (
            &[
                "check",
                "plans/demo.yaml",
                "--cloud",
                "sim",
                "--event-bus",
                "arn:aws:events:us-east-1:12:event-bus/x",
            ],
            "is not an event bus ARN",
        ),
        (
            &["check", "plans/demo.yaml", "--cloud", "sim", "--pitr", "--publish-metrics"],
            "leave out one of",
        ),
    ] {
        let run = drover(args);
        assert_eq!(run.code, 2, "drover {args:?}: {}", run.transcript());
        assert!(run.stderr.contains(says), "drover {args:?}: {}", run.stderr);
    }
}

/// Hostile or broken input ends in a clear diagnostic and exit 1, never a panic.
#[test]
fn hostile_input_is_refused_cleanly() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
    }
    let mut nested_map = String::new();
    for depth in 0..300 {
        nested_map.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", Vec::new(), "empty-plan"),
        ("whitespace", b"  \n\n   \n# comment\n".to_vec(), "empty-plan"),
        ("binary", vec![0xff, 0xfe, 0x00, 0x13, 0x37, 0x80, 0x81], "not-utf8"),
        ("latin-1", b"name: caf\xe9\n".to_vec(), "not-utf8"),
        ("nul bytes", b"version: 1\0\0\0\n".to_vec(), "yaml-syntax"),
        ("deep flow nesting", "[".repeat(100_000).into_bytes(), "yaml-limits"),
        ("deep block nesting", nested_map.into_bytes(), "yaml-limits"),
        ("billion laughs", bomb.into_bytes(), "yaml-limits"),
        ("scalar root", b"just a string\n".to_vec(), "wrong-type"),
        ("50 MB", vec![b'#'; 50 * 1024 * 1024], "file-too-large"),
    ];
    for (what, bytes, code) in cases {
        let f = temp_plan(&bytes);
        let run = drover(&["validate", "--format", "json", f.path().to_str().unwrap()]);
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{what}: {}", run.stderr);
        let json: Value = serde_json::from_str(&run.stdout).unwrap();
        let codes: Vec<&str> = json["plans"][0]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&code), "{what}: expected {code}, got {codes:?}");
        // The text renderer copes with the same input.
        let text = drover(&["validate", f.path().to_str().unwrap()]);
        assert_eq!(text.code, 1, "{what}");
        assert!(text.stdout.contains(code), "{what}: {}", text.stdout);
    }
}

#[test]
fn plan_outlines_in_every_format() {
    for format in ["text", "json", "dot", "mermaid"] {
        let run = drover(&["plan", "plans/shop-prod.yaml", "--format", format]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        snapshot!(format!("plan-shop-prod-{format}"), run.transcript());
    }
    let run = drover(&["plan", "plans/demo.yaml", "--mode", "failover"]);
    assert_eq!(run.code, 0);
    snapshot!("plan-demo-failover", run.transcript());
    let run = drover(&["plan", "plans/demo.yaml", "--mode", "pitr"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("plan-demo-pitr", run.transcript());
    // A plan across accounts names each target's account.
    let run = drover(&["plan", "plans/shop-dr-account.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("plan-shop-dr-account", run.transcript());
}

#[test]
fn plan_json_has_the_waves_of_each_target() {
    let run = drover(&["plan", "plans/demo.yaml", "--format", "json"]);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let target = &json["targets"][0];
    assert_eq!(target["region"], "us-west-2");
    assert_eq!(
        target["waves"],
        serde_json::json!([["customers", "products"], ["orders"], ["invoices"]])
    );
}

#[test]
fn plan_refuses_an_invalid_plan() {
    let run = drover(&["plan", "tests/plans/invalid/cycle.yaml"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("dependency cycle"), "{}", run.stderr);
}

fn sizes_file(entries: &str) -> tempfile::NamedTempFile {
    temp_plan(entries.as_bytes())
}

#[test]
fn plan_estimates_the_rto_with_sizes() {
    let sizes = sizes_file("customers: 20GB\nproducts: 500MB\norders: 120GB\ninvoices: 40GB\n");
    let run = drover(&[
        "plan",
        "plans/demo.yaml",
        "--estimate",
        "--sizes",
        sizes.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let estimate = &json["estimate"];
    assert_eq!(estimate["exceeds_objective"], true, "{estimate}");
    let target = &estimate["targets"][0];
    assert_eq!(target["region"], "us-west-2");
    assert_eq!(target["dominating"][0][0], "orders", "the largest table dominates: {target}");
    let text = drover(&[
        "plan",
        "plans/demo.yaml",
        "--estimate",
        "--sizes",
        sizes.path().to_str().unwrap(),
    ]);
    assert!(
        text.stdout.contains("exceeds the RTO objective of 2h")
            && text.stdout.contains("critical path:"),
        "{}",
        text.stdout
    );
}

#[test]
fn validate_estimate_fails_when_the_estimate_exceeds_the_rto() {
    let big = sizes_file("customers: 20GB\nproducts: 500MB\norders: 120GB\ninvoices: 40GB\n");
    let run = drover(&[
        "validate",
        "plans/demo.yaml",
        "--estimate",
        "--sizes",
        big.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("error[rto-estimate]"), "{}", run.stderr);
    let small = sizes_file("customers: 20MB\nproducts: 5MB\norders: 100MB\ninvoices: 40MB\n");
    let run = drover(&[
        "validate",
        "plans/demo.yaml",
        "--estimate",
        "--sizes",
        small.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.contains("within the RTO objective of 2h"), "{}", run.stderr);
    // --estimate needs sizes; a bad sizes file is a clear error.
    assert_eq!(drover(&["validate", "plans/demo.yaml", "--estimate"]).code, 2);
    let bad = sizes_file("orders: lots\n");
    let run = drover(&[
        "validate",
        "plans/demo.yaml",
        "--estimate",
        "--sizes",
        bad.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("size of `orders` is not a size"), "{}", run.stderr);
}

#[test]
fn estimates_calibrate_from_the_journals_of_past_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(drover(&["drill", "plans/demo.yaml", "--cloud", "sim", "--state-dir", d]).code, 0);
    let sizes = sizes_file("customers: 1GB\nproducts: 1GB\norders: 1GB\ninvoices: 1GB\n");
    let run = drover(&[
        "plan",
        "plans/demo.yaml",
        "--estimate",
        "--sizes",
        sizes.path().to_str().unwrap(),
        "--history",
        d,
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("model calibrated from 1 past runs (4 backup, 4 copy, 4 restore jobs)"),
        "{}",
        run.stdout
    );
}
