"""The published JSON Schema and the format documentation stay in step with the parser."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from server.engine.model import NODE_KEYS, NOTE_KEYS, PORT_KEYS, TOP_KEYS
from server.engine.runtimes import RUNTIMES
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "server/engine/pipeline.schema.json").read_text())
DOC = (REPO / "docs/pipeline-format.md").read_text()


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_doc_example_and_repo_pipelines_match_schema():
    example = re.search(r"```yaml\n(version: 1.*?)```", DOC, re.S).group(1)
    jsonschema.validate(yaml.safe_load(example), SCHEMA)
    found = list(REPO.glob("nodes/**/*.pipeline.yaml"))
    for path in found:
        jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)


def test_schema_rejects_what_the_parser_rejects():
    bad = {"version": 1, "name": "x", "nodes": [{"id": "Bad", "runtime": "shell", "source": "a.sh"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    bad = {"version": 1, "name": "x", "nodes": [{"id": "a", "runtime": "command", "source": "a.sh"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    bad = {"version": 1, "name": "x", "nodes": [{"id": "a", "runtime": "shell", "source": "a.sh", "cache": "no"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    good = {"version": 1, "name": "x", "nodes": [{"id": "a", "runtime": "shell", "source": "a.sh", "cache": "never"}]}
    jsonschema.validate(good, SCHEMA)


def test_every_field_is_in_schema_and_documented():
    node_props = SCHEMA["$defs"]["node"]["properties"]
    for key in NODE_KEYS:
        assert key in node_props, f"node field `{key}` missing from the schema"
        assert f"| `{key}` |" in DOC, f"node field `{key}` is not documented"
    for key in PORT_KEYS:
        assert key in SCHEMA["$defs"]["input"]["properties"] or key in SCHEMA["$defs"]["output"]["properties"]
        assert f"| `{key}` |" in DOC, f"port field `{key}` is not documented"
    for key in TOP_KEYS:
        assert key in SCHEMA["properties"]
        assert f"| `{key}` |" in DOC, f"top-level field `{key}` is not documented"
    assert set(SCHEMA["$defs"]["node"]["properties"]["runtime"]["enum"]) == set(RUNTIMES)
    for key in NOTE_KEYS:
        assert key in SCHEMA["$defs"]["note"]["properties"]
        assert f"| `{key}` |" in DOC, f"note field `{key}` is not documented"
