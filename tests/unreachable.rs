//! When AWS cannot be reached or does not let drover in (issue 12), every command that talks to
//! AWS says so in one sentence with what to do, exits 1 and prints no `Debug` dump: no
//! credentials (with instance metadata off, and with an instance metadata endpoint that never
//! answers), a closed port, calls denied and credentials refused (the emulator's call faults,
//! answered as AWS answers them).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Emulator, Run, aws_command};
use crate::snapshot;

/// The commands that talk to AWS, as `drover` arguments (`STATE` is the state directory).
/// Drills, backups and failovers are refused by the check before their preflight.
const COMMANDS: &[&[&str]] = &[
    &["plan", "plans/demo.yaml", "--estimate"],
    &["preflight", "plans/demo.yaml"],
    &["preflight", "plans/demo.yaml", "--mode", "failover"],
    &["check", "plans/demo.yaml"],
    &["points", "plans/demo.yaml"],
    &["sweep", "plans/demo.yaml", "--dry-run", "--state-dir", "STATE"],
    &["drill", "plans/demo.yaml", "--state-dir", "STATE"],
    &["backup", "plans/demo.yaml", "--state-dir", "STATE"],
    &["failover", "plans/demo.yaml", "--yes", "--state-dir", "STATE"],
];

/// What gives a `Debug` dump away.
const DEBUG_SIGNS: &[&str] = &["{", "SdkError", "DispatchFailure", "ConnectorError", "Some("];

/// How long a command may take to say that it cannot reach AWS: the SDK's own attempts on a
/// closed port take about two seconds, an instance metadata endpoint that never answers one.
const PROMPT: Duration = Duration::from_secs(15);

/// `drover` in an environment without any credentials: no keys, no profile, empty shared
/// config files, a home of its own; instance metadata as `imds` says.
fn without_credentials(home: &Path, imds: Imds) -> impl Fn(&[&str]) -> Command {
    let config = home.join("config");
    let credentials = home.join("credentials");
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let home = home.to_owned();
    move |args| {
        let mut c = aws_command(args);
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_ROLE_ARN")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env_remove("RUST_LOG")
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials);
        match &imds {
            Imds::Disabled => {
                c.env("AWS_EC2_METADATA_DISABLED", "true");
            }
            Imds::At(url) => {
                c.env_remove("AWS_EC2_METADATA_DISABLED")
                    .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
            }
        }
        c
    }
}

/// Where the credential chain's last provider, instance metadata, is.
#[derive(Clone)]
enum Imds {
    Disabled,
    At(String),
}

/// `drover` with the test credentials of emulator runs.
fn with_credentials(args: &[&str]) -> Command {
    let mut c = aws_command(args);
    c.env_remove("RUST_LOG");
    c
}

fn run(mut command: Command) -> (Run, Duration) {
    let started = Instant::now();
    let out = command.output().expect("run drover");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, started.elapsed())
}

/// Runs every command of [`COMMANDS`] (with `extra` arguments) through `drover`, checks that
/// each ends promptly with exit 1 and one line on stderr without a `Debug` dump, and returns
/// the transcript: each command and its line, `[port]` for the emulator's or the closed port.
fn every_command(drover: impl Fn(&[&str]) -> Command, extra: &[&str], port: Option<u16>) -> String {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let mut transcript = String::new();
    for command in COMMANDS {
        let mut args: Vec<&str> =
            command.iter().map(|a| if *a == "STATE" { state_dir } else { a }).collect();
        args.extend_from_slice(extra);
        let (out, took) = run(drover(&args));
        let shown = command.join(" ");
        assert_eq!(out.code, 1, "{shown}: {}", out.transcript());
        assert_eq!(out.stdout, "", "{shown}: nothing on stdout");
        assert_eq!(out.stderr.lines().count(), 1, "{shown}: one line: {}", out.stderr);
        for sign in DEBUG_SIGNS {
            assert!(!out.stderr.contains(sign), "{shown}: `{sign}` in {}", out.stderr);
        }
        assert!(took < PROMPT, "{shown} took {took:?}");
        let mut line = out.stderr.clone();
        if let Some(port) = port {
            line = line.replace(&port.to_string(), "[port]");
        }
        transcript.push_str(&format!("$ drover {shown}\n{line}"));
    }
    transcript
}

#[test]
fn no_credentials_is_one_sentence_in_every_command() {
    let home = tempfile::tempdir().unwrap();
    let transcript =
        every_command(without_credentials(home.path(), Imds::Disabled), &["--cloud", "aws"], None);
    snapshot!("unreachable-no-credentials", transcript);
}

