//! The plan schema in the clients editors and CI tools use (issue 17): ajv 8 and Python's
//! `jsonschema` compile it as draft 2020-12 and agree with `drover validate` on the example
//! plans and on the invalid corpus's schema-level problems; the real yaml-language-server,
//! driven over stdio as an editor drives it, checks and completes a plan from the
//! `# yaml-language-server: $schema=...` line.
//!
//! The tools are installed outside the clone by `tests/editor/setup.sh` (`tests/run.sh`
//! calls it): the npm packages pinned by `tests/editor/package-lock.json` in
//! `$DROVER_EDITOR_TOOLS` (default `~/.cache/drover/editor-tools`), `jsonschema` pinned by
//! `tests/emulator/requirements.txt` in the emulator's venv. Without them these tests fail.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{drover, repo_root};
use crate::corpus::expectations;

const SCHEMA: &str = "crates/drover-plan/schema/plan.schema.json";

/// Diagnostic codes whose problems are the schema's too: an unknown key, a wrong type, a value
/// outside an enum or a constant, a missing key, a value that does not match a pattern or a
/// length. Every line of the corpus with one of these must be rejected by both validators.
const SCHEMA_CODES: &[&str] = &[
    "unknown-key",
    "wrong-type",
    "missing-key",
    "version",
    "stream-view-type",
    "plan-name",
    "region",
    "account-id",
    "vault-name",
    "kms-key-arn",
    "aws-managed-key",
    "external-id",
    "table-name",
    "attribute-name",
    "canary-key",
    "hook-name",
    "hook-run",
    "topic-arn",
    "no-targets",
    "no-tables",
];

/// Codes beyond what a JSON Schema says: YAML itself, references between entries, accounts and
/// partitions, ranges of durations, characters a pattern cannot portably say (tag keys), and
/// the semantics of templates. The schema may catch some of their lines (a malformed ARN or
/// duration), not all.
const SEMANTIC_CODES: &[&str] = &[
    "empty-plan",
    "yaml-syntax",
    "duplicate-key",
    "duration",
    "iam-role-arn",
    "role-arn",
    "no-role-arn",
    "missing-role-arn",
    "missing-restore-role",
    "role-conflict",
    "partition-mismatch",
    "kms-key-region",
    "kms-key-account",
    "event-bus",
    "tag",
    "target-is-source",
    "duplicate-target",
    "unknown-target",
    "duplicate-table",
    "unknown-dependency",
    "self-dependency",
    "duplicate-dependency",
    "dependency-not-in-target",
    "cycle",
    "rto-below-rpo",
    "drill-template",
    "duplicate-hook",
    "hook-timeout",
];

const SETUP: &str = "install them with `bash tests/editor/setup.sh` (tests/run.sh does)";

fn home_cache(var: &str, dir: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/drover")
                .join(dir)
        },
        PathBuf::from,
    )
}

/// The npm tools' folder, checked against the pinned versions.
fn tools() -> PathBuf {
    let dir = home_cache("DROVER_EDITOR_TOOLS", "editor-tools");
    let wanted: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/editor/package.json")).unwrap(),
    )
    .unwrap();
    for (name, version) in wanted["dependencies"].as_object().unwrap() {
        let manifest = dir.join("node_modules").join(name).join("package.json");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            panic!(
                "the editor tests need {name} {} in {}: {SETUP}",
                version.as_str().unwrap(),
                dir.display()
            );
        };
        let installed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            &installed["version"],
            version,
            "{name} in {} is not the pinned version: {SETUP}",
            dir.display()
        );
    }
    dir
}

/// The emulator venv's python, with `jsonschema`.
fn python() -> PathBuf {
    let python = home_cache("DROVER_EMULATOR_VENV", "emulator-venv").join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import jsonschema"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "the editor tests need Python's jsonschema in {}: {SETUP}", python.display());
    python
}

/// Runs `program args` with `stdin`, and parses its stdout as JSON; fails with its stderr.
fn run_json(program: &Path, args: &[&str], stdin: &[u8]) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {}: {e} (node is needed: Node 20 or later)", program.display())
        });
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {}: {}\n{}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn node() -> PathBuf {
    PathBuf::from("node")
}

fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.strip_prefix(repo_root()).unwrap().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    files
}

/// One plan as both validators saw it.
struct Checked {
    parse_error: Option<String>,
    /// The lines of each JSON pointer.
    lines: BTreeMap<String, BTreeSet<usize>>,
    ajv: Vec<String>,
    jsonschema: Vec<String>,
}

impl Checked {
    fn lines_of(&self, pointers: &[String]) -> BTreeSet<usize> {
        pointers.iter().flat_map(|p| self.lines.get(p).cloned().unwrap_or_default()).collect()
    }
}

fn pointers(errors: &Value) -> Vec<String> {
    errors.as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap().to_owned()).collect()
}

