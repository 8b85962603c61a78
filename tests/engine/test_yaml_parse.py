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


def test_a_flow_mapping_left_open_says_so(workspace):
    path = chain(workspace, [("a", "echo '[1]' > out.json\n")])
    path.write_text("version: 1\nname: t\nnodes: []\nedges:\n  - {from: a.out, to: b.in\n  - {from: b.out, to: c.in}\n")
    with pytest.raises(ValidationError) as exc:
        model.load_pipeline(path, workspace=workspace)
    [problem] = exc.value.problems
    assert problem.line == 6 and "a `{` or `[` on this line or above is not closed" in problem.message, problem


def test_a_deeply_nested_yaml_file_is_refused_without_crashing(tmp_path):
    """libyaml recurses in C; a deep document must go to the pure-Python loader, which stops with an error."""
    import subprocess
    import sys

    from tests.conftest import REPO

    docs = {
        "flow.pipeline.yaml": "nodes: " + "[" * 20000 + "]" * 20000 + "\nedges: []\n",
        "block.pipeline.yaml": "nodes:\n" + "".join("  " * i + "- \n" for i in range(3000)),
        "dashes.pipeline.yaml": "nodes:\n" + "- " * 20000 + "x\n",
        "maps.pipeline.yaml": "nodes: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n",
    }
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
        proc = subprocess.run([sys.executable, "-m", "server.cli", "validate", name], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120,
                              env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-500:])
        assert "nested too deeply" in proc.stderr, (name, proc.stderr[-300:])
