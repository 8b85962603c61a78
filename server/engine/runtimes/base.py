"""What every runtime provides, plus the build-cache plumbing they share."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import BuildError
from ..model import Node, Pipeline
from ..paths import cache_root
from .. import toolchains

HELPERS_DIR = Path(__file__).resolve().parent.parent / "helpers"

BuildLog = Callable[[str], None]


@dataclass
class Prepared:
    """How to start a node's program once it is built."""

    argv: list[str]
    env: dict[str, str]


class Runtime:
    """A language or tool that can run a node. Subclasses register in `runtimes/__init__.py`."""

    name: str = ""
    label: str = ""
    color: str = "#8b949e"
    language: str = "text"  # Pygments lexer alias for highlighting the source
    tool: str | None = None  # the command this runtime needs on PATH
    needs_source = True
    source_ext = ""

    def missing_toolchain(self) -> str | None:
        """A sentence naming the missing command, or None when the toolchain is there."""
        if self.tool and not toolchains.resolve(self.tool):
            return f"runtime `{self.name}` needs the `{self.tool}` command; not found on PATH"
        return None

    def source_path(self, node: Node, pipeline: Pipeline) -> Path:
        return (Path(pipeline.base_dir or ".") / (node.source or "")).resolve()

    def fingerprint(self, node: Node, pipeline: Pipeline) -> dict:
        """What, besides inputs and params, decides this node's output (hashed into the cache key)."""
        from ..hashing import file_sha256

        return {"source": file_sha256(self.source_path(node, pipeline))}

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        """Build if needed (cached by content hash) and return the argv to start."""
        raise NotImplementedError

    def template(self, node_id: str) -> str:
        """Starter source for a new node of this runtime."""
        return ""

    def describe(self) -> dict:
        return {
            "name": self.name, "label": self.label, "color": self.color, "language": self.language,
            "needs_source": self.needs_source, "source_ext": self.source_ext,
            "available": self.missing_toolchain() is None,
        }


@contextlib.contextmanager
def locked(key_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock for one cache entry so concurrent builds of it happen once."""
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = key_dir.with_name(key_dir.name + ".lock")
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cache_dir(kind: str) -> Path:
    d = cache_root() / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_build(argv: list[str], log: BuildLog, *, cwd: Path | None = None, env: dict | None = None,
              what: str = "build") -> None:
    """Run a build step, streaming its output to the node's log; raise BuildError on failure."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log(f"$ {' '.join(argv)}")
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise BuildError(f"{what} could not start `{argv[0]}`: {exc}") from exc
    assert proc.stdout is not None
    tail: list[str] = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        log(line)
        tail.append(line)
        del tail[:-20]
    code = proc.wait()
    if code != 0:
        hint = next((ln for ln in tail if "error" in ln.lower()), tail[-1] if tail else "")
        raise BuildError(f"{what} failed (exit {code}): {hint.strip()}")


def finish_marker(d: Path) -> Path:
    return d / ".pipeloom-complete"


def fresh_dir(d: Path) -> None:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
