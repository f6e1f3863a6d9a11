#!/usr/bin/env python3
"""Validates an OSV advisory against the official OSV JSON schema (the copy the `osv` package
ships in osv/osv-schema/validation/schema.json, draft 2020-12). One substitution: the list of
registered home-database id prefixes gains `KYSA`, kaiyuan's own prefix, which a private
database cannot register. Exit 0 when valid, 1 with the errors otherwise."""
import json
import os
import sys

import importlib.util

import jsonschema

# Located, not imported: the package's own code needs Google Cloud libraries.
package_dir = os.path.dirname(importlib.util.find_spec("osv").origin)
schema_path = os.path.join(package_dir, "osv-schema", "validation", "schema.json")
with open(schema_path) as f:
    schema = json.load(f)
prefix = schema["$defs"]["prefix"]
prefix["pattern"] = prefix["pattern"].replace("^(", "^(KYSA|", 1)
with open(sys.argv[1]) as f:
    doc = json.load(f)
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
if errors:
    print("INVALID: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors))
    sys.exit(1)
print("OK")
