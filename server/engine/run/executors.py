"""Where a node's program runs: here, in the run's thread pool (`local`), or on a Dask cluster (`dask`).

The runner hands an executor one NodeTask at a time, from one of its pool threads, and gets a NodeOutcome
back; scheduling, the cache, records and events stay with the runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import UsageError
from ..process import RunGuard
from .execute import execute_node
from .task import Cancel, NodeLog, NodeOutcome, NodeTask

EXECUTORS = ("local", "dask")
SCHEDULER_ENV = "PIPELOOM_DASK_SCHEDULER"


@dataclass
class ExecutorChoice:
    """Which executor a run uses, and for Dask, where its scheduler is and how artifacts travel."""

    kind: str = "local"
    scheduler: str | None = None  # tcp://host:port, tls://host:port, or a scheduler file
    inline_limit: int | None = None  # artifacts up to this size travel as bytes; larger ones through `shared`
    shared: str | None = None  # a folder every worker and this machine see at the same path (default: workspace)

    def resolved(self, pipeline_setting: str | None = None, *, pipeline_first: bool = False) -> ExecutorChoice:
        """Fill the gaps: the pipeline's own `executor:` setting (which wins over a process default, with
        `pipeline_first`), then PIPELOOM_DASK_SCHEDULER."""
        kind = (pipeline_setting or self.kind if pipeline_first else self.kind or pipeline_setting) or "local"
        if kind not in EXECUTORS:
            raise UsageError(f"unknown executor `{kind}` (executors: {', '.join(EXECUTORS)})")
        scheduler = self.scheduler or os.environ.get(SCHEDULER_ENV) or None
        return ExecutorChoice(kind, scheduler, self.inline_limit, self.shared)


_default = ExecutorChoice(kind="")


def set_default(choice: ExecutorChoice) -> None:
    """This process's executor for runs that do not choose one (`pipeloom serve --executor dask`)."""
    global _default
    _default = choice


def default_choice() -> ExecutorChoice:
    return _default


class Executor(Protocol):
    """Runs node tasks for one run."""

    name: str

    def slots(self, jobs: int | None) -> int: ...  # how many nodes the runner should hand over at once
    def run(self, task: NodeTask, cancel: Cancel, log: NodeLog) -> NodeOutcome: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


class LocalExecutor:
    """Each node in the runner's own thread, its program a child of this process."""

    name = "local"

    def __init__(self, run_id: str, groups: Path):
        self.guard = RunGuard(run_id)
        self.groups = groups

    def slots(self, jobs: int | None) -> int:
        return max(1, jobs or os.cpu_count() or 1)

    def run(self, task: NodeTask, cancel: Cancel, log: NodeLog) -> NodeOutcome:
        return execute_node(task, cancel, log, guard=self.guard, groups=self.groups)

    def cancel(self) -> None:
        """Nothing beyond the run's Cancel, which stops the processes attached to it."""

    def close(self) -> None:
        self.guard.close()


def make_executor(choice: ExecutorChoice, *, run_id: str, workspace: Path, groups: Path) -> Executor:
    """The executor a resolved choice names; Dask is imported only when it is chosen."""
    if choice.kind == "dask":
        from .cluster import running_address, scheduler_file
        from .dask_executor import DaskExecutor

        if not choice.scheduler and running_address(workspace):  # `pipeloom cluster start` in this workspace
            choice = ExecutorChoice("dask", str(scheduler_file(workspace)), choice.inline_limit, choice.shared)
        return DaskExecutor(choice, run_id=run_id, workspace=workspace)
    return LocalExecutor(run_id, groups)
