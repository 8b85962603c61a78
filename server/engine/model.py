"""The pipeline document: parsing, the in-memory model and stable writing.

Parsing collects every structural problem at once (unknown fields, wrong
types, bad ids) and tags each with the YAML/JSON line where possible.
Graph and environment checks live in `validate.py`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Problem, ValidationError
from .paths import BadPathError, check_path_text


class _Yaml:
    """PyYAML, imported on first use: a run of a .pipeline.json file never pays the ~8 ms it costs."""

    def __getattr__(self, name: str):
        import yaml as real

        globals()["yaml"] = real
        return getattr(real, name)


yaml: Any = _Yaml()

ID_RE = re.compile(r"^[a-z0-9_-]+$")
PORT_RE = re.compile(r"^[A-Za-z0-9_-]+$")

NODE_KEYS = (
    "id", "runtime", "title", "description", "source", "command", "params",
    "inputs", "outputs", "timeout", "retries", "cache", "env", "resources", "tags", "position",
)
# When an unchanged node may reuse its earlier outputs instead of running:
# auto: only if it has outputs (a node without any runs for its side effect); always; never.
CACHE_MODES = ("auto", "always", "never")
PORT_KEYS = ("name", "file", "format", "path", "key", "categories", "normal")
# how the studio shows a category value: a colour with its word (never the colour alone)
CATEGORY_TONES = ("ok", "info", "warning", "danger", "neutral")
TOP_KEYS = ("version", "name", "description", "executor", "nodes", "edges", "notes", "triggers", "retention")
EXECUTOR_KINDS = ("local", "dask")
TAG_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000 ** 2, "mb": 1000 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3,
               "t": 1000 ** 4, "tb": 1000 ** 4, "ki": 1024, "kib": 1024, "mi": 1024 ** 2, "mib": 1024 ** 2,
               "gi": 1024 ** 3, "gib": 1024 ** 3, "ti": 1024 ** 4, "tib": 1024 ** 4}
NOTE_KEYS = ("id", "text", "position")
RETENTION_KEYS = ("keep_runs", "keep_days")
EDGE_KEYS = ("from", "to")


@dataclass
class Port:
    name: str
    file: str
    format: str = "json"
    path: str | None = None  # inputs only: a workspace file that feeds the port
    key: list[str] | None = None  # records ports: the fields that identify a record (for diffs)
    # records ports: fields whose values are categories, each with tones for some values ({} = by the word)
    categories: dict[str, dict[str, str]] | None = None
    normal: dict[str, Any] | None = None  # records outputs: field -> its normal value(s), e.g. {label: normal}

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "file": self.file, "format": self.format}
        if self.path is not None:
            d["path"] = self.path
        if self.key is not None:
            d["key"] = list(self.key)
        if self.categories is not None:
            tones = any(self.categories.values())
            d["categories"] = ({f: dict(t) for f, t in self.categories.items()} if tones
                               else list(self.categories))
        if self.normal is not None:
            d["normal"] = dict(self.normal)
        return d


@dataclass
class Node:
    id: str
    runtime: str
    source: str | None = None
    command: list[str] | None = None
    title: str | None = None
    description: str | None = None
    params: dict = field(default_factory=dict)
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    timeout: float | None = None
    retries: int = 0
    cache: str = "auto"
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # {cpu: 2, memory: 4GiB}: what a worker must offer
    tags: list[str] = field(default_factory=list)  # worker tags it needs (gpu, ssd, …)
    position: dict | None = None
    line: int | None = None

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    @property
    def label(self) -> str:
        return self.title or self.id


@dataclass(frozen=True)
class Edge:
    src_node: str
    src_port: str
    dst_node: str
    dst_port: str
    line: int | None = None

    @property
    def key(self) -> str:
        return f"{self.src_node}.{self.src_port}->{self.dst_node}.{self.dst_port}"


@dataclass
class Note:
    """A sticky note on the canvas, for people reading the pipeline; it does not take part in runs."""

    id: str
    text: str
    position: dict | None = None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.position is not None:
            d["position"] = dict(self.position)
        return d


@dataclass
class Pipeline:
    name: str
    nodes: list[Node]
    edges: list[Edge]
    description: str | None = None
    version: int = 1
    path: Path | None = None  # the file it was read from
    base_dir: Path | None = None  # sources and `path` inputs resolve here
    triggers: list = field(default_factory=list)  # triggerspec.Trigger, in file order
    triggers_doc: list | None = None  # the `triggers:` list as written, for writing back
    retention: dict | None = None  # {keep_runs, keep_days} as written; None means the defaults
    executor: str | None = None  # where its nodes run (local, dask); None: whatever the run chooses
    notes: list[Note] = field(default_factory=list)  # sticky notes, in file order

    def node(self, node_id: str) -> Node | None:
        index = self.__dict__.get("_by_id")
        if index is None or index[0] is not self.nodes or index[1] != len(self.nodes):
            index = self.__dict__["_by_id"] = (self.nodes, len(self.nodes), {n.id: n for n in reversed(self.nodes)})
        found = index[2].get(node_id)
        if found is not None and found.id == node_id:
            return found
        return next((n for n in self.nodes if n.id == node_id), None)  # renamed since the index was made

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def upstream_edges(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.dst_node == node_id]

    def downstream_edges(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.src_node == node_id]

    def predecessors(self, node_id: str) -> set[str]:
        return set(self._steps()[1].get(node_id, ()))

    def downstream_of(self, node_id: str) -> set[str]:
        """`node_id` and every node reachable from it."""
        return self._reach(node_id, forward=True) | {node_id}

    def upstream_of(self, node_id: str) -> set[str]:
        """Every node that `node_id` depends on, directly or not (excluding itself)."""
        return self._reach(node_id, forward=False)

    def _steps(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """(node -> the nodes it feeds, node -> the nodes feeding it), remade when the edge list changes."""
        made = self.__dict__.get("_adjacency")
        if made is None or made[0] is not self.edges or made[1] != len(self.edges):
            fwd: dict[str, set[str]] = {}
            back: dict[str, set[str]] = {}
            for e in self.edges:
                fwd.setdefault(e.src_node, set()).add(e.dst_node)
                back.setdefault(e.dst_node, set()).add(e.src_node)
            made = self.__dict__["_adjacency"] = (self.edges, len(self.edges), fwd, back)
        return made[2], made[3]

    def _reach(self, node_id: str, *, forward: bool) -> set[str]:
        step = self._steps()[0 if forward else 1]
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for there in step.get(stack.pop(), ()):
                if there not in seen:
                    seen.add(there)
                    stack.append(there)
        return seen

    def to_document(self) -> dict:
        return to_document(self)


_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\n]|\'\')*\'')
_LEAD = re.compile(r"^[ \t?:-]*", re.M)
SHALLOW = 64


def _shallow(text: str, limit: int = SHALLOW) -> bool:
    """Whether no part of the text can nest more than about `limit` levels. libyaml composes nested nodes by
    recursing in C, where Python's recursion limit cannot stop it: a deep enough document crashes the process.
    Anything that might be deep goes to the pure-Python loader, which raises RecursionError instead."""
    if max((len(m) for m in _LEAD.findall(text)), default=0) > limit * 2:
        return False  # block nesting: indentation, or runs of "- " / "? " / ": " at a line's start
    depth = 0
    for ch in _QUOTED.sub("", text):
        if ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth = max(0, depth - 1)
    return True


def _parse_yaml(text: str):
    """(node tree, document) from one parse, with libyaml when there is one: a 100-node file parses in
    milliseconds instead of half a second. A broken file is parsed again by the pure-Python loader, whose
    messages (and the hints built on them) are the ones users are shown."""
    fast = getattr(yaml, "CSafeLoader", None) if _shallow(text) else None
    for loader_cls in ((fast, yaml.SafeLoader) if fast else (yaml.SafeLoader,)):
        loader = loader_cls(text)
        try:
            root = loader.get_single_node()
            return root, (loader.construct_document(root) if root is not None else None)
        except yaml.YAMLError:
            if loader_cls is yaml.SafeLoader:
                raise
        finally:
            loader.dispose()
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- formats

FORMAT_EXTENSIONS = {
    "json": "json", "ndjson": "ndjson", "csv": "csv", "text": "txt",
    "binary": "bin", "parquet": "parquet",
}


def default_file(name: str, fmt: str) -> str:
    return f"{name}.{FORMAT_EXTENSIONS.get(fmt, fmt)}"


# ---------------------------------------------------------------- reading

def read_document(path: Path) -> tuple[dict, dict[tuple, int]]:
    """Parse a pipeline file into a plain dict plus a map of item -> line.

    The line map has keys ("nodes", i) and ("edges", i), 1-based lines.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Problem("", f"file not found: {path}")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem("", f"cannot read {path}: {exc}")], str(path)) from exc
    return parse_text(text, json_syntax=path.name.endswith(".json"), source=str(path))


