//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (the root package's manifest directory).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a run of the binary did.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Exit code and both streams, for snapshots.
    pub(crate) fn transcript(&self) -> String {
        format!("exit: {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `drover` with `args` from the repository root, without colour.
pub(crate) fn drover(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdin(Stdio::null())
        .output()
        .expect("run drover");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a snapshot stored in tests/snapshots/ under `name`.
#[macro_export]
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// The emulator's python (the virtualenv `tests/emulator/setup.sh` makes, once per test run).
fn emulator_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(repo_root().join("tests/emulator/setup.sh"))
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .expect("run tests/emulator/setup.sh");
            assert!(out.status.success(), "tests/emulator/setup.sh failed");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// The AWS emulator (moto server extended by tests/emulator/drover_moto.py) on 127.0.0.1 and
/// a free port; stopped when dropped.
pub(crate) struct Emulator {
    child: std::process::Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    job_seconds: f64,
    /// The realism mode's seed, when it is on.
    realism: Option<u64>,
}

/// The realism seed of emulator tests: `DROVER_EMULATOR_SEED`, else 1. A failing test's log
/// names it, so a run reproduces.
fn realism_seed() -> u64 {
    std::env::var("DROVER_EMULATOR_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

impl Emulator {
    /// Starts an emulator in realism mode (asynchronous tags, lingering table states, small
    /// pages, quotas, passing faults: tests/emulator/README.md), whose jobs take `job_seconds`.
    pub(crate) fn start(job_seconds: f64) -> Emulator {
        Emulator::launch(job_seconds, Some(realism_seed()))
    }

    /// Starts an emulator that answers like an ideal service (no realism mode), for tests
    /// that isolate one behaviour with the control API.
    pub(crate) fn start_ideal(job_seconds: f64) -> Emulator {
        Emulator::launch(job_seconds, None)
    }

    // The seed goes to stderr, shown with a failing test's output: how to reproduce its run.
    #[allow(clippy::print_stderr)]
    fn launch(job_seconds: f64, realism: Option<u64>) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let (child, port) = Emulator::spawn(dir.path(), 0, job_seconds, realism);
        if let Some(seed) = realism {
            eprintln!("emulator on port {port}: realism mode, seed {seed} (DROVER_EMULATOR_SEED)");
        }
        Emulator { child, port, dir, job_seconds, realism }
    }

    /// Stops the server as an operator would (SIGTERM: it saves its state), keeps it down for
    /// `down`, and starts it again on the same port from the saved state.
    pub(crate) fn restart(&mut self, down: std::time::Duration) {
        let pid = self.child.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(term.success());
        // The emulator drains its calls (at most 35 s) before it saves and exits.
        assert_eq!(wait(&mut self.child, std::time::Duration::from_secs(60)), Some(0));
        std::thread::sleep(down);
        (self.child, _) =
            Emulator::spawn(self.dir.path(), self.port, self.job_seconds, self.realism);
    }

    fn spawn(
        dir: &std::path::Path,
        port: u16,
        job_seconds: f64,
        realism: Option<u64>,
    ) -> (std::process::Child, u16) {
        let port_file = dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(emulator_python())
            .arg(repo_root().join("tests/emulator/drover_moto.py"))
            .args(["--port", &port.to_string(), "--port-file", port_file.to_str().unwrap()])
            .args(["--job-seconds", &job_seconds.to_string()])
            .args(["--state-file", dir.join("state.pickle").to_str().unwrap()])
            .args(
                realism
                    .map(|seed| ["--realism".to_owned(), "--seed".to_owned(), seed.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let port = loop {
            if let Some(port) =
                std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok())
            {
                break port;
            }
            if child.try_wait().unwrap().is_some()
                || start.elapsed() > std::time::Duration::from_secs(60)
            {
                let _ = child.kill();
                panic!(
                    "the emulator did not start: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        (child, port)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `tests/emulator/fixture.py COMMAND PORT` with `input` as JSON on stdin.
    pub(crate) fn fixture(&self, command: &str, input: &serde_json::Value) -> serde_json::Value {
        use std::io::Write as _;
        let mut child = Command::new(emulator_python())
            .arg(repo_root().join("tests/emulator/fixture.py"))
            .args([command, &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "fixture.py {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Calls the emulator's control API (`/_drover/...`) on loopback; returns the status code.
    pub(crate) fn control(&self, path: &str, body: &serde_json::Value) -> u16 {
        self.control_call(path, body).0
    }

    /// The emulator's knobs now (`/_drover/config`): durations, pending faults.
    pub(crate) fn config(&self) -> serde_json::Value {
        let (status, body) = self.control_call("/_drover/config", &serde_json::json!({}));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn control_call(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        let answer =
            self.http("POST", path, &[("Content-Type", "application/json")], &body.to_string());
        (answer.status, answer.body)
    }

    /// The AWS calls the emulator answered (`GET /_drover/calls`): `by_operation`, `faulted`.
    pub(crate) fn calls(&self) -> serde_json::Value {
        let answer = self.http("GET", "/_drover/calls", &[], "");
        assert_eq!(answer.status, 200, "{}", answer.body);
        serde_json::from_str(&answer.body).unwrap()
    }

    /// An S3 request to the emulator, for fixtures and for reading back what it stored
    /// (`PUT /bucket`, `HEAD /bucket/key`). moto does not check signatures: the SigV4
    /// `Authorization` header only names the access key (so moto serves the call as the test
    /// account's; without one, it is anonymous and denied private objects) and the service.
    pub(crate) fn s3(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Http {
        const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
                            SignedHeaders=host, Signature=0";
        let mut all = vec![("Authorization", AUTH)];
        all.extend_from_slice(headers);
        self.http(method, path, &all, body)
    }

    /// Creates an S3 bucket in `region` (a `LocationConstraint` outside us-east-1, as S3
    /// wants).
    pub(crate) fn create_bucket(&self, bucket: &str, region: &str) {
        let body = if region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            )
        };
        let path = format!("/{bucket}");
        let answer = self.s3_setup("PUT", &path, &body);
        assert_eq!(answer.status, 200, "CreateBucket {bucket}: {}", answer.body);
    }

    /// Sets a bucket's versioning (`Enabled` or `Suspended`).
    pub(crate) fn bucket_versioning(&self, bucket: &str, status: &str) {
        let body = format!(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Status>{status}</Status></VersioningConfiguration>"
        );
        let path = format!("/{bucket}?versioning");
        let answer = self.s3_setup("PUT", &path, &body);
        assert_eq!(answer.status, 200, "PutBucketVersioning {bucket}: {}", answer.body);
    }

    /// An S3 request of a test's set-up, retried while it answers a passing 5xx (the
    /// realism mode faults S3 calls too).
    fn s3_setup(&self, method: &str, path: &str, body: &str) -> Http {
        let mut answer = self.s3(method, path, &[("Content-Type", "application/xml")], body);
        for _ in 0..20 {
            if answer.status < 500 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            answer = self.s3(method, path, &[("Content-Type", "application/xml")], body);
        }
        answer
    }

    /// One HTTP/1.1 request to the emulator on loopback, answered and closed.
    fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Http {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let mut lines = head.lines();
        let status =
            lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok());
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Http { status: status.unwrap_or(0), headers, body: body.to_owned() }
    }

    /// The emulator's log so far (for failure messages).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// An answer of the emulator to a raw HTTP request.
pub(crate) struct Http {
    pub(crate) status: u16,
    /// Header names in lower case.
    pub(crate) headers: std::collections::BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The secret key given to drover in emulator runs: it must never appear in its output,
/// journals or reports.
pub(crate) const TEST_SECRET: &str = "drover-test-secret-5f3c9a";

/// `drover` with the environment of an emulator run: test credentials, no profile files,
/// no instance metadata lookups.
pub(crate) fn drover_aws(args: &[&str]) -> Run {
    let out = aws_command(args).output().expect("run drover");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub(crate) fn aws_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    c
}

/// Waits for a child process, killing it after `limit`; its exit code, or `None` when it was
/// killed.
pub(crate) fn wait(child: &mut std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Once the run has begun (`journal` exists: a run killed before it has no journal to resume,
/// and `resume` rightly refuses it), SIGKILLs `child` after seeded random pauses (`pause_ms`
/// plus up to 1.5 s), at most `rounds` times, calling `after_kill` after each kill and going on
/// with the process `resume` starts; then waits up to `limit` for the last one. Returns its
/// exit code (`None`: killed at the limit) and how many kills landed.
pub(crate) fn kill_and_resume(
    mut child: std::process::Child,
    journal: &Path,
    mut seed: u64,
    (rounds, pause_ms, limit): (usize, u64, std::time::Duration),
    mut after_kill: impl FnMut(),
    mut resume: impl FnMut() -> std::process::Child,
) -> (Option<i32>, usize) {
    let began = std::time::Instant::now();
    while !journal.exists() && began.elapsed() < std::time::Duration::from_secs(60) {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), 0);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut kills = 0;
    for _ in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(pause_ms + seed % 1500));
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), kills);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        after_kill();
        child = resume();
    }
    (wait(&mut child, limit), kills)
}
