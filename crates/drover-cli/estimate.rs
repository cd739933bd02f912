//! RTO estimates for `drover plan --estimate` and `drover validate --estimate`.

use std::fmt::Write as _;
use std::path::Path;

use drover_engine::CloudError;
use drover_engine::report::human;
use drover_engine::state::Limits;
use drover_plan::{Mode, Plan};
use drover_sim::DurationModel;
use drover_sim::estimate::{self, Estimate, Sizes};

use crate::access::{self, Instead};
use crate::args::{CloudArgs, ModelArgs};
use crate::cloud::Cloud;
use crate::output;
use crate::support::runtime;

/// Reads a sizes file: table name to bytes (a number, or a string with a unit).
pub(crate) fn read_sizes(path: &Path) -> Result<Sizes, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let raw: std::collections::BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(&text)
        .map_err(|e| format!("{}: not a map of table names to sizes: {e}", path.display()))?;
    raw.into_iter()
        .map(|(table, v)| {
            let bytes = match &v {
                serde_yaml::Value::Number(n) => n.as_u64(),
                serde_yaml::Value::String(s) => parse_size(s),
                _ => None,
            };
            bytes.map(|b| (table.clone(), b)).ok_or_else(|| {
                format!("{}: size of `{table}` is not a size: {v:?}", path.display())
            })
        })
        .collect()
}

/// `123`, `500MB`, `12 GiB`, `1.5TB`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = n * mult;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// The duration model: defaults, or calibrated from past runs; with a note saying which.
pub(crate) fn model(args: &ModelArgs) -> (DurationModel, String) {
    let defaults = DurationModel { noise: 0.0, ..DurationModel::default() };
    match &args.history {
        None => (defaults, "default duration model (docs/performance.md)".to_owned()),
        Some(location) => {
            let runs = match history_at(location) {
                Ok(runs) => runs,
                Err(e) => {
                    output::error(&format!(
                        "--history {location}: {e}; estimating with the default model"
                    ));
                    Vec::new()
                }
            };
            let (model, counts) = estimate::calibrate(&runs, defaults);
            let used: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            (
                model,
                format!(
                    "model calibrated from {} past runs ({} jobs)",
                    runs.len(),
                    if used.is_empty() { "no".to_owned() } else { used.join(", ") }
                ),
            )
        }
    }
}

/// Past runs in `location` (`--history`: a state directory, a directory of them, or a
/// state store URL), those that read.
fn history_at(location: &str) -> Result<Vec<drover_engine::state::RunState>, String> {
    use drover_engine::store::Location;
    if let Location::Dir(dir) = Location::parse(location)? {
        return Ok(estimate::history(&dir));
    }
    let args = crate::args::StateArgs {
        state: Some(location.to_owned()),
        state_dir: None,
        state_kms_key: None,
    };
    runtime().map_err(|e| e.to_string())?.block_on(async {
        let store = crate::state_store::open_for_reading(&args).await?;
        let runs = store.list().await.map_err(|e| e.to_string())?;
        Ok(runs.into_iter().filter_map(|(_, state)| state.ok()).collect())
    })
}

/// Table sizes: from `--sizes`, else from the source's DescribeTable. A source that cannot be
/// reached, or does not let drover in, is one sentence with what to do (`crate::access`).
pub(crate) fn sizes(plan: &Plan, args: &ModelArgs, cloud: &CloudArgs) -> Result<Sizes, String> {
    if let Some(path) = &args.sizes {
        return read_sizes(path);
    }
    let cloud = Cloud::new(cloud.cloud, &cloud.aws, &cloud.sim, plan, Mode::Drill, "estimate")?;
    let rt = runtime().map_err(|e| e.to_string())?;
    rt.block_on(source_sizes(plan, &cloud)).map_err(|e| match &e {
        SizeError::Read { error, .. } => {
            access::message(error, plan.source.region.as_str(), &cloud.spec, Instead::SizesOrSim)
                .unwrap_or_else(|| e.to_string())
        }
        SizeError::Missing { .. } => e.to_string(),
    })
}

/// Why the source tables' sizes could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SizeError {
    /// DescribeTable failed.
    #[error("reading the size of {table}: {error}")]
    Read { table: String, error: CloudError },
    /// A plan table is not in the source region.
    #[error("source table `{table}` does not exist")]
    Missing { table: String },
}

/// The source tables' sizes, from DescribeTable (which AWS refreshes about every 6 hours).
/// Stops at the first table that cannot be read.
pub(crate) async fn source_sizes(plan: &Plan, cloud: &Cloud) -> Result<Sizes, SizeError> {
    let mut sizes = Sizes::new();
    for t in &plan.tables {
        let info = cloud
            .ports
            .tables
            .describe_table(plan.source.region.as_str(), &t.name)
            .await
            .map_err(|error| SizeError::Read { table: t.name.clone(), error })?;
        let info = info.ok_or_else(|| SizeError::Missing { table: t.name.clone() })?;
        sizes.insert(t.name.clone(), info.size_bytes);
    }
    Ok(sizes)
}

/// Runs the estimate.
pub(crate) fn run(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: DurationModel,
) -> Result<Estimate, String> {
    estimate::estimate(plan, mode, sizes, model, Limits::default())
}

/// The estimate for people.
pub(crate) fn render(plan: &Plan, e: &Estimate, note: &str) -> String {
    let mut out = format!("\nestimated {} ({note}):\n", e.mode.as_str());
    let objective = plan.objectives.rto;
    for t in &e.targets {
        let verdict = match objective {
            Some(o) if u128::try_from(t.rto_ms).unwrap_or(0) > o.as_millis() => {
                format!(" — exceeds the RTO objective of {}", drover_plan::format_duration(o))
            }
            Some(o) => {
                format!(" — within the RTO objective of {}", drover_plan::format_duration(o))
            }
            None => String::new(),
        };
        let _ = writeln!(out, "  {}: {}{verdict}", t.region, human(t.rto_ms));
        let path: Vec<String> =
            t.critical_path.iter().map(|(s, d)| format!("{s} ({})", human(*d))).collect();
        let _ = writeln!(out, "    critical path: {}", path.join(" -> "));
        let dom: Vec<String> =
            t.dominating.iter().take(3).map(|(t, d)| format!("{t} ({})", human(*d))).collect();
        let _ = writeln!(out, "    dominated by: {}", dom.join(", "));
    }
    out
}

/// Whether the estimate exceeds the plan's RTO objective.
pub(crate) fn exceeds(plan: &Plan, e: &Estimate) -> bool {
    plan.objectives.rto.is_some_and(|o| u128::try_from(e.rto_ms).unwrap_or(0) > o.as_millis())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("2 GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1.5TB"), Some(1_500_000_000_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5 parsecs"), None);
    }
}