TOO_DEEP = "the document is nested too deeply to read (a pipeline needs only a few levels)"


def parse_text(text: str, *, json_syntax: bool, source: str | None = None) -> tuple[dict, dict[tuple, int]]:
    """Parse YAML or JSON text; syntax errors become a Problem with the line."""
    lines: dict[tuple, int] = {}
    if json_syntax:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                [Problem("", f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)], source
            ) from exc
        except RecursionError:
            raise ValidationError([Problem("", TOO_DEEP)], source) from None
        _json_lines(text, lines)
    else:
        try:
            root, doc = _parse_yaml(text)
        except RecursionError:
            raise ValidationError([Problem("", TOO_DEEP)], source) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            what = getattr(exc, "problem", None) or str(exc)
            if any(w in what for w in ("block end", "mapping values are not allowed", "block collection",
                                       "block mapping", "expected <block")):
                what += " (check the indentation on this line and the one above)"
            elif "expected ',' or '}'" in what or "expected ',' or ']'" in what:
                what += " (a `{` or `[` on this line or above is not closed)"
            raise ValidationError([Problem("", f"invalid YAML: {what}", line)], source) from exc
        from .pipeline.dupkeys import duplicate_keys
        if twice := duplicate_keys(root):
            raise ValidationError(twice, source)
        if isinstance(root, yaml.MappingNode):
            for k, v in root.value:
                if k.value in ("nodes", "edges", "notes", "triggers") and isinstance(v, yaml.SequenceNode):
                    for i, item in enumerate(v.value):
                        lines[(k.value, i)] = item.start_mark.line + 1
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValidationError([Problem("", "the document must be a mapping with `nodes` and `edges`")], source)
    return doc, lines


