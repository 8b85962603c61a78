"""Runtimes that need no build step: shell scripts and plain commands."""

from __future__ import annotations

from ..model import Node, Pipeline
from .. import toolchains
from .base import BuildLog, Prepared, Runtime


class ShellRuntime(Runtime):
    name = "shell"
    label = "Shell"
    color = "#89e051"
    language = "bash"
    tool = "bash"
    source_ext = ".sh"

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        return Prepared([toolchains.resolve("bash") or "bash", str(self.source_path(node, pipeline))], {})

    def template(self, node_id: str) -> str:
        return (
            "#!/usr/bin/env bash\n"
            f"# {node_id}: inputs are files in the current folder; write outputs beside them.\n"
            "# Paths are also in $PIPELOOM_INPUT_<PORT> and $PIPELOOM_OUTPUT_<PORT>.\n"
            "set -euo pipefail\n\n"
            "echo \"params: $PIPELOOM_PARAMS\"\n"
            "printf '{\"hello\": \"world\"}\\n' > out.json\n"
        )


class CommandRuntime(Runtime):
    """Any program on PATH, given as an argv list (tar, gzip, jq, ...)."""

    name = "command"
    label = "command"
    color = "#8b949e"
    language = "bash"
    needs_source = False

    def missing_toolchain(self) -> str | None:
        return None  # checked per node in validate(): each node names its own program

    def missing_program(self, node: Node) -> str | None:
        prog = (node.command or [""])[0]
        if not prog:
            return None
        if "/" in prog:
            return None
        if not toolchains.resolve(prog):
            return f"command `{prog}` not found on PATH"
        return None

    def fingerprint(self, node: Node, pipeline: Pipeline) -> dict:
        return {"command": list(node.command or [])}

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        argv = list(node.command or [])
        if argv and "/" not in argv[0]:
            argv[0] = toolchains.resolve(argv[0]) or argv[0]
        return Prepared(argv, {})
