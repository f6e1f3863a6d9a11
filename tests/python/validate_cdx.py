#!/usr/bin/env python3
"""Validates a CycloneDX JSON document offline against the official 1.6 JSON schema (strict
variant) bundled with cyclonedx-python-lib. Exit 0 when valid, 1 with the error otherwise."""
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

with open(sys.argv[1]) as f:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(f.read())
if error:
    print(f"INVALID: {error}")
    sys.exit(1)
print("OK")