def _json_lines(text: str, lines: dict[tuple, int]) -> None:
    """Best-effort line numbers for JSON nodes and edges (by their `"id"`/`"from"`)."""
    node_i = edge_i = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        if re.search(r'"id"\s*:', raw):
            lines[("nodes", node_i)] = n
            node_i += 1
        if re.search(r'"from"\s*:', raw):
            lines[("edges", edge_i)] = n
            edge_i += 1


def load_pipeline(path: str | Path, *, workspace: str | Path | None = None, check_env: bool = True) -> Pipeline:
    """Read, parse and fully validate a pipeline file; raise ValidationError listing every problem."""
    from .validate import validate  # local import: validate needs the registries

    path = Path(path).resolve()
    doc, lines = read_document(path)
    pipeline, problems = build_pipeline(doc, lines, base_dir=path.parent)
    pipeline.path = path
    if pipeline is not None:
        problems += validate(pipeline, workspace=Path(workspace) if workspace else path.parent,
                             check_env=check_env, structural_only=bool(problems))
    if problems:
        raise ValidationError(problems, str(path))
    return pipeline


def pipeline_from_document(doc: dict, *, base_dir: Path, workspace: Path, path: Path | None = None,
                           check_env: bool = True) -> Pipeline:
    """Validate an in-memory document (the studio's save path)."""
    from .validate import validate

    if not isinstance(doc, dict):
        raise ValidationError([Problem("", "the document must be a mapping with `nodes` and `edges`")])
    pipeline, problems = build_pipeline(doc, {}, base_dir=base_dir)
    pipeline.path = path
    problems += validate(pipeline, workspace=workspace, check_env=check_env, structural_only=bool(problems))
    if problems:
        raise ValidationError(problems, str(path) if path else None)
    return pipeline


