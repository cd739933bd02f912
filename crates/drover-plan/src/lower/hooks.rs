//! Lowering of hooks and notifications: a table's `validate.hooks`, the run's `hooks`
//! (`after_target`, `after_run`) and `notify` (EventBridge, SNS).
//!
//! Like the rest of the lowering, every problem is recorded and the walk goes on.

use std::collections::HashMap;
use std::time::Duration;

use serde_yaml::Value;

use super::{Cx, P, ROOT, display_path, keys};
use crate::diag::Code;
use crate::model::{DEFAULT_HOOK_TIMEOUT, EventBridge, Hook, Notify, RunHooks, Sns};
use crate::rules;

/// The shortest and longest a hook may run.
const HOOK_TIMEOUTS: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);

/// The event bus of an account and region that every account has.
const DEFAULT_EVENT_BUS: &str = "default";

/// Characters that mean something to a shell and nothing to drover, which runs no shell.
const SHELL_SYNTAX: &[char] =
    &['|', '&', ';', '<', '>', '$', '`', '\'', '"', '*', '?', '(', ')', '{', '}', '~', '\\'];

/// A list of hooks at `p` (`tables[i].validate.hooks`, `hooks.after_target`, ...): the valid
/// ones, with every problem reported. Names are unique within the list.
pub(super) fn lower_hooks(cx: &mut Cx, v: &Value, p: &P<'_>) -> Vec<Hook> {
    let Some(items) = cx.list(v, p) else {
        return Vec::new();
    };
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let mut hooks = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ip = p.idx(i);
        let hook = lower_hook(cx, item, &ip);
        // The raw name borrowed from the document, to keep `seen` free of copies.
        let name = item.get("name").and_then(Value::as_str);
        if let Some(name) = name.filter(|n| rules::check_hook_name(n).is_ok()) {
            if let Some(&first) = seen.get(name) {
                let fp = p.idx(first);
                cx.error(
                    Code::DuplicateHook,
                    ip.key("name").at_value(),
                    format!("hook `{name}` is listed twice in `{}`", display_path(&p.path())),
                )
                .related(fp.key("name").at_value(), "first listed here")
                .help("hook names are unique in each list: they name the hook in the journal and the report");
                continue;
            }
            seen.insert(name, i);
        }
        hooks.extend(hook);
    }
    hooks
}

/// One hook: `{name, run, timeout}`. `None` when anything is wrong with it (reported).
fn lower_hook(cx: &mut Cx, v: &Value, p: &P<'_>) -> Option<Hook> {
    let f = cx.fields(v, p, keys::HOOK)?;
    let name = cx
        .required(&f, "name", p)
        .and_then(|v| cx.checked(v, &p.key("name"), Code::HookName, rules::check_hook_name));
    let run = cx.required(&f, "run", p).and_then(|v| lower_run(cx, v, &p.key("run")));
    let timeout = match f.get("timeout") {
        None => Some(DEFAULT_HOOK_TIMEOUT),
        Some(v) => lower_timeout(cx, v, &p.key("timeout")),
    };
    Some(Hook { name: name?, run: run?, timeout: timeout? })
}

/// `run`: the program and its arguments, a non-empty list of non-empty strings.
fn lower_run(cx: &mut Cx, v: &Value, p: &P<'_>) -> Option<Vec<String>> {
    let items = match v {
        Value::Sequence(items) => items,
        Value::String(s) => {
            let issue = cx.error(
                Code::HookRun,
                p.at_value(),
                "`run` is a list, not a command line (argv, no shell: write [\"./x.sh\", \"--flag\"])",
            );
            issue.label("expected a list");
            if s.contains(SHELL_SYNTAX) {
                issue.help(
                    "drover runs no shell: put pipes, redirections and variables in a script and run that",
                );
            } else {
                let argv: Vec<&str> = s.split_whitespace().collect();
                issue.help(format!("write it as a list: {argv:?}"));
            }
            return None;
        }
        _ => {
            cx.wrong_type(v, p, "a list of arguments (argv, no shell)");
            return None;
        }
    };
    if items.is_empty() {
        cx.error(Code::HookRun, p.at_value(), "`run` is empty: it needs at least the program")
            .help("write the program and its arguments, like [\"./smoke/check.sh\", \"--strict\"]");
        return None;
    }
    let mut argv = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ip = p.idx(i);
        let Some(arg) = cx.string(item, &ip) else {
            ok = false;
            continue;
        };
        let what = if i == 0 { "the program" } else { "an argument" };
        if arg.is_empty() {
            cx.error(Code::HookRun, ip.at_value(), format!("{what} is an empty string"));
            ok = false;
        } else if arg.contains('\0') {
            cx.error(Code::HookRun, ip.at_value(), format!("{what} contains a NUL character"))
                .help("no program can be given a NUL in its arguments");
            ok = false;
        } else {
            argv.push(arg.to_owned());
        }
    }
    ok.then_some(argv)
}