#[test]
fn an_instance_metadata_endpoint_that_never_answers_ends_the_chain_within_seconds() {
    // Accepts connections and never answers: the worst an instance metadata endpoint can do.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let home = tempfile::tempdir().unwrap();
    let drover = without_credentials(home.path(), Imds::At(url));
    let (out, took) = run(drover(&["plan", "plans/demo.yaml", "--estimate"]));
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(took < Duration::from_secs(10), "the credential chain took {took:?}");
    assert!(
        out.stderr.starts_with("error: cannot estimate: no AWS credentials found for us-east-1"),
        "{}",
        out.stderr
    );
    // The chain's own warnings are for --log-level debug.
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    let (debug, _) =
        run(drover(&["plan", "plans/demo.yaml", "--estimate", "--log-level", "debug"]));
    assert_eq!(debug.code, 1);
    assert!(debug.stderr.contains("Ec2InstanceMetadata"), "{}", debug.stderr);
    assert!(debug.stderr.contains("call failed"), "{}", debug.stderr);
    drop(silent);
}

#[test]
fn a_closed_port_is_one_sentence_in_every_command() {
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let transcript = every_command(with_credentials, &["--endpoint-url", &url], Some(port));
    snapshot!("unreachable-closed-port", transcript);
}

/// The emulator answering every DynamoDB and Backup call with `code`, as AWS answers it.
fn refusing(emu: &Emulator, code: &str, dynamodb: &str, backup: &str) {
    assert_eq!(emu.control("/_drover/reset", &json!({"moto": false})), 200);
    for (operation, message) in [("dynamodb:*", dynamodb), ("backup:*", backup)] {
        let fault = json!({"operation": operation, "count": 1000, "code": code, "status": 400, "message": message});
        assert_eq!(emu.control("/_drover/throttle", &fault), 200);
    }
}

#[test]
fn denied_calls_and_refused_credentials_are_one_sentence_in_every_command() {
    let emu = Emulator::start_ideal(1.0);
    let url = emu.url();
    let extra = ["--endpoint-url", url.as_str()];
    // The messages AWS gives (IAM's "not authorized to perform" with its reason; the STS
    // session token's expiry).
    refusing(
        &emu,
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/drill is not authorized to perform: \
         dynamodb:DescribeTable because no identity-based policy allows the \
         dynamodb:DescribeTable action",
        "User: arn:aws:iam::123456789012:user/drill is not authorized to perform: \
         backup:DescribeBackupVault because no identity-based policy allows the \
         backup:DescribeBackupVault action",
    );
    snapshot!("unreachable-access-denied", every_command(with_credentials, &extra, None));
    refusing(
        &emu,
        "ExpiredTokenException",
        "The security token included in the request is expired",
        "The security token included in the request is expired",
    );
    snapshot!("unreachable-expired-session", every_command(with_credentials, &extra, None));
}

#[test]
fn a_resumed_run_that_cannot_reach_aws_says_so_at_once() {
    // A drill started without its preflight against a closed port: its steps retry, and it is
    // killed; its resume (which has no preflight) must not retry for minutes.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let id = "demo-unreachable-00000001";
    let mut drill = with_credentials(&[
        "drill",
        "plans/demo.yaml",
        "--skip-preflight",
        "--run-id",
        id,
        "--state-dir",
        dir,
        "--endpoint-url",
        &url,
    ]);
    let mut child = drill
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = state.path().join("runs").join(id).join("journal.jsonl");
    let started = Instant::now();
    while !journal.exists() && started.elapsed() < PROMPT {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(journal.exists(), "the drill did not start");
    let before = std::fs::read(&journal).unwrap();
    let (out, took) = run(with_credentials(&["resume", id, "--state-dir", dir]));
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(took < PROMPT, "resume took {took:?}");
    let line = out.stderr.lines().last().unwrap_or_default().replace(&port.to_string(), "[port]");
    assert_eq!(
        line,
        "error: nothing was started: cannot reach http://127.0.0.1:[port] for us-east-1 (tcp connect error: Connection refused (os error 111)); check that it is up and that --endpoint-url is right, or use --cloud sim to work without AWS",
    );
    for sign in DEBUG_SIGNS {
        assert!(!out.stderr.contains(sign), "`{sign}` in {}", out.stderr);
    }
    // Nothing was journaled: the run resumes as it was once AWS can be reached.
    assert_eq!(std::fs::read(&journal).unwrap(), before);
}