def build_pipeline(doc: dict, lines: dict[tuple, int], *, base_dir: Path) -> tuple[Pipeline, list[Problem]]:
    """Turn a document into a Pipeline, collecting structural problems instead of stopping."""
    problems: list[Problem] = []
    for key in doc:
        if key not in TOP_KEYS:
            problems.append(Problem(f"field `{key}`", f"unknown top-level field (expected one of: {', '.join(TOP_KEYS)})"))
    version = doc.get("version", 1)
    if version != 1:
        problems.append(Problem("field `version`", f"unsupported version {version!r}; this Pipeloom reads version 1"))
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem("field `name`", "required: a non-empty string naming the pipeline"))
        name = str(name or "")
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(Problem("field `description`", "must be a string"))
        description = None

    nodes: list[Node] = []
    raw_nodes = doc.get("nodes", [])
    if raw_nodes is None:
        raw_nodes = []
    if not isinstance(raw_nodes, list):
        problems.append(Problem("field `nodes`", "must be a list of nodes"))
        raw_nodes = []
    for i, raw in enumerate(raw_nodes):
        node = _build_node(raw, i, lines.get(("nodes", i)), problems)
        if node is not None:
            nodes.append(node)

    edges: list[Edge] = []
    raw_edges = doc.get("edges", [])
    if raw_edges is None:
        raw_edges = []
    if not isinstance(raw_edges, list):
        problems.append(Problem("field `edges`", "must be a list of {from, to} pairs"))
        raw_edges = []
    for i, raw in enumerate(raw_edges):
        line = lines.get(("edges", i))
        where = f"edge #{i + 1}"
        if not isinstance(raw, dict):
            problems.append(Problem(where, "must be a mapping like {from: a.out, to: b.in}", line))
            continue
        for k in raw:
            if k not in EDGE_KEYS:
                problems.append(Problem(where, f"unknown field `{k}` (expected `from` and `to`)", line))
        ends = []
        for k in EDGE_KEYS:
            v = raw.get(k)
            if not isinstance(v, str) or v.count(".") < 1 or not all(v.split(".", 1)):
                problems.append(Problem(where, f"`{k}` must look like `node.port`, got {v!r}", line))
                ends = []
                break
            ends.append(v.split(".", 1))
        if len(ends) == 2:
            edges.append(Edge(ends[0][0], ends[0][1], ends[1][0], ends[1][1], line))

    triggers: list = []
    if doc.get("triggers") is not None:  # most pipelines have none: no need to load the trigger rules
        from .triggerspec import parse_triggers

        triggers, trigger_problems = parse_triggers(doc.get("triggers"), lines)
        problems += trigger_problems
    retention = _build_retention(doc.get("retention"), problems)
    notes = _build_notes(doc.get("notes"), lines, problems)
    executor = doc.get("executor")
    if executor is not None and executor not in EXECUTOR_KINDS:
        problems.append(Problem("field `executor`", f"must be one of {', '.join(EXECUTOR_KINDS)}, got {executor!r}",
                                lines.get(("executor",))))
        executor = None
    pipeline = Pipeline(name=name, nodes=nodes, edges=edges, description=description,
                        version=1, base_dir=base_dir, triggers=triggers,
                        triggers_doc=doc.get("triggers") if isinstance(doc.get("triggers"), list) else None,
                        retention=retention, executor=executor, notes=notes)
    return pipeline, problems


