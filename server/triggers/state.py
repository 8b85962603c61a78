"""A trigger's own state on disk: paused or not, and what it last did (a schedule's last tick).

One small JSON file per trigger under `.pipeloom/triggers/<pipeline>/<trigger>/`,
written atomically, so it survives restarts and a kill -9 leaves either the
old or the new state, never half of one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from server.engine.paths import Layout, atomic_write_text


def trigger_dir(workspace: str | Path, pipeline_id: str, trigger_id: str) -> Path:
    """Where one trigger keeps its state and its in-flight batch files."""
    return Layout(workspace).trigger_dir(pipeline_id, trigger_id)


class TriggerState:
    """Read and update one trigger's state file."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        self._lock = threading.Lock()

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, **fields) -> dict:
        """Merge `fields` into the state and write it atomically; returns the new state."""
        with self._lock:
            data = self.read()
            data.update(fields)
            atomic_write_text(self.path, json.dumps(data, sort_keys=True, indent=1) + "\n")
            return data

    @property
    def paused(self) -> bool:
        return bool(self.read().get("paused"))