/// Compiles the schema with ajv and jsonschema and validates `files` with both.
fn check(files: &[String]) -> BTreeMap<String, Checked> {
    let tools = tools();
    let python = python();
    let mut args = vec!["tests/editor/schema-ajv.mjs", tools.to_str().unwrap(), SCHEMA];
    args.extend(files.iter().map(String::as_str));
    let ajv = run_json(&node(), &args, b"");
    assert_eq!(ajv["ajv"], "8.20.0");

    let parsed: Vec<&Value> =
        ajv["files"].as_array().unwrap().iter().filter(|f| f["parse_error"].is_null()).collect();
    let instances = tempfile::NamedTempFile::new().unwrap();
    serde_json::to_writer(&instances, &json!({ "files": parsed })).unwrap();
    let py = run_json(
        &python,
        &["tests/editor/schema_jsonschema.py", SCHEMA, instances.path().to_str().unwrap()],
        b"",
    );
    let py_errors: BTreeMap<&str, Vec<String>> = py["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), pointers(&f["errors"])))
        .collect();

    ajv["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap().to_owned();
            let checked = match f["parse_error"].as_str() {
                Some(e) => Checked {
                    parse_error: Some(e.to_owned()),
                    lines: BTreeMap::new(),
                    ajv: vec![],
                    jsonschema: vec![],
                },
                None => Checked {
                    parse_error: None,
                    lines: f["lines"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|l| l.as_u64().unwrap() as usize)
                                    .collect(),
                            )
                        })
                        .collect(),
                    ajv: pointers(&f["errors"]),
                    jsonschema: py_errors[path.as_str()].clone(),
                },
            };
            (path, checked)
        })
        .collect()
}

#[test]
fn schema_is_the_one_drover_prints_with_a_stable_id() {
    let file = std::fs::read_to_string(repo_root().join(SCHEMA)).unwrap();
    let run = drover(&["schema"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim_end(), file.trim_end());
    let schema: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["$id"], "https://drover.dev/schema/plan-v1.json");
    assert_eq!(schema["properties"]["version"]["const"], 1);
}

#[test]
fn ajv_and_jsonschema_accept_every_example_plan() {
    let files = yaml_files("plans");
    assert!(files.len() >= 3, "{files:?}");
    for (path, c) in check(&files) {
        assert_eq!(c.parse_error, None, "{path}");
        assert!(c.ajv.is_empty(), "ajv rejects {path}: {:?}", c.ajv);
        assert!(c.jsonschema.is_empty(), "jsonschema rejects {path}: {:?}", c.jsonschema);
        let run = drover(&["validate", "--deny-warnings", &path]);
        assert_eq!(run.code, 0, "{path}: {}", run.stderr);
    }
}