NOTE_TEXT_MAX = 2000


def _build_notes(raw: Any, lines: dict[tuple, int], problems: list[Problem]) -> list[Note]:
    """`notes: [{id, text, position: {x, y}}]`: sticky notes for the people reading the pipeline."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(Problem("field `notes`", "must be a list of notes like {id: welcome, text: Start here, "
                                                 "position: {x: 40, y: 20}}"))
        return []
    notes: list[Note] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        line = lines.get(("notes", i))
        if not isinstance(item, dict):
            problems.append(Problem(f"note #{i + 1}", "must be a mapping with `id` and `text`", line))
            continue
        nid = item.get("id")
        if not isinstance(nid, str) or not ID_RE.match(nid):
            problems.append(Problem(f"note #{i + 1}", f"`id` must match [a-z0-9_-]+, got {nid!r}", line))
            continue
        where = f"note `{nid}`"
        if nid in seen:
            problems.append(Problem(where, "duplicate id: every note needs its own", line))
            continue
        seen.add(nid)
        ok = True
        for k in item:
            if k not in NOTE_KEYS:
                problems.append(Problem(where, f"unknown field `{k}` (expected one of: {', '.join(NOTE_KEYS)})", line))
                ok = False
        text = item.get("text")
        if not isinstance(text, str):
            problems.append(Problem(where, f"`text` is required: the words on the note, got {text!r}", line))
            ok = False
        elif len(text) > NOTE_TEXT_MAX:
            problems.append(Problem(where, f"`text` is {len(text):,} characters; a note holds at most "
                                           f"{NOTE_TEXT_MAX:,} (put longer words in the pipeline's description)", line))
            ok = False
        pos = item.get("position")
        if pos is not None and (not isinstance(pos, dict) or set(pos) - {"x", "y"} or not all(
                isinstance(pos.get(k), (int, float)) and not isinstance(pos.get(k), bool) for k in ("x", "y"))):
            problems.append(Problem(where, f"`position` must be {{x: number, y: number}}, got {pos!r}", line))
            ok = False
        if ok:
            notes.append(Note(nid, text, {"x": pos["x"], "y": pos["y"]} if pos is not None else None))
    return notes


def _build_retention(raw: Any, problems: list[Problem]) -> dict | None:
    """`retention: {keep_runs, keep_days}`: how many runs, and how old, to keep (see `pipeloom gc`)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(Problem("field `retention`", "must be a mapping like {keep_runs: 500, keep_days: 7}"))
        return None
    out: dict = {}
    for k, v in raw.items():
        if k not in RETENTION_KEYS:
            problems.append(Problem(f"field `retention.{k}`", f"unknown setting (settings: {', '.join(RETENTION_KEYS)})"))
            continue
        whole = k == "keep_runs"
        ok = isinstance(v, int) if whole else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or v < (1 if whole else 0):
            what = "a whole number of runs, 1 or more" if whole else "a number of days, 0 or more"
            problems.append(Problem(f"field `retention.{k}`", f"must be {what}, got {v!r}"))
            continue
        out[k] = v
    return out


