"""Every runtime really builds and runs a program: Python (PEP 723), Node.js
(package.json), Go (single file and go.mod), Rust (frontmatter and Cargo.toml),
shell and plain commands."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from server.engine.model import load_pipeline
from server.engine.runner import RunOptions, Runner
from server.engine.store import Store
from tests.engine.util import write_pipeline


def run_one(ws: Path, node: dict, files: dict[str, str], extra_nodes=(), edges=()):
    path = write_pipeline(ws, {"version": 1, "name": "rt", "nodes": [node, *extra_nodes], "edges": list(edges)},
                          files)
    store = Store.open(ws)
    res = Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws).run()
    logs = {n: _text(store.log_path(res.run_id, n)) for n in res.nodes
            if res.nodes[n].status not in ("cached", "skipped")}
    return res, logs, path, store


def _text(log: Path) -> str:
    """A node's log; one that printed nothing has no file."""
    return log.read_text() if log.exists() else ""


def out_json(res, node: str, port: str = "out"):
    return json.loads(Path(res.nodes[node].artifacts[port]["path"]).read_text())


def test_python_plain(workspace):
    res, logs, *_ = run_one(workspace, {"id": "py", "runtime": "python", "source": "p.py",
                                        "outputs": [{"name": "out"}]},
                            {"p.py": "import json, sys\njson.dump({'exe': sys.executable}, open('out.json', 'w'))\n"})
    assert res.ok, logs
    import sys
    assert out_json(res, "py")["exe"] == sys.executable


def test_python_pep723_dependencies_in_cached_venv(workspace, require_tool):
    src = ("# /// script\n# dependencies = [\"six==1.16.0\"]\n# ///\n"
           "import json, sys, six\n"
           "json.dump({'six': six.__version__, 'prefix': sys.prefix}, open('out.json', 'w'))\n")
    res, logs, path, store = run_one(workspace, {"id": "dep", "runtime": "python", "source": "dep.py",
                                                 "outputs": [{"name": "out"}]}, {"dep.py": src})
    assert res.ok, logs
    got = out_json(res, "dep")
    assert got["six"] == "1.16.0"
    import sys
    assert got["prefix"] != sys.prefix, "ran inside its own virtual environment"
    res2 = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace,
                  options=RunOptions(force=True)).run()
    assert res2.ok and out_json(res2, "dep")["prefix"] == got["prefix"], "the venv is reused"


def test_node_plain_and_with_package_json(workspace, require_tool):
    require_tool("node")
    require_tool("npm")
    files = {
        "js/n.js": ("const isNumber = require('is-number');\nconst fs = require('fs');\n"
                    "fs.writeFileSync('out.json', JSON.stringify({ok: isNumber(5), bad: isNumber('x')}));\n"),
        "js/package.json": json.dumps({"name": "n", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}),
    }
    res, logs, *_ = run_one(workspace, {"id": "js", "runtime": "node", "source": "js/n.js",
                                        "outputs": [{"name": "out"}]}, files)
    assert res.ok, logs
    assert out_json(res, "js") == {"ok": True, "bad": False}
    assert not (workspace / "js" / "node_modules").exists(), "dependencies live in the cache, not beside the source"


def test_go_single_file_and_build_error(workspace, require_tool):
    require_tool("go")
    src = ('package main\nimport (\n\t"encoding/json"\n\t"os"\n)\n'
           'func main() {\n\tf, _ := os.Create("out.json")\n\tjson.NewEncoder(f).Encode(map[string]int{"go": 1})\n}\n')
    res, logs, *_ = run_one(workspace, {"id": "g", "runtime": "go", "source": "g.go", "outputs": [{"name": "out"}]},
                            {"g.go": src})
    assert res.ok, logs
    assert out_json(res, "g") == {"go": 1}
    bad, logs, *_ = run_one(workspace, {"id": "g", "runtime": "go", "source": "g.go", "outputs": [{"name": "out"}]},
                            {"g.go": "package main\nfunc main() { undefined_call() }\n"})
    assert bad.nodes["g"].status == "failed"
    assert "build failed" in bad.nodes["g"].message
    assert "undefined" in logs["g"]


def test_go_with_go_mod_and_helper(workspace, require_tool):
    require_tool("go")
    files = {
        "gomod/go.mod": "module example.com/filter\n\ngo 1.21\n",
        "gomod/main.go": ('package main\n\nimport "pipeloom.local/pipeloom"\n\n'
                          'func main() {\n\trows, err := pipeloom.ReadRecords("in")\n\tif err != nil { panic(err) }\n'
                          '\tfor _, r := range rows { r["seen"] = true }\n'
                          '\tif err := pipeloom.WriteRecords("out", rows); err != nil { panic(err) }\n}\n'),
        "seed.json": '[{"a": 1}, {"a": 2}]',
    }
    res, logs, *_ = run_one(workspace, {"id": "g", "runtime": "go", "source": "gomod/main.go",
                                        "inputs": [{"name": "in", "path": "seed.json"}],
                                        "outputs": [{"name": "out"}]}, files)
    assert res.ok, logs
    assert out_json(res, "g") == [{"a": 1, "seen": True}, {"a": 2, "seen": True}]