/// `timeout`: a duration from 1s to 24h.
fn lower_timeout(cx: &mut Cx, v: &Value, p: &P<'_>) -> Option<Duration> {
    let range = "a hook's timeout is from 1s to 24h";
    if let Value::Number(n) = v {
        cx.error(
            Code::Duration,
            p.at_value(),
            format!("expected a duration, found the number {n}"),
        )
        .help(format!("write it with a unit, like `{n}s` or `5m`"));
        return None;
    }
    let s = cx.string(v, p)?;
    match rules::parse_duration(s) {
        Ok(d) if HOOK_TIMEOUTS.contains(&d) => Some(d),
        Ok(d) => {
            cx.error(
                Code::HookTimeout,
                p.at_value(),
                format!("{range}, not {}", crate::model::format_duration(d)),
            )
            .help("a check that takes longer belongs in its own job, not in a hook");
            None
        }
        // Zero parses as a shape but is out of range: say so in the hook's terms.
        Err(_) if s.contains(|c: char| c.is_ascii_digit()) && is_zero(s) => {
            cx.error(Code::HookTimeout, p.at_value(), format!("{range}, not {s}"));
            None
        }
        Err(msg) => {
            cx.error(Code::Duration, p.at_value(), msg);
            None
        }
    }
}

/// `0s`, `0m0s`: a well-formed duration of zero.
fn is_zero(s: &str) -> bool {
    s.chars().all(|c| matches!(c, '0' | 's' | 'm' | 'h' | 'd'))
        && s.chars().next().is_some_and(|c| c == '0')
}

/// The top-level `hooks`.
pub(super) fn lower_run_hooks(cx: &mut Cx, v: &Value) -> RunHooks {
    let p = ROOT.key("hooks");
    let mut hooks = RunHooks::default();
    let Some(f) = cx.fields(v, &p, keys::HOOKS) else {
        return hooks;
    };
    if let Some(v) = f.get("after_target") {
        hooks.after_target = lower_hooks(cx, v, &p.key("after_target"));
    }
    if let Some(v) = f.get("after_run") {
        hooks.after_run = lower_hooks(cx, v, &p.key("after_run"));
    }
    hooks
}

