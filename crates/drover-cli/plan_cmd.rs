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
    let outline = Outline::new(&plan, args.mode.into());
    let text = match args.format {
        PlanFormat::Text => outline.to_text(),
        PlanFormat::Json => serde_json::to_string_pretty(&outline).unwrap_or_default(),
        PlanFormat::Dot => outline.to_dot(&plan),
        PlanFormat::Mermaid => outline.to_mermaid(&plan),
    };
    output::stdout_line(&text)?;
    Ok(Exit::Success)
}
