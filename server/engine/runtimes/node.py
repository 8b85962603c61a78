"""Node.js nodes: `node SOURCE`, with package.json dependencies installed once per manifest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import BuildError
from ..hashing import file_sha256, json_sha256
from ..model import Node, Pipeline
from .. import toolchains
from .base import HELPERS_DIR, BuildLog, Prepared, Runtime, cache_dir, finish_marker, fresh_dir, locked, run_build

LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")


class NodeRuntime(Runtime):
    name = "node"
    label = "Node.js"
    color = "#f1e05a"
    language = "javascript"
    tool = "node"
    source_ext = ".js"

    def manifests(self, node: Node, pipeline: Pipeline) -> list[Path]:
        folder = self.source_path(node, pipeline).parent
        return [folder / n for n in ("package.json", *LOCKFILES) if (folder / n).is_file()]

    def fingerprint(self, node: Node, pipeline: Pipeline) -> dict:
        fp = {"source": file_sha256(self.source_path(node, pipeline))}
        fp["manifests"] = {p.name: file_sha256(p) for p in self.manifests(node, pipeline)}
        return fp

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        paths = [str(HELPERS_DIR / "node")]
        manifests = self.manifests(node, pipeline)
        if any(p.name == "package.json" for p in manifests):
            paths.append(str(ensure_node_modules(manifests, log)))
        if os.environ.get("NODE_PATH"):
            paths.append(os.environ["NODE_PATH"])
        node_bin = toolchains.resolve("node") or "node"
        return Prepared([node_bin, str(self.source_path(node, pipeline))], {"NODE_PATH": os.pathsep.join(paths)})

    def template(self, node_id: str) -> str:
        return (
            f"// {node_id}: read the inputs, do the work, write the outputs.\n"
            "// Dependencies, if any, go in a package.json beside this file.\n"
            "const pipeloom = require('pipeloom');\n\n"
            "const params = pipeloom.params();\n"
            f"const rows = [{{ message: 'hello from {node_id}' }}];\n"
            "pipeloom.write('out', rows);\n"
            "console.log(`wrote ${rows.length} rows`);\n"
        )


def ensure_node_modules(manifests: list[Path], log: BuildLog) -> Path:
    """node_modules for one manifest (and lock file), installed once into the shared cache."""
    key = json_sha256({p.name: file_sha256(p) for p in manifests})[:24]
    root = cache_dir("npm") / key
    if finish_marker(root).exists():
        return root / "node_modules"
    npm = toolchains.resolve("npm")
    if not npm:
        raise BuildError("package.json needs the `npm` command; not found on PATH")
    with locked(root):
        if finish_marker(root).exists():
            return root / "node_modules"
        fresh_dir(root)
        for p in manifests:
            shutil.copy2(p, root / p.name)
        has_lock = any(p.name in LOCKFILES for p in manifests)
        argv = [npm, "ci" if has_lock else "install", "--no-audit", "--no-fund", "--omit=dev"]
        try:
            run_build(argv, log, cwd=root, what="npm install")
        except BuildError:
            shutil.rmtree(root, ignore_errors=True)
            raise
        finish_marker(root).write_text("ok\n")
    return root / "node_modules"
