//! `drover plan PLAN`: the restore waves, steps and longest chain of each target.

use drover_plan::Outline;

use crate::args::{PlanArgs, PlanFormat};
use crate::exit::{CliError, Exit};
use crate::output;
use crate::validate::load_file;

pub(crate) fn run(args: &PlanArgs) -> Result<Exit, CliError> {
    let loaded = match load_file(&args.plan) {
        Ok(loaded) => loaded,
        Err(e) => {
            output::error(&format!("cannot read {}: {e}", args.plan.display()));
            return Ok(Exit::Failure);
        }
    };
    if !loaded.diagnostics.is_empty() {
        output::stderr(&output::render_diagnostics(&loaded.diagnostics, false));
    }
    let Some(plan) = loaded.plan else {
        output::error(&format!("{} is not a valid plan", args.plan.display()));
        return Ok(Exit::Failure);
    };
    let mode: drover_plan::Mode = args.mode.into();
    let outline = Outline::new(&plan, mode);
    let estimate = if args.estimate {
        let model = crate::estimate::model(&args.model);
        let result = crate::estimate::sizes(&plan, &args.model, &args.cloud)
            .and_then(|sizes| crate::estimate::run(&plan, mode, &sizes, model.0));
        match result {
            Ok(e) => Some((e, model.1)),
            Err(e) => {
                output::error(&format!("cannot estimate: {e}"));
                return Ok(Exit::Failure);
            }
        }
    } else {
        None
    };
    let text = match args.format {
        PlanFormat::Text => {
            let mut text = outline.to_text();
            if let Some((e, note)) = &estimate {
                text.push_str(&crate::estimate::render(&plan, e, note));
            }
            text
        }
        PlanFormat::Json => match &estimate {
            None => serde_json::to_string_pretty(&outline).unwrap_or_default(),
            Some((e, note)) => {
                let mut json = serde_json::to_value(&outline).unwrap_or_default();
                json["estimate"] = serde_json::json!({
                    "model": note,
                    "rto_ms": e.rto_ms,
                    "exceeds_objective": crate::estimate::exceeds(&plan, e),
                    "targets": e.targets,
                });
                serde_json::to_string_pretty(&json).unwrap_or_default()
            }
        },
        PlanFormat::Dot => outline.to_dot(&plan),
        PlanFormat::Mermaid => outline.to_mermaid(&plan),
    };
    output::stdout_line(&text)?;
    Ok(Exit::Success)
}
