"""The `triggers:` list of a pipeline: parsing and checking, one Problem per mistake.

A trigger feeds one entry input (an input port no edge feeds) with the data of
an event: a Kafka batch, an HTTP body, a file dropped in a folder, a clock tick.
Parsing is pure: it never connects to a broker or watches a folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Problem, UnsafePathError, did_you_mean
from .paths import safe_path

KINDS = ("kafka", "http", "folder", "schedule")
ID_RE = re.compile(r"^[a-z0-9_-]+$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

COMMON_KEYS = ("id", "kind", "to", "description")
KIND_KEYS = {
    "kafka": ("brokers", "topic", "group", "batch", "on_failure", "produce", "config"),
    "http": ("result", "timeout", "max_concurrent", "queue", "max_body_mb"),
    "folder": ("path", "pattern", "settle_ms"),
    "schedule": ("cron", "timezone", "missed"),
}
MISSED = ("skip", "run_once")


@dataclass
class PortRef:
    node: str
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass
class Trigger:
    """One declared trigger; kind-specific settings sit in typed fields with their defaults."""

    id: str
    kind: str
    to: PortRef | None
    description: str | None = None
    line: int | None = None
    # kafka
    brokers: str = ""
    topic: str = ""
    group: str | None = None
    max_events: int = 1000
    max_wait_ms: int = 250
    retries: int = 2
    dead_letter_topic: str | None = None
    produce_from: PortRef | None = None
    produce_topic: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    # http
    result: PortRef | None = None
    timeout: float = 30.0
    max_concurrent: int = 1
    queue: int = 100
    max_body_mb: float = 10.0
    # folder
    path: str = ""
    pattern: str = "*"
    settle_ms: int = 500
    # schedule
    cron: str = ""
    timezone: str = "UTC"
    missed: str = "skip"

    def group_id(self, pipeline_id: str) -> str:
        """The consumer group: as declared, else pipeloom.<pipeline id>.<trigger id>."""
        return self.group or f"pipeloom.{pipeline_id}.{self.id}"

    def resolved_brokers(self) -> str:
        """`brokers` with ${VAR} replaced from the environment (a missing variable is an error)."""
        return expand_env(self.brokers, where=f"trigger `{self.id}`, field `brokers`")


def expand_env(value: str, *, where: str) -> str:
    """Replace ${VAR} (or ${VAR:-default}) from the environment; a variable that is not set and has no
    default raises UnsetVariable naming it."""
    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if os.environ.get(name):
            return os.environ[name]
        if default is not None:
            return default
        raise UnsetVariable(f"{where}: environment variable `{name}` is not set", name)
    return _ENV_RE.sub(sub, value)


class UnsetVariable(ValueError):
    """A ${VAR} with no value: the trigger stays off until it is set (not a mistake in the file)."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


def parse_triggers(raw: Any, lines: dict[tuple, int] | None = None) -> tuple[list[Trigger], list[Problem]]:
    """The `triggers:` list as Trigger objects, with every structural problem found."""
    lines = lines or {}
    problems: list[Problem] = []
    if raw is None:
        return [], problems
    if not isinstance(raw, list):
        return [], [Problem("field `triggers`", "must be a list of triggers, each with `id`, `kind` and `to`")]
    out: list[Trigger] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        line = lines.get(("triggers", i))
        t = _parse_one(item, i, line, problems)
        if t is None:
            continue
        if t.id in seen:
            problems.append(Problem(f"trigger `{t.id}`", "duplicate id: each trigger needs its own", line))
            continue
        seen.add(t.id)
        out.append(t)
    return out, problems


