//! drover's integration tests: one test binary (ripgrep and jj style) that drives the real
//! `drover` executable and checks the workspace's architecture.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod architecture;
mod aws;
mod ci;
mod cli;
mod common;
mod contract;
mod corpus;
mod cross_account;
mod editor;
mod faults;
mod hooks;
mod iam;
mod notify;
mod notify_contract;
mod pitr;
mod pitr_contract;
mod progress;
mod report;
mod runs;
mod s3_store;
mod sim_time;
mod state_s3;
mod sweep;
mod unreachable;

#[test]
fn no_forgotten_test_files() {
    let dir = common::repo_root().join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            if stem != "main" {
                assert!(
                    main.contains(&format!("mod {stem};")),
                    "tests/{stem}.rs is not a module of tests/main.rs"
                );
            }
        }
    }
}
