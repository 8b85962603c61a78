"""The runtime registry. Adding a runtime is one module plus one line here.

A runtime's module is imported the first time the runtime is asked for, so
checking or running a shell pipeline never loads the Rust or Go support.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Runtime


class _Registry(Mapping):
    """name -> Runtime; each registered as "module:Class" and built on first use."""

    def __init__(self) -> None:
        self._specs: dict[str, str] = {}
        self._made: dict[str, Runtime] = {}

    def add(self, name: str, spec: "str | Runtime") -> None:
        if isinstance(spec, str):
            self._specs[name] = spec
            self._made.pop(name, None)
        else:
            self._specs[name] = ""
            self._made[name] = spec

    def __getitem__(self, name: str) -> "Runtime":
        rt = self._made.get(name)
        if rt is None:
            module, cls = self._specs[name].split(":")
            rt = self._made[name] = getattr(importlib.import_module(module, __name__), cls)()
        return rt

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


RUNTIMES: _Registry = _Registry()


def register(runtime: "Runtime | str", name: str | None = None) -> None:
    """Add a runtime: an instance, or "module:Class" (with its `name`) to import on first use."""
    if isinstance(runtime, str):
        RUNTIMES.add(name or runtime.rsplit(":", 1)[0].rsplit(".", 1)[-1], runtime)
    else:
        RUNTIMES.add(runtime.name, runtime)


register(".python:PythonRuntime", "python")
register(".node:NodeRuntime", "node")
register(".go:GoRuntime", "go")
register(".rust:RustRuntime", "rust")
register(".simple:ShellRuntime", "shell")
register(".simple:CommandRuntime", "command")


def get_runtime(name: str) -> "Runtime | None":
    return RUNTIMES[name] if name in RUNTIMES else None


def __getattr__(name: str):
    if name == "Runtime":
        from .base import Runtime

        return Runtime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RUNTIMES", "Runtime", "get_runtime", "register"]