def _build_node(raw: Any, index: int, line: int | None, problems: list[Problem]) -> Node | None:
    if not isinstance(raw, dict):
        problems.append(Problem(f"node #{index + 1}", "must be a mapping with at least `id` and `runtime`", line))
        return None
    nid = raw.get("id")
    if not isinstance(nid, str) or not ID_RE.match(nid):
        problems.append(Problem(f"node #{index + 1}", f"`id` must match [a-z0-9_-]+, got {nid!r}", line))
        nid = f"#{index + 1}"
    where = f"node `{nid}`"
    for k in raw:
        if k not in NODE_KEYS:
            problems.append(Problem(where, f"unknown field `{k}` (expected one of: {', '.join(NODE_KEYS)})", line))
    runtime = raw.get("runtime")
    if not isinstance(runtime, str) or not runtime:
        problems.append(Problem(where, "`runtime` is required (python, node, go, rust, shell or command)", line))
        runtime = ""
    node = Node(id=nid, runtime=runtime, line=line)

    for key in ("source", "title", "description"):
        v = raw.get(key)
        if v is not None and not isinstance(v, str):
            problems.append(Problem(where, f"`{key}` must be a string", line))
        elif v is not None:
            setattr(node, key, v)
    cmd = raw.get("command")
    if cmd is not None:
        if isinstance(cmd, str):
            problems.append(Problem(where, "`command` must be a list of arguments (argv), e.g. [tar, -czf, out.tgz, in.json]", line))
        elif not isinstance(cmd, list) or not cmd or not all(isinstance(a, (str, int, float)) for a in cmd):
            problems.append(Problem(where, "`command` must be a non-empty list of strings", line))
        else:
            node.command = [str(a) for a in cmd]
    params = raw.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        problems.append(Problem(where, "`params` must be a mapping", line))
    else:
        node.params = params
    env = raw.get("env", {}) or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        problems.append(Problem(where, "`env` must be a mapping of names to strings", line))
    else:
        node.env = {k: str(v) for k, v in env.items()}
    t = raw.get("timeout")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            problems.append(Problem(where, f"`timeout` must be a positive number of seconds, got {t!r}", line))
        else:
            node.timeout = float(t)
    r = raw.get("retries", 0)
    if r is None:
        r = 0
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        problems.append(Problem(where, f"`retries` must be a whole number >= 0, got {r!r}", line))
    else:
        node.retries = r
    c = raw.get("cache")
    if c is not None:
        if isinstance(c, str) and c in CACHE_MODES:
            node.cache = c
        else:
            hint = " (write `never` to run the node every time)" if c is False or c in ("no", "off") else ""
            shown = json.dumps(c) if isinstance(c, (bool, int, float, str)) else type(c).__name__
            problems.append(Problem(where, f"`cache` must be auto, always or never, got {shown}{hint}", line))
    _build_resources(node, raw, where, line, problems)
    pos = raw.get("position")
    if pos is not None:
        if (not isinstance(pos, dict) or not all(isinstance(pos.get(k), (int, float)) for k in ("x", "y"))):
            problems.append(Problem(where, "`position` must be {x: number, y: number}", line))
        else:
            node.position = {"x": pos["x"], "y": pos["y"]}

    for kind in ("inputs", "outputs"):
        ports = raw.get(kind, []) or []
        if not isinstance(ports, list):
            problems.append(Problem(where, f"`{kind}` must be a list of ports", line))
            continue
        seen: set[str] = set()
        for j, p in enumerate(ports):
            port = _build_port(p, kind, j, where, line, problems)
            if port is None:
                continue
            if port.name in seen:
                problems.append(Problem(f"{where}, {kind[:-1]} `{port.name}`", "duplicate port name", line))
                continue
            seen.add(port.name)
            getattr(node, kind).append(port)
    return node


