//! The `plan` target: any bytes through `drover_plan::load`.

use std::collections::{BTreeMap, BTreeSet};

use drover_plan::{Diagnostics, Location, Mode, Outline, Plan, Region, Severity, TableId};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

/// Loads `data` as a plan file and checks the answer:
///
/// - a plan comes back exactly when no diagnostic is an error (a valid plan has no error);
/// - diagnostics are in file order; every place (primary and related) lies within the text,
///   on character boundaries, with the line and column its offset has; no message or label
///   is empty; each renders as `drover validate` renders it ([`render`]);
/// - loading is deterministic (the same diagnostics twice);
/// - a valid plan holds its own invariants ([`valid_plan`]).
///
/// # Panics
/// When any of these does not hold.
pub fn plan(data: &[u8]) {
    let loaded = drover_plan::load("fuzz.yaml", data);
    let diags = &loaded.diagnostics;
    assert_eq!(
        loaded.plan.is_some(),
        !diags.has_errors(),
        "a plan must come back exactly when there is no error: {:?}",
        summary(diags)
    );
    // The text the diagnostics point into: what `load` reads (invalid UTF-8 replaced).
    let text = if data.len() > drover_plan::MAX_PLAN_BYTES {
        String::new()
    } else {
        String::from_utf8_lossy(data).into_owned()
    };
    let items = diags.items();
    for pair in items.windows(2) {
        let key = |d: &drover_plan::Diagnostic| (d.location.offset, d.code);
        assert!(key(&pair[0]) <= key(&pair[1]), "diagnostics out of order: {:?}", summary(diags));
    }
    for d in items {
        assert!(!d.message.trim().is_empty(), "empty message: {d:?}");
        assert!(!d.label.is_empty(), "empty label: {d:?}");
        check_location(&text, &d.location, d);
        for r in &d.related {
            assert!(!r.label.is_empty(), "empty related label: {d:?}");
            check_location(&text, &r.location, d);
        }
    }
    render(diags, &text);

    let again = drover_plan::load("fuzz.yaml", data);
    assert_eq!(summary(diags), summary(&again.diagnostics), "loading twice differs");
    assert_eq!(loaded.plan.is_some(), again.plan.is_some(), "loading twice differs");

    if let Some(plan) = &loaded.plan {
        valid_plan(plan);
    }
}

/// Code, severity, place and message of each diagnostic.
fn summary(diags: &Diagnostics) -> Vec<(&'static str, Severity, usize, usize, &str)> {
    diags
        .items()
        .iter()
        .map(|d| (d.code.as_str(), d.severity, d.location.offset, d.location.len, &*d.message))
        .collect()
}

fn check_location(text: &str, l: &Location, d: &drover_plan::Diagnostic) {
    let end = l.offset.checked_add(l.len);
    assert!(
        end.is_some_and(|end| end <= text.len()),
        "place {l:?} beyond the text ({} bytes): {d:?}",
        text.len()
    );
    let end = l.offset + l.len;
    assert!(
        text.is_char_boundary(l.offset) && text.is_char_boundary(end),
        "place {l:?} splits a character: {d:?}"
    );
    let before = &text[..l.offset];
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = 1 + text[line_start..l.offset].chars().count();
    assert_eq!((l.line, l.column), (line, column), "line and column of {l:?} do not match: {d:?}");
}

