"""Checks the plan schema with Python's `jsonschema` (draft 2020-12) and validates plans with it.

    python schema_jsonschema.py SCHEMA INSTANCES

INSTANCES is a JSON file {"files": [{"path", "value"}]} (the plans as JSON, from
schema-ajv.mjs, so that both validators see the same YAML 1.2 reading). Prints
{"jsonschema": VERSION, "files": [{"path", "errors": [{"pointer", "keyword", "message"}]}]},
pointers as in schema-ajv.mjs: the unexpected key appended for `additionalProperties` and
the offending name for `propertyNames`
and the key for a `false` subschema. Exits 2 if the schema is not a valid 2020-12 schema.
"""

import json
import sys
from importlib.metadata import version

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def escape(part):
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(path):
    return "".join("/" + escape(p) for p in path)


def resolve(value, path):
    for part in path:
        value = value[part]
    return value


def main():
    schema_path, instances_path = sys.argv[1:3]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    try:
        # With the format checker: `pattern`s must be regular expressions ("regex" format).
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        print(f"jsonschema {version('jsonschema')} rejects {schema_path}: {e.message}", file=sys.stderr)
        sys.exit(2)
    validator = Draft202012Validator(schema)
    with open(instances_path, encoding="utf-8") as f:
        instances = json.load(f)
    out = []
    for file in instances["files"]:
        errors = []
        for e in validator.iter_errors(file["value"]):
            base = pointer(e.absolute_path)
            if e.validator == "additionalProperties" and isinstance(e.instance, dict):
                known = set(e.schema.get("properties", {}))
                for key in sorted(set(e.instance) - known):
                    errors.append({"pointer": f"{base}/{escape(key)}", "keyword": e.validator, "message": e.message})
            elif "propertyNames" in e.absolute_schema_path and isinstance(e.instance, str):
                # A name refused by `propertyNames`: jsonschema's path is the object's.
                errors.append({"pointer": f"{base}/{escape(e.instance)}", "keyword": "propertyNames", "message": e.message})
            elif e.validator is None and list(e.absolute_schema_path)[-1:] == ["properties"]:
                # A `false` subschema of `properties`: jsonschema's path is the parent's.
                parent = resolve(file["value"], e.absolute_path)
                keys = [k for k, v in parent.items() if v == e.instance] if isinstance(parent, dict) else []
                for key in keys:
                    errors.append({"pointer": f"{base}/{escape(key)}", "keyword": "false", "message": e.message})
            else:
                errors.append({"pointer": base, "keyword": e.validator, "message": e.message})
        out.append({"path": file["path"], "errors": errors})
    json.dump({"jsonschema": version("jsonschema"), "files": out}, sys.stdout)


if __name__ == "__main__":
    main()