def _build_port(raw: Any, kind: str, j: int, where: str, line: int | None, problems: list[Problem]) -> Port | None:
    single = kind[:-1]
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        problems.append(Problem(where, f"{single} #{j + 1} must be a mapping like {{name: events, format: json}}", line))
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not PORT_RE.match(name):
        problems.append(Problem(where, f"{single} #{j + 1}: `name` must match [A-Za-z0-9_-]+, got {name!r}", line))
        return None
    pwhere = f"{where}, {single} `{name}`"
    for k in raw:
        if k not in PORT_KEYS or (k == "path" and kind == "outputs") or (k == "normal" and kind == "inputs"):
            only = {"path": " (`path` is for inputs only)", "normal": " (`normal` is for outputs only)"}.get(k, "")
            problems.append(Problem(pwhere, f"unknown field `{k}`{only}", line))
    fmt = raw.get("format", "json")
    if not isinstance(fmt, str):
        problems.append(Problem(pwhere, "`format` must be a string", line))
        fmt = "json"
    file = raw.get("file")
    if file is None:
        file = default_file(name, fmt)
    if not isinstance(file, str) or not file or "/" in file or "\\" in file or file in (".", ".."):
        problems.append(Problem(pwhere, f"`file` must be a plain file name (no folders), got {file!r}", line))
        return None
    try:
        check_path_text(file, "`file`")
    except BadPathError as exc:
        problems.append(Problem(pwhere, str(exc), line))
        return None
    path = raw.get("path") if kind == "inputs" else None
    if path is not None and not isinstance(path, str):
        problems.append(Problem(pwhere, "`path` must be a string", line))
        path = None
    key = raw.get("key")
    if isinstance(key, str):
        key = [key]
    if key is not None and (not isinstance(key, list) or not key
                            or not all(isinstance(f, str) and f for f in key) or len(set(key)) != len(key)):
        problems.append(Problem(pwhere, "`key` must be a field name or a list of distinct field names, "
                                        f"like [line] or [sensor_id, ts]; got {raw.get('key')!r}", line))
        key = None
    if key is not None and fmt not in ("json", "ndjson", "csv", "parquet"):
        problems.append(Problem(pwhere, f"`key` is for records formats (json, ndjson, csv, parquet), not {fmt}", line))
        key = None
    categories = _categories(raw.get("categories"), fmt, pwhere, line, problems) if "categories" in raw else None
    normal = raw.get("normal") if kind == "outputs" else None
    if normal is not None:
        normal = _build_normal(normal, fmt, pwhere, line, problems)
    return Port(name=name, file=file, format=fmt, path=path, key=key, categories=categories, normal=normal)


def _categories(raw: Any, fmt: str, pwhere: str, line: int | None,
                problems: list[Problem]) -> dict[str, dict[str, str]] | None:
    """A port's `categories`: a list of field names, or a mapping field -> {value: tone} (or null)."""
    example = "like [label] or {label: {critical: danger, warning: warning, normal: ok}}"
    if fmt not in ("json", "ndjson", "csv", "parquet"):
        problems.append(Problem(pwhere, f"`categories` is for records formats (json, ndjson, csv, parquet), not {fmt}",
                                line))
        return None
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        if not raw or not all(isinstance(f, str) and f for f in raw) or len(set(raw)) != len(raw):
            problems.append(Problem(pwhere, f"`categories` must name distinct fields, {example}; got {raw!r}", line))
            return None
        return {f: {} for f in raw}
    if not isinstance(raw, dict) or not raw:
        problems.append(Problem(pwhere, f"`categories` must be a list of fields or a mapping, {example}; got {raw!r}",
                                line))
        return None
    out: dict[str, dict[str, str]] = {}
    for f, tones in raw.items():
        if not isinstance(f, str) or not f:
            problems.append(Problem(pwhere, f"`categories`: a field name must be text, got {f!r}", line))
            return None
        if tones is None:
            out[f] = {}
            continue
        if not isinstance(tones, dict):
            problems.append(Problem(pwhere, f"`categories.{f}` must map values to tones ({', '.join(CATEGORY_TONES)}), "
                                            f"like {{critical: danger}}; got {tones!r}", line))
            return None
        for value, tone in tones.items():
            if tone not in CATEGORY_TONES:
                problems.append(Problem(pwhere, f"`categories.{f}.{value}`: unknown tone {tone!r} "
                                                f"(tones: {', '.join(CATEGORY_TONES)})", line))
                return None
        out[f] = {str(v): t for v, t in tones.items()}
    return out


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _build_normal(raw: Any, fmt: str, where: str, line: int | None, problems: list[Problem]) -> dict | None:
    """`normal: {label: normal}`: the normal value (or list of values) of fields the step adds to every record;
    a record with another value counts as changed in the step's diff."""
    if (not isinstance(raw, dict) or not raw or not all(isinstance(f, str) and f for f in raw)
            or not all(_scalar(v) or (isinstance(v, list) and v and all(_scalar(x) for x in v)) for v in raw.values())):
        problems.append(Problem(where, "`normal` must map field names to their normal value or list of values, "
                                       f"like {{label: normal}} or {{label: [normal, ok]}}; got {raw!r}", line))
        return None
    if fmt not in ("json", "ndjson", "csv", "parquet"):
        problems.append(Problem(where, f"`normal` is for records formats (json, ndjson, csv, parquet), not {fmt}", line))
        return None
    return dict(raw)


