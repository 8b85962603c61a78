"""The sensor-alerts demo: copied from the repository's nodes/ folder into a workspace."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import ConflictError, NotFoundError
from .paths import atomic_write_text

DEMO_NAME = "sensor-alerts"
DEMO_FILE = f"{DEMO_NAME}.pipeline.yaml"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "target", "node_modules", ".venv", "*.egg-info",
                              ".pipeloom")


def demo_root() -> Path:
    """The folder holding the demo in this installation (the repository's nodes/)."""
    return Path(__file__).resolve().parents[2] / "nodes"


def create_demo(workspace: str | os.PathLike) -> Path:
    """Copy the demo pipeline and its node programs into `workspace`; returns the new pipeline file.

    The folder is copied first and the pipeline file written last, so a
    watcher never sees a pipeline whose programs are still missing.
    """
    ws = Path(workspace).resolve()
    src_file = demo_root() / DEMO_FILE
    src_dir = demo_root() / DEMO_NAME
    if not src_file.is_file() or not src_dir.is_dir():
        raise NotFoundError(f"the demo is not installed: {src_file} or {src_dir}/ is missing")
    dst_file = ws / DEMO_FILE
    dst_dir = ws / DEMO_NAME
    if dst_file.exists() or dst_dir.exists():
        raise ConflictError(f"the demo is already in this workspace ({DEMO_FILE}); open it, or move it away first")
    tmp_dir = ws / f".{DEMO_NAME}.tmp-{os.getpid()}"
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    shutil.copytree(src_dir, tmp_dir, ignore=SKIP, symlinks=False)
    os.replace(tmp_dir, dst_dir)
    atomic_write_text(dst_file, src_file.read_text(encoding="utf-8"))
    return dst_file
