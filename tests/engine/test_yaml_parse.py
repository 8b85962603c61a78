"""Pipeline YAML is parsed once, with libyaml when present, to the same document, lines and messages."""

from __future__ import annotations

import pytest
import yaml

from server.engine import model
from server.engine.errors import ValidationError
from tests.engine.util import chain

TEXT = """version: 1
name: t
nodes:
  - id: a
    runtime: shell
    source: a.sh
    params: {when: 2024-01-02, n: 007, ok: yes, list: [1, 2.5, null, "x"]}
    outputs: [{name: out}]
  - id: b
    runtime: shell
    source: b.sh
    inputs: [{name: in}]
edges:
  - {from: a.out, to: b.in}
"""


def test_the_fast_parse_gives_the_document_and_lines_the_pure_python_loader_gives(workspace, monkeypatch):
    root, doc = model._parse_yaml(TEXT)
    assert doc == yaml.load(TEXT, Loader=yaml.SafeLoader)
    assert [item.start_mark.line + 1 for k, v in root.value if k.value == "nodes" for item in v.value] == [4, 9]
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)  # a machine without libyaml: the same answer
    assert model._parse_yaml(TEXT)[1] == doc


def test_a_broken_yaml_file_keeps_the_pure_python_message_and_its_hint(workspace):
    path = chain(workspace, [("a", "echo '[1]' > out.json\n")])
    path.write_text("version: 1\nnodes:\n  - id: a\n   runtime: shell\n")
    with pytest.raises(ValidationError) as exc:
        model.load_pipeline(path, workspace=workspace)
    [problem] = exc.value.problems
    assert problem.line == 4 and "check the indentation" in problem.message
