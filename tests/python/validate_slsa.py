#!/usr/bin/env python3
"""Validates an in-toto Statement v1 carrying an SLSA v1 provenance predicate against the
protobuf definitions of the in-toto attestation framework (in_toto_attestation, installed
with model-signing): unknown or mistyped fields fail, and so do missing required ones."""
import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2

with open(sys.argv[1]) as f:
    doc = json.load(f)
errors = []
try:
    statement = json_format.ParseDict(doc, statement_pb2.Statement())
    provenance = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
except Exception as e:  # unknown field, wrong type
    print(f"INVALID: {type(e).__name__}: {e}")
    sys.exit(1)
if statement.type != "https://in-toto.io/Statement/v1":
    errors.append("_type is not in-toto Statement v1")
if statement.predicate_type != "https://slsa.dev/provenance/v1":
    errors.append("predicateType is not SLSA provenance v1")
if not statement.subject or not all(s.digest for s in statement.subject):
    errors.append("every subject needs a digest")
bd = provenance.build_definition
if not bd.build_type:
    errors.append("buildDefinition.buildType is required")
if not bd.HasField("external_parameters"):
    errors.append("buildDefinition.externalParameters is required")
if not provenance.run_details.builder.id:
    errors.append("runDetails.builder.id is required")
for dep in bd.resolved_dependencies:
    if not (dep.uri or dep.digest or dep.content):
        errors.append(f"resolved dependency {dep.name!r} needs a uri, digest or content")
if errors:
    print("INVALID: " + "; ".join(errors))
    sys.exit(1)
print("OK")
