//! The JSON Schema of the plan format, for editors and other tools (`drover schema`).
//!
//! The schema is written by hand; a test keeps its keys equal to the ones the lowering reads.

/// JSON Schema (draft 2020-12) of plan format version 1.
pub const JSON_SCHEMA: &str = include_str!("../schema/plan.schema.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::JSON_SCHEMA;
    use crate::lower::keys;

    fn props<'a>(v: &'a Value, pointer: &str) -> BTreeSet<&'a str> {
        v.pointer(pointer)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("no object at {pointer}"))
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn set(keys: &[&'static str]) -> BTreeSet<&'static str> {
        keys.iter().copied().collect()
    }

    #[test]
    fn schema_keys_match_the_format() {
        let s: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        assert_eq!(props(&s, "/properties"), set(keys::TOP));
        assert_eq!(props(&s, "/properties/source/properties"), set(keys::SOURCE));
        assert_eq!(props(&s, "/properties/objectives/properties"), set(keys::OBJECTIVES));
        assert_eq!(props(&s, "/properties/targets/items/properties"), set(keys::TARGET));
        assert_eq!(props(&s, "/properties/defaults/properties"), set(keys::SETTINGS));
        assert_eq!(props(&s, "/properties/tables/items/properties"), set(keys::TABLE));
        assert_eq!(props(&s, "/$defs/validate/properties"), set(keys::VALIDATE));
        assert_eq!(props(&s, "/properties/drill/properties"), set(keys::DRILL));
        assert_eq!(props(&s, "/properties/backup_jobs/properties"), set(keys::BACKUP_JOBS));
        assert_eq!(
            props(&s, "/properties/drill/properties/source_reads/properties"),
            set(keys::SOURCE_READS)
        );
        assert_eq!(props(&s, "/properties/hooks/properties"), set(keys::HOOKS));
        assert_eq!(props(&s, "/$defs/hook/properties"), set(keys::HOOK));
        assert_eq!(props(&s, "/properties/notify/properties"), set(keys::NOTIFY));
        assert_eq!(
            props(&s, "/properties/notify/properties/eventbridge/properties"),
            set(keys::EVENTBRIDGE)
        );
        assert_eq!(props(&s, "/properties/notify/properties/sns/properties"), set(keys::SNS));
        // Hooks are per table: `defaults.validate` refuses them.
        assert_eq!(
            s.pointer("/properties/defaults/properties/validate/properties/hooks"),
            Some(&Value::Bool(false))
        );
    }

    fn patterns<'a>(v: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("pattern", Value::String(p)) => out.push((at.to_owned(), p)),
                        _ => patterns(v, &format!("{at}/{k}"), out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    patterns(v, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// Editors and validators compile `pattern`s as ECMA-262 regular expressions (JSON Schema
    /// 2020-12, §6.3.3), often with the `u` flag: Perl's inline flags (`(?i)`), lookbehind
    /// and `\A`/`\z` anchors make the whole schema fail to load in some of them.
    #[test]
    fn patterns_are_ecma_262() {
        let s: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        let mut found = Vec::new();
        patterns(&s, "", &mut found);
        assert!(found.len() >= 15, "{found:?}");
        for (at, p) in found {
            for (i, _) in p.match_indices("(?") {
                let next = p[i + 2..].chars().next();
                assert!(
                    matches!(next, Some(':' | '=' | '!')),
                    "{at}: `{p}` has `(?` not ECMA-262 accepts"
                );
            }
            for bad in ["(?<=", "(?<!", "\\A", "\\z", "\\Z"] {
                assert!(!p.contains(bad), "{at}: `{p}` has `{bad}`");
            }
            // Patterns are not anchored unless they say so.
            assert!(p.starts_with('^'), "{at}: `{p}` is not anchored");
        }
    }

    /// The keywords of JSON Schema draft 2020-12 (core, applicator, validation, meta-data,
    /// format annotation and content vocabularies).
    const KEYWORDS: &[&str] = &[
        "$schema",
        "$id",
        "$ref",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "$comment",
        "$defs",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "prefixItems",
        "items",
        "contains",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "required",
        "dependentRequired",
        "title",
        "description",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "examples",
        "format",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
    ];

    fn keywords(schema: &Value, at: &str, bad: &mut Vec<String>) {
        let Value::Object(map) = schema else {
            // A boolean schema; anything else is not a schema.
            if !schema.is_boolean() {
                bad.push(format!("{at}: not a schema"));
            }
            return;
        };
        for (k, v) in map {
            let here = format!("{at}/{k}");
            if !KEYWORDS.contains(&k.as_str()) {
                bad.push(format!("{here}: not a draft 2020-12 keyword"));
            }
            match k.as_str() {
                "$defs" | "properties" | "patternProperties" | "dependentSchemas" => {
                    for (name, sub) in v.as_object().into_iter().flatten() {
                        keywords(sub, &format!("{here}/{name}"), bad);
                    }
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    for (i, sub) in v.as_array().into_iter().flatten().enumerate() {
                        keywords(sub, &format!("{here}/{i}"), bad);
                    }
                }
                "not"
                | "if"
                | "then"
                | "else"
                | "items"
                | "contains"
                | "additionalProperties"
                | "propertyNames"
                | "unevaluatedItems"
                | "unevaluatedProperties"
                | "contentSchema" => keywords(v, &here, bad),
                _ => {}
            }
        }
    }

    /// Every keyword is a 2020-12 one (no `definitions`, `dependencies`, tuple `items` or
    /// vendor keywords), so that validators in strict mode (ajv) compile the schema.
    #[test]
    fn keywords_are_draft_2020_12() {
        let s: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        let mut bad = Vec::new();
        keywords(&s, "", &mut bad);
        assert!(bad.is_empty(), "{bad:#?}");
        // Tuple validation is `prefixItems` in 2020-12: `items` is one schema.
        assert!(!JSON_SCHEMA.contains("\"items\": ["), "`items` is an array");
    }

    /// The schema's identity is part of the plan format's contract (docs/plan-reference.md):
    /// editors' mappings and caches key on `$id`, which names the format version.
    #[test]
    fn id_and_version_are_stable() {
        let s: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["$id"], "https://drover.dev/schema/plan-v1.json");
        assert_eq!(s["properties"]["version"]["const"], 1);
        assert_eq!(s["title"], "drover DR plan, version 1");
    }

    #[test]
    fn table_keys_are_settings_plus_name_and_dependencies() {
        let mut expected = set(keys::SETTINGS);
        expected.extend(["name", "depends_on"]);
        assert_eq!(set(keys::TABLE), expected);
    }
}
