"""The small exception hierarchy of the engine.

Every error a user can cause carries a message that names the node, port,
field or file involved, so the CLI and the web layer can show it as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class PipeloomError(Exception):
    """Base class of every error the engine raises on purpose."""


_NODE_WHERE = re.compile(r"^node `(?P<node>[^`]+)`(?:, (?P<kind>input|output) `(?P<port>[^`]+)`)?$")
_EDGE_WHERE = re.compile(r"^edge `(?P<src>[^`\s]+) -> (?P<dst>[^`\s]+)`$")


@dataclass(frozen=True)
class Problem:
    """One validation problem; `where` names the node, port or field."""

    where: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        if not self.where:
            return f"line {self.line}: {self.message}" if self.line else self.message
        loc = f" (line {self.line})" if self.line else ""
        return f"{self.where}{loc}: {self.message}"

    def subject(self) -> dict:
        """What the problem is about, for marking it on the canvas: {node, port, port_kind} or {edge}
        ("a.out->b.in"), read from `where` (always written as `node `x``, `node `x`, input `p``,
        `edge `a.out -> b.in``); {} for the pipeline as a whole."""
        m = _NODE_WHERE.match(self.where or "")
        if m:
            out = {"node": m["node"]}
            if m["port"]:
                out.update(port=m["port"], port_kind=f"{m['kind']}s")
            return out
        m = _EDGE_WHERE.match(self.where or "")
        return {"edge": f"{m['src']}->{m['dst']}"} if m else {}

    def to_dict(self) -> dict:
        d = {"where": self.where, "message": self.message, **self.subject()}
        if self.line:
            d["line"] = self.line
        return d


class ValidationError(PipeloomError):
    """The pipeline document is invalid; `problems` lists every issue found."""

    def __init__(self, problems: list[Problem], path: str | None = None):
        self.problems = list(problems)
        self.path = path
        head = f"{path}: " if path else ""
        n = len(self.problems)
        super().__init__(f"{head}{n} problem{'s' if n != 1 else ''} in the pipeline")

    def report(self) -> str:
        """Human-readable report, one problem a line."""
        lines = [str(self)]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(PipeloomError):
    """A bad option or argument (unknown node for --only, and so on)."""


class UnsafePathError(PipeloomError):
    """A path that would leave the workspace."""


class NotFoundError(PipeloomError):
    """A run, node, port or pipeline that does not exist."""


class ConflictError(PipeloomError):
    """A stale write: the file changed since it was read."""


class BuildError(PipeloomError):
    """A node's program failed to build (compile, install dependencies)."""


class SchemaError(PipeloomError):
    """The database cannot be used by this Pipeloom (a newer one wrote it)."""



def did_you_mean(word: str, choices) -> str:
    """` (did you mean `x`?)` when a close match exists, else an empty string."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
