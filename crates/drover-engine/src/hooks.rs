//! Validation hooks (docs/hooks.md): the plan's own commands, run against the restored tables
//! after drover's built-in checks pass — a table's `validate.hooks` inside its validate step,
//! `hooks.after_target` once per target after every table there is validated, and
//! `hooks.after_run` once at the end of the run, whatever its outcome.
//!
//! The engine decides when a hook runs, what it is told and what its outcome means; a
//! [`HookRunner`] (the CLI's runs processes) runs it. Each outcome is journaled when the hook
//! ends, so a resumed run skips the hooks that passed in the step's current attempt and runs
//! again the one a crash interrupted.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How much of a hook's output (stdout and stderr together) is kept in the journal: its first
/// kilobyte and its last `OUTPUT_LIMIT - 1 KiB`.
pub const OUTPUT_LIMIT: usize = 8 * 1024;

/// A hook to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    /// Its name in the plan.
    pub name: String,
    /// The program and its arguments (no shell).
    pub argv: Vec<String>,
    /// How long it may run before it is killed.
    pub timeout: Duration,
    /// Variables added to the environment drover runs in (`DROVER_*`).
    pub env: BTreeMap<String, String>,
    /// The JSON document `DROVER_TABLES_JSON` names: every table of the target with its
    /// restored name and ARN. The runner writes it to a file and sets the variable.
    pub tables_json: Option<String>,
}

/// How a hook ended, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookOutcome {
    /// Its name in the plan.
    pub name: String,
    /// Its exit code (`None`: killed by a signal, at its timeout, or never started).
    pub exit_code: Option<i32>,
    /// Killed at its timeout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// Why it could not be started, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its output, bounded (see [`OUTPUT_LIMIT`]).
    pub output: String,
    /// Bytes of output left out of `output`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated_bytes: u64,
    /// How long it ran (wall clock).
    pub duration_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl HookOutcome {
    /// Exited 0 within its timeout.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.error.is_none() && !self.timed_out && self.exit_code == Some(0)
    }

    /// One line on how it ended: `exit 0 in 1.2s`, `killed at its timeout of 2m`, ...
    #[must_use]
    pub fn summary(&self, timeout: Duration) -> String {
        let took = format!("{:.1}s", self.duration_ms as f64 / 1000.0);
        match (&self.error, self.timed_out, self.exit_code) {
            (Some(e), _, _) => format!("could not be started: {e}"),
            (None, true, _) => {
                format!("killed at its timeout of {}", drover_plan::format_duration(timeout))
            }
            (None, false, Some(code)) => format!("exit {code} in {took}"),
            (None, false, None) => format!("killed by a signal after {took}"),
        }
    }

    /// The end of its output, on one line, for a failure message.
    #[must_use]
    pub fn output_tail(&self) -> String {
        let text: String = self.output.split_whitespace().collect::<Vec<_>>().join(" ");
        let tail: String =
            text.chars().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
        format!("output: …{tail}")
    }
}

/// Runs hooks. Implementations never panic and always return an outcome.
#[async_trait]
pub trait HookRunner: Send + Sync {
    /// Runs `call` to its end or its timeout.
    async fn run(&self, call: &HookCall) -> HookOutcome;
}

/// Keeps the first kilobyte and the last `limit - 1 KiB` of what is appended, counting what
/// falls in between: a hook's output in the journal stays small however much it prints.
#[derive(Debug, Clone)]
pub struct Bounded {
    limit: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Bounded {
    /// A buffer keeping about `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Bounded {
        Bounded {
            limit: limit.max(2048),
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    /// Appends output.
    pub fn push(&mut self, bytes: &[u8]) {
        let head_max = 1024;
        let mut rest = bytes;
        if self.head.len() < head_max {
            let n = (head_max - self.head.len()).min(rest.len());
            self.head.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        let tail_max = self.limit - head_max;
        self.tail.extend(rest.iter().copied());
        if self.tail.len() > tail_max {
            let excess = self.tail.len() - tail_max;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The output kept (lossy UTF-8, a marker where bytes were left out) and how many bytes
    /// were left out.
    #[must_use]
    pub fn finish(self) -> (String, u64) {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!("\n[… {} bytes left out …]\n", self.dropped));
        }
        let tail: Vec<u8> = self.tail.into_iter().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        (out, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_of_output_keep_their_head_and_tail() {
        let mut b = Bounded::new(OUTPUT_LIMIT);
        b.push(b"first line\n");
        for _ in 0..100_000 {
            b.push(b"0123456789abcdef0123456789abcdef\n");
        }
        b.push(b"the last words");
        let (out, dropped) = b.finish();
        assert!(out.starts_with("first line\n"), "{}", &out[..40]);
        assert!(out.ends_with("the last words"));
        assert!(out.len() <= OUTPUT_LIMIT + 64, "{}", out.len());
        assert!(dropped > 3_000_000, "{dropped}");
        assert!(out.contains(&format!("[… {dropped} bytes left out …]")));
    }

    #[test]
    fn outcomes_say_how_they_ended() {
        let o = |exit_code, timed_out, error: Option<&str>| HookOutcome {
            name: "h".into(),
            exit_code,
            timed_out,
            error: error.map(str::to_owned),
            output: "x".into(),
            truncated_bytes: 0,
            duration_ms: 1200,
        };
        let t = Duration::from_secs(120);
        assert!(o(Some(0), false, None).passed());
        assert_eq!(o(Some(0), false, None).summary(t), "exit 0 in 1.2s");
        assert!(!o(Some(3), false, None).passed());
        assert!(!o(None, true, None).passed());
        assert_eq!(o(None, true, None).summary(t), "killed at its timeout of 2m");
        assert!(o(None, false, Some("no such file")).summary(t).contains("no such file"));
    }
}