#[test]
fn ajv_and_jsonschema_reject_the_corpus_schema_level_problems() {
    let files = yaml_files("tests/plans/invalid");
    assert!(files.len() >= 20, "{files:?}");
    let mut failures = Vec::new();
    let mut covered = 0;
    for (path, c) in check(&files) {
        let expected = expectations(&std::fs::read_to_string(repo_root().join(&path)).unwrap());
        for (code, _) in &expected {
            assert!(
                SCHEMA_CODES.contains(&code.as_str()) || SEMANTIC_CODES.contains(&code.as_str()),
                "{path}: `{code}` is neither a schema code nor a semantic one in tests/editor.rs: say which"
            );
        }
        if let Some(e) = &c.parse_error {
            // Only YAML's own problems stop the YAML 1.2 parser editors use.
            assert!(
                expected
                    .iter()
                    .any(|(code, _)| ["yaml-syntax", "duplicate-key"].contains(&code.as_str())),
                "{path} does not parse: {e}"
            );
            continue;
        }
        let (ajv, py) = (c.lines_of(&c.ajv), c.lines_of(&c.jsonschema));
        for (code, line) in
            expected.iter().filter(|(code, _)| SCHEMA_CODES.contains(&code.as_str()))
        {
            covered += 1;
            if !ajv.contains(line) {
                failures.push(format!("{path}:{line}: `{code}` accepted by ajv"));
            }
            if !py.contains(line) {
                failures.push(format!("{path}:{line}: `{code}` accepted by jsonschema"));
            }
        }
        // The schema is never stricter than drover: a plan it rejects, drover rejects.
        let warnings_only =
            Path::new(&path).file_name().unwrap().to_str().unwrap().starts_with("warnings-");
        if warnings_only {
            assert!(
                c.ajv.is_empty() && c.jsonschema.is_empty(),
                "{path} is valid, the schema rejects it: {:?}",
                c.ajv
            );
        }
        // Both validators find the same places wrong.
        assert_eq!(ajv, py, "{path}: ajv {:?}, jsonschema {:?}", c.ajv, c.jsonschema);
    }
    assert!(covered >= 50, "only {covered} schema-level problems in the corpus");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A document an editor opens: its path, its text (unsaved edits included), and where to ask
/// for completion (0-based line and character), if anywhere.
struct Open {
    path: PathBuf,
    text: String,
    completion_at: Option<(usize, usize)>,
}

/// One yaml-language-server session over `documents`.
fn lsp(documents: &[Open]) -> Vec<Value> {
    let tools = tools();
    let session = json!({
        "root": repo_root(),
        "documents": documents
            .iter()
            .map(|d| json!({
                "path": d.path,
                "text": d.text,
                "completion": d.completion_at.map(|(line, character)| json!({"line": line, "character": character})),
            }))
            .collect::<Vec<_>>(),
    });
    let out = run_json(
        &node(),
        &["tests/editor/lsp.mjs", tools.to_str().unwrap()],
        session.to_string().as_bytes(),
    );
    assert_eq!(out["server"], "1.25.0");
    out["documents"].as_array().unwrap().clone()
}

fn demo() -> (PathBuf, String) {
    let path = repo_root().join("plans/demo.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "# yaml-language-server: $schema=../crates/drover-plan/schema/plan.schema.json"
    );
    // The modeline is relative to the plan's directory, as the server resolves it.
    assert!(path.parent().unwrap().join("../crates/drover-plan/schema/plan.schema.json").is_file());
    (path, text)
}

/// 0-based line of the first line of `text` equal to `line`.
fn line_of(text: &str, line: &str) -> usize {
    text.lines().position(|l| l == line).unwrap_or_else(|| panic!("no line `{line}`"))
}

#[test]
fn yaml_language_server_checks_plans_from_the_modeline() {
    let (path, text) = demo();
    // A plan being edited (unsaved, next to demo.yaml): a misspelt key and a wrong stream view.
    let typo = text
        .replacen("  - name: customers\n", "  - name: customers\n    ttl_atribute: expires_at\n", 1)
        .replacen("    stream: NEW_AND_OLD_IMAGES\n", "    stream: NEW_IMAGES\n", 1);
    let typo_path = repo_root().join("plans/typo.yaml");
    let docs = lsp(&[
        Open { path, text, completion_at: None },
        Open { path: typo_path, text: typo.clone(), completion_at: None },
    ]);

    assert_eq!(docs[0]["diagnostics"], json!([]), "plans/demo.yaml");

    let diagnostics = docs[1]["diagnostics"].as_array().unwrap();
    let by_line: BTreeMap<usize, &str> = diagnostics
        .iter()
        .map(|d| {
            (d["range"]["start"]["line"].as_u64().unwrap() as usize, d["message"].as_str().unwrap())
        })
        .collect();
    let unknown = line_of(&typo, "    ttl_atribute: expires_at");
    let stream = line_of(&typo, "    stream: NEW_IMAGES");
    assert_eq!(
        by_line.keys().copied().collect::<Vec<_>>(),
        vec![unknown, stream],
        "{diagnostics:#?}"
    );
    assert!(by_line[&unknown].contains("ttl_atribute"), "{}", by_line[&unknown]);
    assert!(by_line[&stream].contains("NEW_AND_OLD_IMAGES"), "{}", by_line[&stream]);
    for d in diagnostics {
        assert_eq!(d["severity"], 1, "{d}");
        assert_eq!(d["source"], "yaml-schema: drover DR plan, version 1", "{d}");
    }

    // drover itself reports the same two lines (1-based), with its codes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.yaml");
    std::fs::write(&file, &typo).unwrap();
    let run = drover(&["validate", "--format", "json", file.to_str().unwrap()]);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let codes: BTreeSet<(String, usize)> = json["plans"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap().to_owned(), d["line"].as_u64().unwrap() as usize))
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from([
            ("unknown-key".to_owned(), unknown + 1),
            ("stream-view-type".to_owned(), stream + 1)
        ])
    );
}

#[test]
fn yaml_language_server_completes_table_keys_with_their_descriptions() {
    let (path, text) = demo();
    // The cursor on a new, indented line of the table entry `customers` (name, validate).
    let entry = line_of(&text, "  - name: customers");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(entry + 1, "    ");
    let edited = lines.join("\n") + "\n";
    let docs = lsp(&[Open { path, text: edited, completion_at: Some((entry + 1, 4)) }]);

    assert_eq!(docs[0]["diagnostics"], json!([]));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join(SCHEMA)).unwrap()).unwrap();
    let table = &schema["properties"]["tables"]["items"]["properties"];
    let items: BTreeMap<&str, &Value> = docs[0]["completion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["label"].as_str().unwrap(), &i["documentation"]))
        .collect();
    // Every key a table may still take, and none it has or cannot take.
    let offered: BTreeSet<&str> = items.keys().copied().collect();
    let expected: BTreeSet<&str> = table
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !["name", "validate"].contains(k))
        .collect();
    assert_eq!(offered, expected, "{items:#?}");
    for key in ["depends_on", "ttl_attribute", "stream"] {
        assert!(expected.contains(key));
    }
    for (key, documentation) in items {
        let description = table[key]["description"].as_str().unwrap();
        assert_eq!(documentation.as_str(), Some(description), "{key}");
    }
}
