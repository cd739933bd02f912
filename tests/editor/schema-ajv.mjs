// Compiles the plan schema with ajv (draft 2020-12, strict) and validates YAML plans with it.
//
//   node schema-ajv.mjs TOOLS SCHEMA PLAN...
//
// TOOLS is the folder tests/editor/setup.sh installed. Prints one JSON document:
// {"files": [{"path", "parse_error", "value", "lines", "errors"}]}, where `value` is the plan
// as JSON (YAML 1.2, as drover and yaml-language-server read it), `lines` maps the JSON
// pointer of every node to the 1-based lines that name it (its key's line, and the line its
// value starts on), and `errors` are ajv's errors as JSON pointers: the instance's, with the
// unexpected key appended for `additionalProperties`, the offending name for
// `propertyNames`. Exits 2 if the schema does not compile.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [tools, schemaPath, ...plans] = process.argv.slice(2);
const require = createRequire(join(tools, "node_modules", "noop.js"));
const Ajv2020 = require("ajv/dist/2020").default;
const YAML = require("yaml");

const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
let validate;
try {
  // strict: unknown keywords, unknown formats, ignored keywords and ambiguous types are
  // errors, not warnings; ajv compiles `pattern`s with the `u` flag, as editors do.
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  validate = ajv.compile(schema);
} catch (e) {
  console.error(`ajv ${require("ajv/package.json").version} cannot compile ${schemaPath}: ${e.message}`);
  process.exit(2);
}

const escape = (s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");

function walk(node, pointer, keyLine, lines, lc) {
  if (!node) return;
  const own = node.range ? lc.linePos(node.range[0]).line : keyLine;
  lines[pointer] = [...new Set([keyLine ?? own, own])];
  if (YAML.isMap(node)) {
    for (const pair of node.items) {
      const key = YAML.isScalar(pair.key) ? pair.key.value : String(pair.key);
      const kl = pair.key?.range ? lc.linePos(pair.key.range[0]).line : own;
      walk(pair.value, `${pointer}/${escape(key)}`, kl, lines, lc);
      lines[`${pointer}/${escape(key)}`] ??= [kl];
    }
  } else if (YAML.isSeq(node)) {
    node.items.forEach((item, i) => walk(item, `${pointer}/${i}`, undefined, lines, lc));
  }
}

const files = plans.map((path) => {
  const text = readFileSync(path, "utf8");
  const lc = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    return { path, parse_error: doc.errors[0].message };
  }
  const value = doc.toJS({ maxAliasCount: 100 });
  const lines = {};
  walk(doc.contents, "", undefined, lines, lc);
  const errors = [];
  if (!validate(value)) {
    for (const e of validate.errors) {
      const name = e.keyword === "additionalProperties" ? e.params.additionalProperty : e.propertyName ?? e.params.propertyName;
      const extra = name === undefined ? "" : `/${escape(name)}`;
      errors.push({ pointer: e.instancePath + extra, keyword: e.keyword, message: e.message });
    }
  }
  return { path, parse_error: null, value, lines, errors };
});
process.stdout.write(JSON.stringify({ ajv: require("ajv/package.json").version, files }));