/// The top-level `notify`.
pub(super) fn lower_notify(cx: &mut Cx, v: &Value) -> Notify {
    let p = ROOT.key("notify");
    let Some(f) = cx.fields(v, &p, keys::NOTIFY) else {
        return Notify::default();
    };
    let eventbridge = f.get("eventbridge").and_then(|v| {
        let ep = p.key("eventbridge");
        let g = cx.fields(v, &ep, keys::EVENTBRIDGE)?;
        let region = cx.required(&g, "region", &ep).and_then(|v| cx.region(v, &ep.key("region")));
        let event_bus = match g.get("event_bus") {
            None => Some(DEFAULT_EVENT_BUS.to_owned()),
            Some(v) => {
                let region = region.as_ref().map(crate::model::Region::as_str);
                cx.checked(v, &ep.key("event_bus"), Code::EventBus, |s| {
                    rules::check_event_bus(s, region)
                })
            }
        };
        Some(EventBridge { region: region?, event_bus: event_bus? })
    });
    let sns = f.get("sns").and_then(|v| {
        let sp = p.key("sns");
        let g = cx.fields(v, &sp, keys::SNS)?;
        let topic_arn = cx.required(&g, "topic_arn", &sp).and_then(|v| {
            cx.checked(v, &sp.key("topic_arn"), Code::TopicArn, |s| {
                rules::check_topic_arn(s).map(|_| ())
            })
        })?;
        Some(Sns { topic_arn })
    });
    Notify { eventbridge, sns }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::model::{DEFAULT_HOOK_TIMEOUT, EventBridge, Hook, Notify, Region, RunHooks, Sns};

    const HEAD: &str = "version: 1
name: t
source: {region: us-east-1, backup_vault: prod}
iam_role_arn: arn:aws:iam::111111111111:role/drover-backup
targets:
  - region: us-west-2
    backup_vault: dr
    kms_key_arn: arn:aws:kms:us-west-2:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
";

    /// The codes and lines of the diagnostics of `HEAD` followed by `rest`.
    fn codes(rest: &str) -> Vec<(String, usize)> {
        let text = format!("{HEAD}{rest}");
        let loaded = crate::load("t.yaml", text.as_bytes());
        let items = loaded.diagnostics.items();
        assert_eq!(loaded.plan.is_some(), !loaded.diagnostics.has_errors(), "{items:#?}");
        let mut out: Vec<(String, usize)> = items
            .iter()
            .map(|d| (d.code.as_str().to_owned(), d.location.line - HEAD.lines().count()))
            .collect();
        out.sort();
        out
    }

    fn hook(name: &str, run: &[&str], timeout: Duration) -> Hook {
        Hook { name: name.to_owned(), run: run.iter().map(|s| (*s).to_owned()).collect(), timeout }
    }

    #[test]
    fn a_plan_with_every_hook_and_notification_lowers_to_them() {
        let text = format!(
            r#"{HEAD}tables:
  - name: customers
  - name: orders
    validate:
      min_items: 1
      hooks:
        - name: read-an-order
          run: ["./smoke/read-order.sh", "--strict"]
          timeout: 2m
        - {{name: count, run: [./count.sh]}}
hooks:
  after_target: [{{name: app-smoke, run: ["./smoke/app.sh"], timeout: 10m}}]
  after_run: [{{name: ticket, run: ["./smoke/close-ticket.sh"]}}, {{name: app-smoke, run: [x]}}]
notify:
  eventbridge: {{region: us-east-1}}
  sns: {{topic_arn: "arn:aws:sns:us-east-1:123456789012:dr-alerts"}}
"#
        );
        let loaded = crate::load("t.yaml", text.as_bytes());
        let plan = loaded.plan.unwrap_or_else(|| panic!("{:#?}", loaded.diagnostics.items()));
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics.items());
        assert_eq!(plan.tables[0].validate.hooks, []);
        assert_eq!(
            plan.tables[1].validate.hooks,
            [
                hook(
                    "read-an-order",
                    &["./smoke/read-order.sh", "--strict"],
                    Duration::from_secs(120)
                ),
                hook("count", &["./count.sh"], DEFAULT_HOOK_TIMEOUT),
            ]
        );
        assert_eq!(plan.tables[1].validate.min_items, Some(1));
        assert_eq!(
            plan.hooks,
            RunHooks {
                after_target: vec![hook(
                    "app-smoke",
                    &["./smoke/app.sh"],
                    Duration::from_secs(600)
                )],
                // Names are unique in each list, not across lists.
                after_run: vec![
                    hook("ticket", &["./smoke/close-ticket.sh"], DEFAULT_HOOK_TIMEOUT),
                    hook("app-smoke", &["x"], DEFAULT_HOOK_TIMEOUT),
                ],
            }
        );
        assert_eq!(
            plan.notify,
            Notify {
                eventbridge: Some(EventBridge {
                    region: Region::parse("us-east-1").unwrap(),
                    event_bus: "default".into(),
                }),
                sns: Some(Sns { topic_arn: "arn:aws:sns:us-east-1:123456789012:dr-alerts".into() }),
            }
        );
    }

    #[test]
    fn a_plan_without_the_keys_has_no_hooks_and_no_notifications() {
        let text = format!("{HEAD}tables:\n  - name: customers\nhooks: {{}}\nnotify: {{}}\n");
        let plan = crate::load("t.yaml", text.as_bytes()).plan.unwrap();
        assert_eq!(plan.hooks, RunHooks::default());
        assert_eq!(plan.notify, Notify::default());
        assert_eq!(plan.tables[0].validate.hooks, []);
    }

    #[test]
    fn the_same_hook_name_twice_in_a_list_is_an_error_in_each_list() {
        let found = codes(
            "tables:
  - name: customers
    validate:
      hooks: [{name: a, run: [x]}, {name: a, run: [y], timeout: 0s}]
  - name: orders
    validate:
      hooks: [{name: a, run: [x]}]
hooks:
  after_target: [{name: a, run: [x]}, {name: b, run: [x]}, {name: a, run: [x]}]
  after_run: [{name: a, run: [x]}]
",
        );
        assert_eq!(
            found,
            [
                ("duplicate-hook".into(), 4),
                ("duplicate-hook".into(), 9),
                ("hook-timeout".into(), 4)
            ]
        );
    }

    #[test]
    fn every_problem_of_a_hook_is_reported_at_once() {
        let found = codes(
            r#"tables:
  - name: customers
    validate:
      hooks:
        - name: "has space"
          run: ./x.sh --strict
          timeout: 25h
        - name: ok
          run: []
        - name: ok2
          run: ["", 3, "a"]
          timeout: 300
        - run: [x]
          tmeout: 1m
        - name: ok3
          run: "./x.sh | tee out"
          timeout: soon
        - name: ok4
          run: [x]
          timeout: 0m0s
"#,
        );
        let expected: Vec<(String, usize)> = vec![
            ("duration".into(), 12),
            ("duration".into(), 17),
            ("hook-name".into(), 5),
            ("hook-run".into(), 6),
            ("hook-run".into(), 9),
            ("hook-run".into(), 11),
            ("hook-run".into(), 16),
            ("hook-timeout".into(), 7),
            ("hook-timeout".into(), 20),
            ("missing-key".into(), 13),
            ("unknown-key".into(), 14),
            ("wrong-type".into(), 11),
        ];
        assert_eq!(found, expected);
    }

    #[test]
    fn a_string_run_gets_its_arguments_as_a_list() {
        let text = format!(
            "{HEAD}tables:\n  - name: customers\nhooks:\n  after_run: [{{name: t, run: ./x.sh --strict}}]\n"
        );
        let loaded = crate::load("t.yaml", text.as_bytes());
        let d = &loaded.diagnostics.items()[0];
        assert!(d.message.contains("argv, no shell: write [\"./x.sh\", \"--flag\"]"), "{d:#?}");
        assert_eq!(d.help.as_deref(), Some(r#"write it as a list: ["./x.sh", "--strict"]"#));
    }

    #[test]
    fn hooks_are_per_table_not_defaults() {
        let found = codes(
            "defaults:
  validate:
    min_items: 1
    hooks: [{name: a, run: [x]}]
tables:
  - name: customers
",
        );
        assert_eq!(found, [("unknown-key".into(), 4)]);
    }

    #[test]
    fn notifications_go_to_an_event_bus_in_its_region_and_an_sns_topic() {
        let found = codes(
            r#"tables:
  - name: customers
notify:
  eventbridge:
    region: us-east1
    event_bus: "bad bus"
  sns: {topic: x}
"#,
        );
        assert_eq!(
            found,
            [
                ("event-bus".into(), 6),
                ("missing-key".into(), 7),
                ("region".into(), 5),
                ("unknown-key".into(), 7)
            ]
        );
        let found = codes(
            r#"tables:
  - name: customers
notify:
  eventbridge:
    region: us-west-2
    event_bus: arn:aws:events:us-east-1:123456789012:event-bus/dr
  sns:
    topic_arn: arn:aws:sns:us-east-1:123456789012:dr-alerts.fifo
  email: ops@example.com
"#,
        );
        assert_eq!(
            found,
            [("event-bus".into(), 6), ("topic-arn".into(), 8), ("unknown-key".into(), 9)]
        );
        let found = codes("tables:\n  - name: customers\nnotify:\n  eventbridge: {event_bus: x}\n");
        assert_eq!(found, [("missing-key".into(), 4)]);
    }
}