def _parse_one(item: Any, i: int, line: int | None, problems: list[Problem]) -> Trigger | None:
    where = f"trigger #{i + 1}"
    if not isinstance(item, dict):
        problems.append(Problem(where, "must be a mapping with `id`, `kind` and `to`", line))
        return None
    tid = item.get("id")
    if not isinstance(tid, str) or not ID_RE.match(tid):
        problems.append(Problem(where, f"`id` must match [a-z0-9_-]+, got {tid!r}", line))
        return None
    where = f"trigger `{tid}`"
    kind = item.get("kind")
    if kind not in KINDS:
        hint = did_you_mean(kind, KINDS) if isinstance(kind, str) else ""
        problems.append(Problem(where, f"unknown kind {kind!r}{hint} (known: {', '.join(KINDS)})", line))
        return None
    allowed = COMMON_KEYS + KIND_KEYS[kind]
    for k in item:
        if k not in allowed:
            problems.append(Problem(f"{where}, field `{k}`",
                                    f"not a field of a {kind} trigger{did_you_mean(str(k), allowed)} "
                                    f"(fields: {', '.join(allowed)})", line))
    t = Trigger(id=tid, kind=kind, to=None, line=line)
    f = _Fields(item, where, line, problems)
    t.description = f.string("description", required=False)
    t.to = f.port_ref("to", required=kind != "schedule")
    if kind == "kafka":
        t.brokers = f.string("brokers") or ""
        t.topic = f.string("topic") or ""
        t.group = f.string("group", required=False)
        batch = f.mapping("batch", ("max_events", "max_wait_ms"))
        t.max_events = f.number(batch, "batch.max_events", "max_events", t.max_events, lo=1, hi=1_000_000, integer=True)
        t.max_wait_ms = f.number(batch, "batch.max_wait_ms", "max_wait_ms", t.max_wait_ms, lo=0, hi=3_600_000, integer=True)
        fail = f.mapping("on_failure", ("retries", "dead_letter_topic"))
        t.retries = f.number(fail, "on_failure.retries", "retries", t.retries, lo=0, hi=100, integer=True)
        dlt = fail.get("dead_letter_topic")
        if dlt is not None and (not isinstance(dlt, str) or not dlt.strip()):
            problems.append(Problem(f"{where}, field `on_failure.dead_letter_topic`", "must be a topic name", line))
        else:
            t.dead_letter_topic = dlt
        prod = f.mapping("produce", ("from", "topic"))
        if prod:
            t.produce_from = f.port_ref("from", required=True, source=prod, label="produce.from")
            topic = prod.get("topic")
            if not isinstance(topic, str) or not topic.strip():
                problems.append(Problem(f"{where}, field `produce.topic`", "required: the topic the records go to", line))
            else:
                t.produce_topic = topic
        cfg = item.get("config")
        if cfg is not None:
            if not isinstance(cfg, dict) or not all(isinstance(k, str) for k in cfg):
                problems.append(Problem(f"{where}, field `config`", "must map client settings to values", line))
            else:
                t.config = {k: str(v) for k, v in cfg.items()}
    elif kind == "http":
        t.result = f.port_ref("result", required=False)
        t.timeout = f.number(item, "timeout", "timeout", t.timeout, lo=0.1, hi=86_400)
        t.max_concurrent = f.number(item, "max_concurrent", "max_concurrent", t.max_concurrent, lo=1, hi=64, integer=True)
        t.queue = f.number(item, "queue", "queue", t.queue, lo=0, hi=100_000, integer=True)
        t.max_body_mb = f.number(item, "max_body_mb", "max_body_mb", t.max_body_mb, lo=0.001, hi=4096)
    elif kind == "folder":
        t.path = f.string("path") or ""
        t.pattern = f.string("pattern", required=False) or "*"
        t.settle_ms = f.number(item, "settle_ms", "settle_ms", t.settle_ms, lo=0, hi=600_000, integer=True)
    elif kind == "schedule":
        t.cron = f.string("cron") or ""
        t.timezone = f.string("timezone", required=False) or "UTC"
        missed = item.get("missed", "skip")
        if missed not in MISSED:
            problems.append(Problem(f"{where}, field `missed`", f"must be one of {', '.join(MISSED)}, got {missed!r}", line))
        else:
            t.missed = missed
        if t.cron:
            why = cron_problem(t.cron)
            if why:
                problems.append(Problem(f"{where}, field `cron`", why, line))
        why = timezone_problem(t.timezone)
        if why:
            problems.append(Problem(f"{where}, field `timezone`", why, line))
    return t


class _Fields:
    """Typed reads of one trigger's fields, each mistake a Problem naming the field."""

    def __init__(self, item: dict, where: str, line: int | None, problems: list[Problem]):
        self.item, self.where, self.line, self.problems = item, where, line, problems

    def _bad(self, label: str, message: str) -> None:
        self.problems.append(Problem(f"{self.where}, field `{label}`", message, self.line))

    def string(self, key: str, *, required: bool = True) -> str | None:
        v = self.item.get(key)
        if v is None:
            if required:
                self._bad(key, "required")
            return None
        if not isinstance(v, str) or not v.strip():
            self._bad(key, f"must be a non-empty string, got {v!r}")
            return None
        return v

    def mapping(self, key: str, keys: tuple[str, ...]) -> dict:
        v = self.item.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            self._bad(key, f"must be a mapping with {', '.join(keys)}")
            return {}
        for k in v:
            if k not in keys:
                self._bad(f"{key}.{k}", f"unknown setting{did_you_mean(str(k), keys)} (settings: {', '.join(keys)})")
        return v

    def number(self, source: dict, label: str, key: str, default, *, lo: float, hi: float, integer: bool = False):
        v = source.get(key)
        if v is None:
            return default
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not (lo <= v <= hi):
            kind = "a whole number" if integer else "a number"
            self._bad(label, f"must be {kind} from {lo:g} to {hi:g}, got {v!r}")
            return default
        return v

    def port_ref(self, key: str, *, required: bool, source: dict | None = None, label: str | None = None) -> PortRef | None:
        v = (source if source is not None else self.item).get(key)
        label = label or key
        if v is None:
            if required:
                self._bad(label, "required: the port as NODE.PORT")
            return None
        if not isinstance(v, str) or v.count(".") != 1 or not all(v.split(".")):
            self._bad(label, f"must look like NODE.PORT, got {v!r}")
            return None
        node, port = v.split(".")
        return PortRef(node, port)


