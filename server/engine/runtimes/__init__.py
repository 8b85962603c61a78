"""The runtime registry. Adding a runtime is one module plus one line here."""

from __future__ import annotations

from .base import Runtime
from .go import GoRuntime
from .node import NodeRuntime
from .python import PythonRuntime
from .rust import RustRuntime
from .simple import CommandRuntime, ShellRuntime

RUNTIMES: dict[str, Runtime] = {}


def register(runtime: Runtime) -> None:
    RUNTIMES[runtime.name] = runtime


for _rt in (PythonRuntime(), NodeRuntime(), GoRuntime(), RustRuntime(), ShellRuntime(), CommandRuntime()):
    register(_rt)


def get_runtime(name: str) -> Runtime | None:
    return RUNTIMES.get(name)


__all__ = ["RUNTIMES", "Runtime", "get_runtime", "register"]