/// Renders every diagnostic as `drover validate` does on a pipe (`crates/drover-cli/output.rs`):
/// the rendering names its code and its size is bounded by what it says, not by the text (a
/// snippet shows 4 KiB at most, long lines are cut); for a short text with few diagnostics,
/// it is what miette renders from its own `NamedSource` (drover-plan reads snippets through a
/// line index).
fn render(diags: &Diagnostics, text: &str) {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(80)
        .with_links(false);
    let plain_source = (text.len() <= 4096 && diags.items().len() <= 50)
        .then(|| NamedSource::new("fuzz.yaml", text.to_owned()));
    for (report, d) in diags.reports().zip(diags.items()) {
        let mut out = String::new();
        handler
            .render_report(&mut out, &report)
            .unwrap_or_else(|e| panic!("rendering failed ({e}): {d:?}"));
        assert!(out.contains(d.code.as_str()), "the rendering does not name its code: {out}");
        let said = d.message.len()
            + d.help.as_ref().map_or(0, String::len)
            + d.label.len()
            + d.related.iter().map(|r| r.label.len()).sum::<usize>();
        let limit = 8 * said + (1 + d.related.len()) * (64 << 10);
        assert!(out.len() <= limit, "{} bytes rendered (limit {limit}): {d:?}", out.len());
        if let Some(source) = &plain_source {
            let mut plain = String::new();
            let _ = handler.render_report(&mut plain, &Plain { d, source });
            assert_eq!(out, plain, "drover-plan's source renders differently from miette's");
        }
    }
}

/// A diagnostic as `drover_plan::Report` presents it, on miette's own `NamedSource`.
#[derive(Debug)]
struct Plain<'a> {
    d: &'a drover_plan::Diagnostic,
    source: &'a NamedSource<String>,
}

impl std::fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for Plain<'_> {}

impl miette::Diagnostic for Plain<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.d.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.d.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = |l: &Location| SourceSpan::new(l.offset.into(), l.len);
        let primary =
            LabeledSpan::new_primary_with_span(Some(self.d.label.clone()), span(&self.d.location));
        let related = self
            .d
            .related
            .iter()
            .map(move |r| LabeledSpan::new_with_span(Some(r.label.clone()), span(&r.location)));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// What every validated plan must satisfy: unique names, targets and dependencies that exist,
/// an acyclic graph whose topological order, waves and critical paths agree with each other
/// and with `depends_on`, valid drill table names, and outlines in every format.
///
/// # Panics
/// When any of these does not hold.
fn valid_plan(plan: &Plan) {
    let n = plan.tables.len();
    assert!(n > 0 && !plan.targets.is_empty(), "a valid plan has tables and targets");
    let names: BTreeSet<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), n, "table names repeat");
    let regions: BTreeSet<&Region> = plan.targets.iter().map(|t| &t.region).collect();
    assert_eq!(regions.len(), plan.targets.len(), "target regions repeat");
    assert!(!regions.contains(&plan.source.region), "the source is a target");
    for (i, t) in plan.tables.iter().enumerate() {
        assert!(valid_table_name(&t.name), "invalid table name {:?}", t.name);
        assert!(t.targets.iter().all(|r| regions.contains(r)), "{}: unknown target", t.name);
        let deps: BTreeSet<TableId> = plan.graph.dependencies(TableId(i)).collect();
        let declared: BTreeSet<TableId> = t.depends_on.iter().copied().collect();
        assert_eq!(deps, declared, "{}: graph and depends_on differ", t.name);
        assert_eq!(declared.len(), t.depends_on.len(), "{}: a dependency repeats", t.name);
        assert!(!deps.contains(&TableId(i)), "{} depends on itself", t.name);
        for d in &deps {
            assert!(d.0 < n, "{}: dependency out of range", t.name);
            assert!(
                plan.graph.dependents(*d).any(|x| x == TableId(i)),
                "{}: dependents() misses it",
                t.name
            );
            let dep = plan.table(*d);
            assert!(
                t.targets.iter().all(|r| dep.targets.contains(r)),
                "{} is restored where its dependency {} is not",
                t.name,
                dep.name
            );
        }
    }

    let order = plan.graph.topological_order();
    let mut position = vec![usize::MAX; n];
    for (p, id) in order.iter().enumerate() {
        assert_eq!(position[id.0], usize::MAX, "topological order repeats {id:?}");
        position[id.0] = p;
    }
    assert_eq!(order.len(), n, "topological order misses tables");
    for id in &order {
        for d in plan.graph.dependencies(*id) {
            assert!(position[d.0] < position[id.0], "topological order puts {id:?} before {d:?}");
        }
    }

    for target in &plan.targets {
        let region = &target.region;
        let here: BTreeSet<TableId> = plan.tables_in(region).collect();
        let waves = plan.graph.waves(plan, region);
        let mut wave_of = BTreeMap::new();
        for (w, wave) in waves.iter().enumerate() {
            assert!(!wave.is_empty(), "{region}: wave {w} is empty");
            for id in wave {
                assert!(wave_of.insert(*id, w).is_none(), "{region}: {id:?} in two waves");
            }
        }
        assert_eq!(wave_of.keys().copied().collect::<BTreeSet<_>>(), here, "{region}: waves");
        for (id, w) in &wave_of {
            let dep_waves: Vec<usize> = plan.graph.dependencies(*id).map(|d| wave_of[&d]).collect();
            // In the wave right after its latest dependency, or the first without any.
            assert_eq!(*w, dep_waves.iter().max().map_or(0, |m| m + 1), "{region}: {id:?}");
        }

        let path = plan.graph.critical_path(plan, region, |_| 1);
        assert_eq!(path.len(), waves.len(), "{region}: longest chain and wave count differ");
        check_chain(plan, region, &path);

        // A weighted critical path weighs as much as the heaviest chain, found independently.
        let weight = |id: TableId| 1 + (plan.table(id).name.len() as u64 * 7919 + id.0 as u64) % 97;
        let path = plan.graph.critical_path(plan, region, weight);
        check_chain(plan, region, &path);
        let mut heaviest = vec![0u64; n];
        for id in &order {
            if here.contains(id) {
                let before = plan.graph.dependencies(*id).map(|d| heaviest[d.0]).max();
                heaviest[id.0] = before.unwrap_or(0) + weight(*id);
            }
        }
        let max = heaviest.iter().copied().max().unwrap_or(0);
        assert_eq!(path.iter().map(|id| weight(*id)).sum::<u64>(), max, "{region}: critical path");

        for id in &here {
            let name = plan.drill.table_name(&plan.table(*id).name, "0123abcd", region);
            assert!(valid_table_name(&name), "drill table name {name:?} is not a table name");
        }
    }

    for mode in [Mode::Drill, Mode::Failover, Mode::Backup] {
        outline(plan, mode);
    }
    serde_json::to_string(plan).expect("a plan serializes");
}