def test_rust_frontmatter_with_serde_json(workspace, require_tool):
    require_tool("cargo")
    src = ('---\n[dependencies]\nserde_json = "1"\n---\n'
           'use std::fs;\n'
           'fn main() {\n'
           '    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string("in.json").unwrap()).unwrap();\n'
           '    let n = v.as_array().unwrap().len();\n'
           '    fs::write("out.json", serde_json::json!({"count": n}).to_string()).unwrap();\n'
           '    println!("counted {n}");\n'
           '}\n')
    res, logs, *_ = run_one(workspace, {"id": "r", "runtime": "rust", "source": "r.rs",
                                        "inputs": [{"name": "in", "path": "seed.json"}],
                                        "outputs": [{"name": "out"}]},
                            {"r.rs": src, "seed.json": "[1, 2, 3]"})
    assert res.ok, logs
    assert out_json(res, "r") == {"count": 3}
    assert "counted 3" in logs["r"]


def test_rust_cargo_project_beside_source(workspace, require_tool):
    require_tool("cargo")
    files = {
        "proj/Cargo.toml": ('[package]\nname = "beside"\nversion = "0.1.0"\nedition = "2021"\n\n'
                            '[dependencies]\nitoa = "1"\n'),
        "proj/src/main.rs": ('fn main() {\n    let mut b = itoa::Buffer::new();\n'
                             '    std::fs::write("out.json", format!("{{\\"n\\": {}}}", b.format(42))).unwrap();\n}\n'),
    }
    res, logs, *_ = run_one(workspace, {"id": "r", "runtime": "rust", "source": "proj/src/main.rs",
                                        "outputs": [{"name": "out"}]}, files)
    assert res.ok, logs
    assert out_json(res, "r") == {"n": 42}


def test_command_runtime_tar(workspace):
    files = {"data.json": '{"x": 1}'}
    res, logs, *_ = run_one(workspace, {"id": "arc", "runtime": "command",
                                        "command": ["tar", "-czf", "a.tar.gz", "data.json"],
                                        "inputs": [{"name": "data", "path": "data.json"}],
                                        "outputs": [{"name": "a", "file": "a.tar.gz", "format": "binary"}]}, files)
    assert res.ok, logs
    with tarfile.open(res.nodes["arc"].artifacts["a"]["path"]) as tf:
        assert tf.getnames() == ["data.json"]


def folder_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def twice_unchanged(ws: Path, node: dict, files: dict[str, str], folder: str):
    """Run a node twice: its source folder must be byte-for-byte as written, and the second run cached."""
    import uuid

    src = node["source"]  # a fresh comment: the build really happens, whatever the shared cache holds
    files = {**files, src: files[src] + ("# " if src.endswith(".py") else "// ") + uuid.uuid4().hex + "\n"}
    res, logs, path, store = run_one(ws, node, files)
    assert res.ok, logs
    before = {k: v.encode() for k, v in files.items() if k.startswith(folder + "/")}
    after = {f"{folder}/{k}": v for k, v in folder_state(ws / folder).items()}
    assert after == before, f"the build changed {sorted(set(after) ^ set(before)) or 'files'} in {folder}/"
    again = Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws).run()
    assert again.nodes[node["id"]].status == "cached", again.nodes[node["id"]].message
    return res


def test_rust_cargo_build_leaves_the_project_folder_alone(workspace, require_tool):
    require_tool("cargo")
    files = {
        "proj/Cargo.toml": ('[package]\nname = "untouched"\nversion = "0.1.0"\nedition = "2021"\n\n'
                            '[dependencies]\nshout = { path = "../shout" }\n'),
        "proj/src/main.rs": 'fn main() {\n    std::fs::write("out.json", shout::it("[1]")).unwrap();\n}\n',
        "shout/Cargo.toml": '[package]\nname = "shout"\nversion = "0.1.0"\nedition = "2021"\n',
        "shout/src/lib.rs": "pub fn it(s: &str) -> String { s.to_string() }\n",
    }
    res = twice_unchanged(workspace, {"id": "r", "runtime": "rust", "source": "proj/src/main.rs",
                                      "outputs": [{"name": "out"}]}, files, "proj")
    assert out_json(res, "r") == [1]
    assert not (workspace / "shout" / "Cargo.lock").exists()


def test_go_module_build_leaves_the_folder_alone(workspace, require_tool):
    require_tool("go")
    files = {"gm/go.mod": "module example.com/gm\n\ngo 1.21\n",
             "gm/main.go": 'package main\n\nimport "os"\n\nfunc main() { os.WriteFile("out.json", []byte("[2]"), 0o644) }\n'}
    res = twice_unchanged(workspace, {"id": "g", "runtime": "go", "source": "gm/main.go",
                                      "outputs": [{"name": "out"}]}, files, "gm")
    assert out_json(res, "g") == [2]


def test_node_install_leaves_the_folder_alone(workspace, require_tool):
    require_tool("node")
    require_tool("npm")
    files = {"nj/package.json": json.dumps({"name": "nj", "version": "1.0.0", "dependencies": {}}),
             "nj/n.js": "require('fs').writeFileSync('out.json', '[3]');\n"}
    res = twice_unchanged(workspace, {"id": "j", "runtime": "node", "source": "nj/n.js",
                                      "outputs": [{"name": "out"}]}, files, "nj")
    assert out_json(res, "j") == [3]
