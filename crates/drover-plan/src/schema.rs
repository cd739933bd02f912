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
    }

    #[test]
    fn table_keys_are_settings_plus_name_and_dependencies() {
        let mut expected = set(keys::SETTINGS);
        expected.extend(["name", "depends_on"]);
        assert_eq!(set(keys::TABLE), expected);
    }
}