def cron_problem(expr: str) -> str | None:
    """Why a cron expression is not valid, or None."""
    from croniter import croniter

    if len(expr.split()) != 5:
        return f"`{expr}` is not a cron expression: it needs five fields (minute hour day month weekday)"
    if not croniter.is_valid(expr):
        return f"`{expr}` is not a valid cron expression"
    return None


def timezone_problem(name: str) -> str | None:
    """Why a time zone name is unknown, or None."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone `{name}` (use an IANA name such as UTC or Europe/Paris)"
    return None


def check_triggers(triggers: list[Trigger], pipeline, workspace: Path) -> list[Problem]:
    """Graph checks: `to` is an entry input, `result`/`produce.from` are outputs, folders stay inside."""
    problems: list[Problem] = []
    fed_by_edge = {(e.dst_node, e.dst_port) for e in pipeline.edges}
    ids = [n.id for n in pipeline.nodes]
    base = Path(pipeline.base_dir or workspace)
    for t in triggers:
        where = f"trigger `{t.id}`"
        if t.to is not None:
            node = pipeline.node(t.to.node)
            if node is None:
                problems.append(Problem(f"{where}, field `to`", f"no node called `{t.to.node}`{did_you_mean(t.to.node, ids)}", t.line))
            elif node.input(t.to.port) is None:
                names = ", ".join(p.name for p in node.inputs) or "none"
                problems.append(Problem(f"{where}, field `to`",
                                        f"node `{t.to.node}` has no input `{t.to.port}`; its inputs: {names}", t.line))
            elif (t.to.node, t.to.port) in fed_by_edge:
                problems.append(Problem(f"{where}, field `to`",
                                        f"`{t.to}` is fed by an edge; a trigger feeds an entry input that no edge feeds", t.line))
        for label, ref in (("result", t.result), ("produce.from", t.produce_from)):
            if ref is None:
                continue
            node = pipeline.node(ref.node)
            if node is None:
                problems.append(Problem(f"{where}, field `{label}`", f"no node called `{ref.node}`{did_you_mean(ref.node, ids)}", t.line))
            elif node.output(ref.port) is None:
                names = ", ".join(p.name for p in node.outputs) or "none"
                problems.append(Problem(f"{where}, field `{label}`",
                                        f"node `{ref.node}` has no output `{ref.port}`; its outputs: {names}", t.line))
        if t.kind == "folder" and t.path:
            try:
                safe_path(workspace, base / t.path, what="`path`")
            except UnsafePathError:
                problems.append(Problem(f"{where}, field `path`",
                                        f"{t.path} is outside the workspace {Path(workspace).resolve()}", t.line))
    return problems


def entry_inputs(triggers: list[Trigger]) -> set[tuple[str, str]]:
    """The (node, port) inputs that triggers feed."""
    return {(t.to.node, t.to.port) for t in triggers if t.to is not None}


def trigger_to_dict(t: Trigger) -> dict:
    """A trigger as the API and the studio show it (no secrets from `config`)."""
    d: dict[str, Any] = {"id": t.id, "kind": t.kind, "to": str(t.to) if t.to else None}
    if t.description:
        d["description"] = t.description
    if t.kind == "kafka":
        d.update(topic=t.topic, brokers=t.brokers, max_events=t.max_events, max_wait_ms=t.max_wait_ms,
                 retries=t.retries, dead_letter_topic=t.dead_letter_topic,
                 produce={"from": str(t.produce_from), "topic": t.produce_topic} if t.produce_from else None)
    elif t.kind == "http":
        d.update(result=str(t.result) if t.result else None, timeout=t.timeout, max_concurrent=t.max_concurrent,
                 queue=t.queue, max_body_mb=t.max_body_mb)
    elif t.kind == "folder":
        d.update(path=t.path, pattern=t.pattern)
    elif t.kind == "schedule":
        d.update(cron=t.cron, timezone=t.timezone, missed=t.missed)
    return d
