"""Workspace layout and the one guard for client-influenced paths."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UnsafePathError

PIPELINE_SUFFIXES = (".pipeline.yaml", ".pipeline.yml", ".pipeline.json")
STATE_DIR = ".pipeloom"


def safe_path(root: str | os.PathLike, candidate: str | os.PathLike, *, what: str = "path") -> Path:
    """Resolve `candidate` under `root` (symlinks included) or raise UnsafePathError."""
    root_r = Path(root).resolve()
    cand = Path(candidate)
    if not cand.is_absolute():
        cand = root_r / cand
    resolved = cand.resolve()
    try:
        resolved.relative_to(root_r)
    except ValueError:
        raise UnsafePathError(f"{what} `{candidate}` is outside the workspace {root_r}") from None
    return resolved


def is_pipeline_file(name: str) -> bool:
    return name.endswith(PIPELINE_SUFFIXES)


def strip_pipeline_suffix(name: str) -> str:
    for s in PIPELINE_SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def pipeline_id_for(workspace: str | os.PathLike, path: str | os.PathLike) -> str:
    """A stable, URL-friendly id: the path relative to the workspace, without
    the pipeline suffix, with folders joined by dots (`nodes/demo.pipeline.yaml`
    becomes `nodes.demo`)."""
    ws = Path(workspace).resolve()
    p = Path(path).resolve()
    try:
        rel = p.relative_to(ws).as_posix()
    except ValueError:
        rel = p.name
    return strip_pipeline_suffix(rel).replace("/", ".")


def find_pipelines(workspace: str | os.PathLike) -> list[Path]:
    """Every pipeline file under the workspace, skipping hidden and vendor folders."""
    ws = Path(workspace).resolve()
    found: list[Path] = []
    skip = {STATE_DIR, ".git", "node_modules", "target", "__pycache__", "vendor", ".venv", "venv"}
    for dirpath, dirnames, filenames in os.walk(ws):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for f in sorted(filenames):
            if is_pipeline_file(f):
                found.append(Path(dirpath) / f)
    return found


class Layout:
    """Where Pipeloom keeps its state inside one workspace."""

    def __init__(self, workspace: str | os.PathLike):
        self.workspace = Path(workspace).resolve()
        self.state = self.workspace / STATE_DIR
        self.runs = self.state / "runs"
        self.db_path = self.state / "pipeloom.db"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def node_dir(self, run_id: str, node_id: str) -> Path:
        return self.runs / run_id / node_id

    def log_path(self, run_id: str, node_id: str) -> Path:
        return self.runs / run_id / "_logs" / f"{node_id}.log"

    def trigger_dir(self, pipeline_id: str, trigger_id: str) -> Path:
        """A trigger's own state: pause flag, last tick, batches in flight and the last batch fed."""
        return self.state / "triggers" / pipeline_id / trigger_id


def cache_root() -> Path:
    """Build caches (binaries, virtualenvs, npm installs) keyed by content hash;
    shared across workspaces. `PIPELOOM_CACHE_DIR` overrides the location."""
    env = os.environ.get("PIPELOOM_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pipeloom"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file and os.replace, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
