"""Python nodes: Pipeloom's own interpreter, or a cached venv for PEP 723 scripts."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

from ..errors import BuildError
from ..hashing import file_sha256, json_sha256
from ..model import Node, Pipeline
from .base import HELPERS_DIR, BuildLog, Prepared, Runtime, cache_dir, finish_marker, fresh_dir, locked, run_build

# The reference regex from PEP 723 for `# /// script` blocks.
_BLOCK_RE = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


def script_metadata(text: str) -> dict | None:
    """The PEP 723 `script` table of a source file, or None when it has none."""
    blocks = [m for m in _BLOCK_RE.finditer(text) if m.group("type") == "script"]
    if len(blocks) > 1:
        raise BuildError("more than one `# /// script` block (PEP 723 allows one)")
    if not blocks:
        return None
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"invalid TOML in the `# /// script` block: {exc}") from exc


class PythonRuntime(Runtime):
    name = "python"
    label = "Python"
    color = "#3572A5"
    language = "python"
    tool = None  # always present: Pipeloom's own interpreter
    source_ext = ".py"

    def _deps(self, node: Node, pipeline: Pipeline) -> list[str]:
        src = self.source_path(node, pipeline)
        meta = script_metadata(src.read_text(encoding="utf-8", errors="replace")) or {}
        deps = meta.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise BuildError("`dependencies` in the `# /// script` block must be a list of strings")
        return sorted(deps)

    def fingerprint(self, node: Node, pipeline: Pipeline) -> dict:
        return {"source": file_sha256(self.source_path(node, pipeline))}

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        # The helpers folder holds the `pipeloom` module and a sitecustomize that flushes stdout every 50 ms,
        # so printed lines show live without the cost of running unbuffered.
        # A PYTHONPATH of the node's own `env:` comes after the helpers, as the environment's does.
        rest = node.env.get("PYTHONPATH") if "PYTHONPATH" in node.env else os.environ.get("PYTHONPATH")
        env = {"PYTHONPATH": _join_path(str(HELPERS_DIR / "python"), rest)}
        deps = self._deps(node, pipeline)
        python = sys.executable
        if deps:
            python = str(ensure_venv(deps, log) / "bin" / "python")
        return Prepared([python, str(self.source_path(node, pipeline))], env)

    def template(self, node_id: str) -> str:
        return (
            f'"""{node_id}: read the inputs, do the work, write the outputs."""\n'
            "# Dependencies, if any, go in a PEP 723 block:\n"
            "# /// script\n# dependencies = []\n# ///\n\n"
            "import pipeloom\n\n"
            "params = pipeloom.params()\n"
            "rows = [{\"message\": \"hello from " + node_id + "\"}]\n"
            "pipeloom.write(\"out\", rows)\n"
            "print(f\"wrote {len(rows)} rows\")\n"
        )


def _join_path(first: str, rest: str | None) -> str:
    return first + (os.pathsep + rest if rest else "")


def ensure_venv(deps: list[str], log: BuildLog) -> Path:
    """A virtualenv holding `deps`, built once per dependency set (uv when present, else venv + pip)."""
    key = json_sha256({"deps": deps, "python": sys.version, "exe": sys.executable})[:24]
    root = cache_dir("venvs") / key
    if finish_marker(root).exists():
        return root
    with locked(root):
        if finish_marker(root).exists():
            return root
        fresh_dir(root)
        uv = _uv_binary()
        try:
            if uv:
                log(f"creating a virtualenv for {', '.join(deps)} with uv")
                run_build([uv, "venv", "--quiet", "--python", sys.executable, str(root)], log, what="uv venv")
                run_build([uv, "pip", "install", "--python", str(root / "bin" / "python"), *deps], log,
                          what="dependency install")
            else:
                log(f"creating a virtualenv for {', '.join(deps)} with venv + pip")
                run_build([sys.executable, "-m", "venv", str(root)], log, what="venv")
                run_build([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", *deps], log,
                          what="dependency install")
        except BuildError:
            shutil.rmtree(root, ignore_errors=True)
            raise
        finish_marker(root).write_text("ok\n")
    return root


def _uv_binary() -> str | None:
    try:
        from uv import find_uv_bin  # the `uv` PyPI package ships the binary

        return find_uv_bin()
    except Exception:
        return shutil.which("uv")
