"""Small builders for pipelines in a test workspace."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def write_files(ws: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def write_pipeline(ws: Path, doc: dict, files: dict[str, str] | None = None,
                   name: str = "test.pipeline.yaml") -> Path:
    write_files(ws, files or {})
    path = ws / name
    if name.endswith(".json"):
        path.write_text(json.dumps(doc, indent=2))
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def shell_node(nid: str, script: str, *, inputs=(), outputs=("out",), **extra) -> tuple[dict, dict[str, str]]:
    """A shell node plus its script file."""
    node = {"id": nid, "runtime": "shell", "source": f"{nid}.sh",
            "inputs": [{"name": i} if isinstance(i, str) else i for i in inputs],
            "outputs": [{"name": o} if isinstance(o, str) else o for o in outputs], **extra}
    return node, {f"{nid}.sh": script}


def chain(ws: Path, specs: list[tuple[str, str]], **doc_extra) -> Path:
    """A linear pipeline of shell nodes; each spec is (id, script). Node i feeds node i+1 via `out`->`in`."""
    nodes, files, edges = [], {}, []
    for i, (nid, script) in enumerate(specs):
        node, f = shell_node(nid, script, inputs=("in",) if i else ())
        nodes.append(node)
        files.update(f)
        if i:
            edges.append({"from": f"{specs[i - 1][0]}.out", "to": f"{nid}.in"})
    return write_pipeline(ws, {"version": 1, "name": "chain", "nodes": nodes, "edges": edges, **doc_extra}, files)


def clean_env() -> dict[str, str]:
    """The current environment without Pipeloom's per-node variables (the test tag stays)."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PIPELOOM_") or k == "PIPELOOM_TEST_TAG"}


def port_env(workdir: Path, inputs: dict | None = None, outputs: dict | None = None, params: dict | None = None,
             base: dict | None = None) -> dict[str, str]:
    """The variables the runner gives a node, for running a program by hand.

    Ports are {name: (file, format)}, or {name: "file:format"}.
    """
    def spec(v):
        return tuple(v.split(":", 1)) if isinstance(v, str) else v

    env = dict(base if base is not None else clean_env())
    env["PIPELOOM_PORTS"] = json.dumps({
        "inputs": {n: {"path": str(workdir / spec(v)[0]), "format": spec(v)[1]} for n, v in (inputs or {}).items()},
        "outputs": {n: {"path": str(workdir / spec(v)[0]), "format": spec(v)[1]} for n, v in (outputs or {}).items()},
    })
    env["PIPELOOM_WORKDIR"] = str(workdir)
    if params is not None:
        env["PIPELOOM_PARAMS"] = json.dumps(params)
    return env


def ok(proc) -> str:
    """Assert a program run by hand exited 0; return its stdout."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def no_temp_files(folder: Path) -> None:
    """Helpers write via temporary files; none may be left once a program is done."""
    left = [p.name for p in folder.iterdir() if ".tmp-" in p.name]
    assert not left, f"temporary files left behind: {left}"


# What the Go and Rust helper programs in the tests write, in every format.
HELPER_EXPECTED = [
    {"sensor_id": "alpha", "value": 15, "note": "x, y"},
    {"sensor_id": "bravo", "value": 20, "note": 'say "hi"'},
    {"sensor_id": "charlie", "value": -40, "note": "two\nlines"},
]
