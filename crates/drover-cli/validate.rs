//! `drover validate PLAN...`: every problem of every plan, in text, JSON or GitHub format.

use std::fmt::Write as _;
use std::path::Path;

use drover_plan::{Code, Diagnostics, Loaded, Severity};
use serde_json::json;

use crate::args::{ValidateArgs, ValidateFormat};
use crate::exit::{CliError, Exit};
use crate::output;

/// Reads and loads a plan file. Reading stops past the size limit, so a huge file costs no
/// more memory than the limit.
pub(crate) fn load_file(path: &Path) -> Result<Loaded, std::io::Error> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let limit = u64::try_from(drover_plan::MAX_PLAN_BYTES).unwrap_or(u64::MAX) + 1;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(drover_plan::load(&path.display().to_string(), &bytes))
}

struct Checked {
    path: String,
    result: Result<Diagnostics, String>,
}

impl Checked {
    fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        match &self.result {
            Ok(d) => d.items().iter().filter(|d| d.severity == severity).count(),
            Err(_) => usize::from(severity == Severity::Error),
        }
    }
}

pub(crate) fn run(args: &ValidateArgs) -> Result<Exit, CliError> {
    let checked: Vec<Checked> = args
        .plans
        .iter()
        .map(|path| Checked {
            path: path.display().to_string(),
            result: load_file(path).map(|l| l.diagnostics).map_err(|e| e.to_string()),
        })
        .collect();
    match args.format {
        ValidateFormat::Text => output::stdout_line(&text(&checked))?,
        ValidateFormat::Json => output::stdout_line(&self::json(&checked).to_string())?,
        ValidateFormat::Github => {
            let annotations = github(&checked);
            if !annotations.is_empty() {
                output::stdout_line(&annotations)?;
            }
        }
    }
    let mut failed =
        checked.iter().any(|c| c.errors() > 0 || (args.deny_warnings && c.warnings() > 0));
    if args.estimate && !estimates(args)? {
        failed = true;
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

fn text(checked: &[Checked]) -> String {
    let mut out = String::new();
    for c in checked {
        match &c.result {
            Err(e) => {
                let _ = writeln!(
                    out,
                    "{}: error[{}]: cannot read the plan: {e}",
                    c.path,
                    Code::Unreadable
                );
            }
            Ok(d) if d.is_empty() => {}
            Ok(d) => out.push_str(&output::render_diagnostics(d, true)),
        }
    }
    let (mut valid, mut errors, mut warnings) = (0, 0, 0);
    for c in checked {
        let (e, w) = (c.errors(), c.warnings());
        errors += e;
        warnings += w;
        if e == 0 {
            valid += 1;
        }
    }
    let _ = write!(
        out,
        "{} {} checked: {valid} valid, {} invalid ({errors} {}, {warnings} {})",
        checked.len(),
        if checked.len() == 1 { "plan" } else { "plans" },
        checked.len() - valid,
        if errors == 1 { "error" } else { "errors" },
        if warnings == 1 { "warning" } else { "warnings" },
    );
    out
}

fn json(checked: &[Checked]) -> serde_json::Value {
    let plans: Vec<_> = checked
        .iter()
        .map(|c| {
            let diagnostics: Vec<_> = match &c.result {
                Err(e) => vec![json!({
                    "code": Code::Unreadable.as_str(),
                    "severity": "error",
                    "message": format!("cannot read the plan: {e}"),
                    "line": 1,
                    "column": 1,
                })],
                Ok(d) => d
                    .items()
                    .iter()
                    .map(|d| {
                        json!({
                            "code": d.code.as_str(),
                            "severity": d.severity,
                            "message": d.message,
                            "line": d.location.line,
                            "column": d.location.column,
                        })
                    })
                    .collect(),
            };
            json!({ "path": c.path, "valid": c.errors() == 0, "diagnostics": diagnostics })
        })
        .collect();
    json!({ "plans": plans })
}

/// GitHub Actions workflow commands: `::error file=..,line=..,col=..,title=..::message`.
fn github(checked: &[Checked]) -> String {
    let mut out = String::new();
    for c in checked {
        let file = escape_property(&c.path);
        match &c.result {
            Err(e) => {
                let _ = writeln!(
                    out,
                    "::error file={file},line=1,col=1,title=drover {}::{}",
                    Code::Unreadable,
                    escape_data(&format!("cannot read the plan: {e}"))
                );
            }
            Ok(d) => {
                for d in d.items() {
                    let level = match d.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    };
                    let mut message = d.message.clone();
                    if let Some(help) = &d.help {
                        let _ = write!(message, "\nhelp: {help}");
                    }
                    let _ = writeln!(
                        out,
                        "::{level} file={file},line={},col={},title=drover {}::{}",
                        d.location.line,
                        d.location.column,
                        d.code,
                        escape_data(&message)
                    );
                }
            }
        }
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `--estimate`: each valid plan's failover estimate against its RTO objective, on stderr.
/// Returns whether every estimate is within its objective.
fn estimates(args: &ValidateArgs) -> Result<bool, CliError> {
    let mut ok = true;
    let (model, note) = crate::estimate::model(&args.model);
    let sizes = match args.model.sizes.as_deref().map(crate::estimate::read_sizes) {
        Some(Ok(sizes)) => sizes,
        Some(Err(e)) => {
            output::error(&e);
            return Ok(false);
        }
        None => return Ok(false),
    };
    for path in &args.plans {
        let Ok(Loaded { plan: Some(plan), .. }) = load_file(path) else { continue };
        match crate::estimate::run(&plan, drover_plan::Mode::Failover, &sizes, model) {
            Ok(e) => {
                let exceeds = crate::estimate::exceeds(&plan, &e);
                ok &= !exceeds;
                let head = if exceeds { "error[rto-estimate]" } else { "ok" };
                output::stderr(&format!(
                    "{}: {head}{}",
                    path.display(),
                    crate::estimate::render(&plan, &e, &note).trim_end()
                ));
            }
            Err(e) => {
                ok = false;
                output::error(&format!("{}: cannot estimate: {e}", path.display()));
            }
        }
    }
    Ok(ok)
}
