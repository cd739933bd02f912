//! The corpus of invalid plans in tests/plans/invalid/: each line that should get a
//! diagnostic carries a trailing `# expect: CODE` comment; every file must yield exactly the
//! expected codes at the expected lines, and its rendered diagnostics are snapshotted.
//! Files named `warnings-*.yaml` hold warnings only: they are valid and exit 0.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{drover, repo_root};
use crate::snapshot;

pub(crate) fn expectations(text: &str) -> BTreeSet<(String, usize)> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if let Some((_, codes)) = line.split_once("# expect: ") {
            for code in codes.split(',') {
                out.insert((code.trim().to_owned(), i + 1));
            }
        }
    }
    out
}

#[test]
fn invalid_plans_yield_the_expected_codes_at_the_expected_lines() {
    let dir = repo_root().join("tests/plans/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has only {} plans", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(repo_root()).unwrap().to_str().unwrap().to_owned();
        let expected = expectations(&std::fs::read_to_string(file).unwrap());
        assert!(!expected.is_empty(), "{rel} has no `# expect:` comment");

        let run = drover(&["validate", "--format", "json", &rel]);
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let valid = stem.starts_with("warnings-");
        assert_eq!(run.code, if valid { 0 } else { 1 }, "{rel}: exit code\n{}", run.stderr);
        let json: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(json["plans"][0]["valid"], valid, "{rel}");
        let actual: BTreeSet<(String, usize)> = json["plans"][0]["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["code"].as_str().unwrap().to_owned(), d["line"].as_u64().unwrap() as usize))
            .collect();
        if actual != expected {
            failures.push(format!(
                "{rel}\n  missing:    {:?}\n  unexpected: {:?}",
                expected.difference(&actual).collect::<Vec<_>>(),
                actual.difference(&expected).collect::<Vec<_>>()
            ));
        }

        let text = drover(&["validate", &rel]);
        snapshot!(format!("invalid-{stem}"), text.transcript());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