/// `path` is a chain of tables restored in `region`, each depending on the one before.
fn check_chain(plan: &Plan, region: &Region, path: &[TableId]) {
    for id in path {
        assert!(plan.table(*id).targets.contains(region), "{region}: {id:?} is not restored here");
    }
    for pair in path.windows(2) {
        assert!(
            plan.graph.dependencies(pair[1]).any(|d| d == pair[0]),
            "{region}: chain {path:?} is broken"
        );
    }
}

fn outline(plan: &Plan, mode: Mode) {
    let outline = Outline::new(plan, mode);
    assert_eq!(outline.targets.len(), plan.targets.len());
    assert_eq!(outline.steps, mode.steps());
    for (t, target) in outline.targets.iter().zip(&plan.targets) {
        assert_eq!(t.region, target.region.as_str());
        assert_eq!(t.tables, plan.tables_in(&target.region).count());
        assert_eq!(t.waves.len(), t.wave_ids.len());
        assert_eq!(t.critical_path.len(), t.waves.len());
    }
    let text = outline.to_text();
    assert!(text.starts_with(&format!("plan {} ({})", plan.name, mode.as_str())), "{text}");
    let dot = outline.to_dot(plan);
    assert!(dot.starts_with("digraph plan {") && dot.ends_with("}\n"), "{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");
    let mermaid = outline.to_mermaid(plan);
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(mermaid.matches("  subgraph ").count(), plan.targets.len(), "{mermaid}");
    assert_eq!(mermaid.matches("\n  end\n").count(), plan.targets.len(), "{mermaid}");
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&outline).expect("an outline serializes"))
            .expect("an outline's JSON reads back");
    assert_eq!(json["targets"].as_array().map(Vec::len), Some(plan.targets.len()));
}

/// DynamoDB table names: 3 to 255 of `[a-zA-Z0-9_.-]`.
fn valid_table_name(s: &str) -> bool {
    (3..=255).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
