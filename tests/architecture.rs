//! The dependency direction between crates, read from `cargo metadata`.
//!
//! drover-plan is pure (no async runtime, no AWS); drover-engine never depends on the AWS SDK;
//! only drover-aws may. See docs/ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::common::repo_root;

/// Workspace crates each workspace crate may depend on (normal and build dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("drover-plan", &[]),
    ("drover-engine", &["drover-plan"]),
    ("drover-sim", &["drover-engine", "drover-plan"]),
    ("drover-aws", &["drover-engine", "drover-plan"]),
    ("drover", &["drover-plan", "drover-engine", "drover-sim", "drover-aws"]),
    // The benchmark binary (not shipped) measures every layer.
    ("drover-bench", &["drover-plan", "drover-engine", "drover-sim", "drover-aws"]),
];

/// External crates (by name prefix) a workspace crate must not reach, even transitively.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("drover-plan", &["tokio", "aws-", "hyper", "reqwest"]),
    ("drover-engine", &["aws-", "hyper", "reqwest"]),
    ("drover-sim", &["aws-", "hyper", "reqwest"]),
];

struct Metadata {
    /// Package id -> name.
    names: BTreeMap<String, String>,
    /// Package id -> ids of its normal and build dependencies.
    deps: BTreeMap<String, Vec<String>>,
    members: Vec<String>,
}

fn metadata() -> Metadata {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = json["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
        .collect();
    let deps = json["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null() || k["kind"] == "build")
                })
                .map(|d| d["pkg"].as_str().unwrap().to_owned())
                .collect();
            (n["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    let members = json["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    Metadata { names, deps, members }
}

impl Metadata {
    fn closure(&self, id: &str) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            for dep in self.deps.get(id).into_iter().flatten() {
                if seen.insert(dep.as_str()) {
                    stack.push(dep);
                }
            }
        }
        seen
    }
}

#[test]
fn crates_depend_only_in_the_allowed_direction() {
    let meta = metadata();
    let member_names: BTreeSet<&str> =
        meta.members.iter().map(|m| meta.names[m].as_str()).collect();
    let mut problems = Vec::new();
    for id in &meta.members {
        let name = meta.names[id].as_str();
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            problems
                .push(format!("workspace crate `{name}` is not in the architecture test's table"));
            continue;
        };
        for dep in &meta.deps[id] {
            let dep_name = meta.names[dep].as_str();
            if member_names.contains(dep_name) && !allowed.contains(&dep_name) {
                problems.push(format!(
                    "`{name}` depends on `{dep_name}`, which the architecture forbids"
                ));
            }
        }
        if let Some((_, forbidden)) = FORBIDDEN.iter().find(|(n, _)| *n == name) {
            for dep in meta.closure(id) {
                let dep_name = meta.names[dep].as_str();
                if forbidden.iter().any(|f| dep_name.starts_with(f)) {
                    problems.push(format!("`{name}` reaches `{dep_name}`, which it must not"));
                }
            }
        }
    }
    // Only drover-aws uses the AWS SDK directly.
    for id in &meta.members {
        let name = meta.names[id].as_str();
        for dep in &meta.deps[id] {
            if meta.names[dep].starts_with("aws-sdk-") && name != "drover-aws" {
                problems.push(format!(
                    "`{name}` uses `{}` directly; only drover-aws may",
                    meta.names[dep]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
