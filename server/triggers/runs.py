"""Starting the runs triggers ask for, on whatever starts runs (the studio's run manager, or a plain runner).

A trigger hands over the file that feeds its entry input; this turns it into a
run with that input and an origin saying what fed it, keeps a copy as the
input's "last batch" (what a run by hand uses when the input has no sample),
and reads the finished run back as a FeedOutcome.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from server.engine.logs import last_error_lines
from server.engine.paths import Layout, pipeline_id_for

from .base import FeedOutcome
from .http import RunHandle

_FAILED = ("failed", "timed_out", "cancelled")


def keep_last_batch(folder: Path, path: Path) -> None:
    """Make `folder/last.<ext>` the file that fed the latest run (a hard link when possible), atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = "".join(Path(path).suffixes[-1:]) or ".data"
    tmp = folder / f".last{ext}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    for old in folder.glob("last.*"):
        if old.name != f"last{ext}":
            old.unlink(missing_ok=True)
    os.replace(tmp, folder / f"last{ext}")


def outcome_of(record: dict, layout: Layout | None = None) -> FeedOutcome:
    """A stored run (Store.get_run) as the outcome a trigger acts on. With the workspace's `layout`, a
    failed step's message ends with the last line it wrote to stderr ("exited with code 1: KeyError: 'qty'"),
    so a caller, a failed/ note or a dead letter says why without opening the log."""
    ok = record.get("status") == "succeeded"
    nodes = record.get("nodes") or {}
    failed = next((nid for nid, n in nodes.items() if n.get("status") in _FAILED), None)
    message = None
    if not ok:
        message = (nodes.get(failed) or {}).get("message") if failed else None
        if message and layout is not None and record.get("run_id") and nodes[failed].get("status") == "failed":
            last = last_error_lines(layout.log_path(record["run_id"], failed), 1)
            if last and last[0].strip() not in message:
                message = f"{message}: {last[0].strip()}"
        message = message or record.get("message") or f"the run ended {record.get('status')}"
    outputs = {f"{nid}.{port}": a["path"] for nid, n in nodes.items() for port, a in (n.get("artifacts") or {}).items()}
    return FeedOutcome(ok=ok, run_id=record.get("run_id"), message=message, failed_node=failed, outputs=outputs)


def make_starter(workspace: str | os.PathLike, *, start_run: Callable[..., str],
                 wait_run: Callable[[str, float | None], bool], get_run: Callable[[str], dict]):
    """A TriggerService starter over any run starter: start_run(pipeline, pipeline_id, inputs=, origin=, run_id=,
    exclusive=False) -> run id; wait_run(run id, timeout) -> ended; get_run(run id) -> the stored run."""
    layout = Layout(workspace)

    def starter(pipeline, trigger, path, origin: dict, run_id: str | None = None) -> RunHandle:
        pid = pipeline_id_for(layout.workspace, pipeline.path)
        inputs = {}
        if trigger.to is not None and path is not None:
            keep_last_batch(layout.trigger_dir(pid, trigger.id), Path(path))
            inputs[str(trigger.to)] = str(path)
        rid = start_run(pipeline, pid, inputs=inputs, origin={"by": "trigger", **origin}, run_id=run_id,
                        exclusive=False)

        def wait(timeout: float | None) -> FeedOutcome | None:
            if not wait_run(rid, timeout):
                return None
            return outcome_of(get_run(rid), layout)

        return RunHandle(rid, wait)

    return starter
