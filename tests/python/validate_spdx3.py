#!/usr/bin/env python3
"""Validates an SPDX 3.0.1 JSON-LD document offline with spdx-python-model, the bindings
generated from the official SPDX 3.0.1 SHACL model.

Reading checks class and property names, enum values and datatypes; linking finds
references to elements the document does not contain; writing back checks required
properties and cardinalities. The context URL and specVersion must be 3.0.1.
Exit 0 when valid, 1 with the problems otherwise."""
import io
import json
import sys

from spdx_python_model.bindings.v3_0_1 import model

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


def problems(path):
    with open(path) as f:
        raw = json.load(f)
    found = []
    if raw.get("@context") != CONTEXT:
        found.append(f"@context must be {CONTEXT}, not {raw.get('@context')!r}")
    objects = model.SHACLObjectSet()
    try:
        with open(path) as f:
            model.JSONLDDeserializer().read(f, objects)
    except Exception as e:
        return found + [f"{type(e).__name__}: {e}"]
    dangling = objects.link()
    if dangling:
        found.append("references to missing elements: " + ", ".join(sorted(dangling)))
    for o in objects.objects:
        if isinstance(o, model.CreationInfo) and o.specVersion != "3.0.1":
            found.append(f"specVersion {o.specVersion!r} is not 3.0.1")
    try:
        model.JSONLDSerializer().write(objects, io.BytesIO())
    except Exception as e:
        found.append(f"{type(e).__name__}: {e}")
    return found


if __name__ == "__main__":
    errors = problems(sys.argv[1])
    if errors:
        print("INVALID: " + "; ".join(errors))
        sys.exit(1)
    print("OK")
