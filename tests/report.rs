//! `drover report` through the binary: every format, and the HTML page rendered by a real
//! headless browser (Debian's chromium).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::drover;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (tests/run.sh does)"
    );
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn reports_in_every_format_and_the_html_renders_in_a_headless_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("state");
    let d = d.to_str().unwrap();
    let id = "shop-demo-20261124t000000z-7e7e0001";
    let run =
        drover(&["drill", "plans/demo.yaml", "--cloud", "sim", "--run-id", id, "--state-dir", d]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    let md = drover(&["report", id, "--state-dir", d]);
    assert_eq!(md.code, 0);
    assert!(md.stdout.starts_with(&format!("# drover drill report: {id}")), "{}", md.stdout);
    assert!(
        md.stdout.contains("| RTO (recovery time) | 2h |")
            && md.stdout.contains("## Critical path")
    );

    let json = drover(&["report", id, "--format", "json", "--state-dir", d]);
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["outcome"], "succeeded");
    assert_eq!(json["tables"].as_array().unwrap().len(), 4);
    assert!(json["recovery_time_ms"].as_i64().unwrap() > 0);
    for t in json["tables"].as_array().unwrap() {
        assert_eq!(t["steps"].as_array().unwrap().len(), 6, "{t}");
        assert!(t["recovery_point"].as_str().unwrap().starts_with("arn:aws:backup:us-east-1:"));
    }

    let junit = drover(&["report", id, "--format", "junit", "--state-dir", d]);
    assert!(junit.stdout.contains("tests=\"4\" failures=\"0\""), "{}", junit.stdout);
    assert_eq!(junit.stdout.matches("<testcase ").count(), 4);

    let html = drover(&["report", id, "--format", "html", "--state-dir", d]);
    assert_eq!(html.code, 0);
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html.stdout).unwrap();
    let url = format!("file://{}", page.display());
    let profile = dir.path().join("chromium");
    // The browser builds the page: the timeline has a bar for every step.
    let dom = chromium(&profile, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<svg id=\"timeline\""), "{dom}");
    assert_eq!(dom.matches("class=\"step\"").count(), 4 * 6);
    // And renders it.
    let shot = dir.path().join("report.png");
    let out = chromium(
        &profile,
        &[&format!("--screenshot={}", shot.display()), "--window-size=1280,1000", &url],
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot of {size} bytes: {}", String::from_utf8_lossy(&out.stderr));
    if let Ok(keep) = std::env::var("DROVER_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn report_of_an_unknown_run_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = drover(&["report", "nope-12345678", "--state-dir", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no run `nope-12345678`"), "{}", run.stderr);
}