# ---------------------------------------------------------------- writing

def to_document(p: Pipeline) -> dict:
    """A plain dict in the canonical key order (small, stable diffs)."""
    doc: dict[str, Any] = {"version": 1, "name": p.name}
    if p.description:
        doc["description"] = p.description
    if p.executor:
        doc["executor"] = p.executor
    doc["nodes"] = [node_to_dict(n) for n in p.nodes]
    doc["edges"] = [{"from": f"{e.src_node}.{e.src_port}", "to": f"{e.dst_node}.{e.dst_port}"} for e in p.edges]
    if p.notes:
        doc["notes"] = [n.to_dict() for n in p.notes]
    if p.triggers_doc:
        doc["triggers"] = p.triggers_doc
    if p.retention:
        doc["retention"] = p.retention
    return doc


def node_to_dict(n: Node) -> dict:
    d: dict[str, Any] = {"id": n.id, "runtime": n.runtime}
    if n.title:
        d["title"] = n.title
    if n.description:
        d["description"] = n.description
    if n.source is not None:
        d["source"] = n.source
    if n.command is not None:
        d["command"] = list(n.command)
    if n.params:
        d["params"] = n.params
    if n.inputs:
        d["inputs"] = [pt.to_dict() for pt in n.inputs]
    if n.outputs:
        d["outputs"] = [pt.to_dict() for pt in n.outputs]
    if n.timeout is not None:
        d["timeout"] = int(n.timeout) if float(n.timeout).is_integer() else n.timeout
    if n.retries:
        d["retries"] = n.retries
    if n.cache != "auto":
        d["cache"] = n.cache
    if n.env:
        d["env"] = n.env
    if n.resources:
        d["resources"] = n.resources
    if n.tags:
        d["tags"] = list(n.tags)
    if n.position is not None:
        d["position"] = n.position
    return d


def parse_size(value: Any) -> int | None:
    """A size in bytes from 4096, "4GiB", "512 MB" or "2G"; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value >= 0 else None
    m = _SIZE_RE.match(str(value))
    if not m:
        return None
    unit = (m.group(2) or "").lower()
    return int(float(m.group(1)) * _SIZE_UNITS[unit]) if unit in _SIZE_UNITS else None


def _build_resources(node: Node, raw: dict, where: str, line: int | None, problems: list[Problem]) -> None:
    """`resources: {cpu: 2, memory: 4GiB}` (any name, a number; memory also a size) and `tags: [gpu]`."""
    res = raw.get("resources")
    if res is not None:
        if not isinstance(res, dict) or not res:
            problems.append(Problem(where, "`resources` must be a mapping like {cpu: 2, memory: 4GiB}", line))
        else:
            for k, v in res.items():
                if not isinstance(k, str) or not TAG_RE.match(k):
                    problems.append(Problem(where, f"`resources`: name {k!r} must match [A-Za-z0-9_.-]+", line))
                elif k == "memory" and parse_size(v) is None:
                    problems.append(Problem(where, f"`resources.memory` must be a size like 4GiB or 512MB, got {v!r}",
                                            line))
                elif k != "memory" and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                    problems.append(Problem(where, f"`resources.{k}` must be a positive number, got {v!r}", line))
            node.resources = dict(res)
    tags = raw.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) and TAG_RE.match(t) for t in tags):
            problems.append(Problem(where, "`tags` must be a list of names like [gpu, ssd] ([A-Za-z0-9_.-]+)", line))
        else:
            node.tags = list(dict.fromkeys(tags))
