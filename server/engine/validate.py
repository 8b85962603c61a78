"""Graph and environment checks: everything wrong with a pipeline, reported at once."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .errors import Problem, UnsafePathError, did_you_mean
from .model import Pipeline
from .paths import BadPathError, safe_path
from .runtimes import RUNTIMES, get_runtime


def validate(pipeline: Pipeline, workspace: Path, *, check_env: bool = True,
             structural_only: bool = False) -> list[Problem]:
    """Every problem in the pipeline; each names the node, port or field."""
    problems: list[Problem] = []
    ids: dict[str, int] = defaultdict(int)
    for n in pipeline.nodes:
        ids[n.id] += 1
    for nid, count in ids.items():
        if count > 1:
            problems.append(Problem(f"node `{nid}`", f"duplicate id: {count} nodes are called `{nid}`"))
    nodes: dict = {}
    for n in pipeline.nodes:
        nodes.setdefault(n.id, n)
    base = Path(pipeline.base_dir or workspace)
    files: dict[tuple[str, str], str | None] = {}  # many nodes often share one source file: check it once
    known_formats = set(_format_names())

    for n in pipeline.nodes:
        where = f"node `{n.id}`"
        rt = get_runtime(n.runtime) if n.runtime else None
        if n.runtime and rt is None:
            problems.append(Problem(where, f"unknown runtime `{n.runtime}`{did_you_mean(n.runtime, RUNTIMES)} "
                                           f"(known: {', '.join(RUNTIMES)})", n.line))
        if rt is not None:
            if rt.needs_source:
                if not n.source:
                    problems.append(Problem(where, f"runtime `{n.runtime}` needs `source`: the program file", n.line))
                if n.command is not None:
                    problems.append(Problem(where, "`command` is only for runtime `command`; use `source`", n.line))
            else:
                if n.command is None:
                    problems.append(Problem(where, "runtime `command` needs `command`: the argv list, e.g. [tar, -czf, out.tgz, in.json]", n.line))
                if n.source:
                    problems.append(Problem(where, "runtime `command` takes no `source`; put the program in `command`", n.line))
        if n.source:
            _check_file(problems, where, "source", n.source, base, workspace, n.line, files)
        if check_env and rt is not None:
            missing = rt.missing_toolchain()
            if rt.name == "command":
                missing = rt.missing_program(n)
            if missing:
                problems.append(Problem(where, missing, n.line))
        files_seen: dict[str, str] = {}
        for kind, ports in (("input", n.inputs), ("output", n.outputs)):
            for p in ports:
                pw = f"{where}, {kind} `{p.name}`"
                if p.file in files_seen:
                    problems.append(Problem(pw, f"file `{p.file}` is also used by {files_seen[p.file]}; each port needs its own file", n.line))
                else:
                    files_seen[p.file] = f"{kind} `{p.name}`"
                if p.format not in known_formats:
                    problems.append(Problem(pw, f"unknown format `{p.format}` (known: {', '.join(_format_names())})", n.line))
                if p.path:
                    _check_file(problems, pw, "path", p.path, base, workspace, n.line, files)

    fed: dict[tuple[str, str], list[str]] = defaultdict(list)
    for n in pipeline.nodes:
        for p in n.inputs:
            if p.path:
                fed[(n.id, p.name)].append(f"the file `{p.path}`")
    for e in pipeline.edges:
        where = f"edge `{e.src_node}.{e.src_port} -> {e.dst_node}.{e.dst_port}`"
        src, dst = nodes.get(e.src_node), nodes.get(e.dst_node)
        ok = _check_end(problems, where, e.line, src, e.src_node, e.src_port, "output", nodes)
        ok = _check_end(problems, where, e.line, dst, e.dst_node, e.dst_port, "input", nodes) and ok
        if not ok:
            continue
        fed[(e.dst_node, e.dst_port)].append(f"`{e.src_node}.{e.src_port}`")
        sfmt, dfmt = src.output(e.src_port).format, dst.input(e.dst_port).format
        if sfmt != dfmt and sfmt in known_formats and dfmt in known_formats:
            okc, why = _can_convert(sfmt, dfmt)
            if not okc:
                problems.append(Problem(where, why or f"no conversion from {sfmt} to {dfmt}", e.line))

    by_trigger: set[tuple[str, str]] = set()
    if pipeline.triggers:
        from .triggerspec import entry_inputs

        by_trigger = entry_inputs(pipeline.triggers)
    for n in pipeline.nodes:
        for p in n.inputs:
            sources = fed.get((n.id, p.name), [])
            pw = f"node `{n.id}`, input `{p.name}`"
            if len(sources) > 1:
                problems.append(Problem(pw, f"fed twice, by {' and '.join(sources)}; an input takes one source", n.line))
            elif not sources and (n.id, p.name) not in by_trigger:
                problems.append(Problem(pw, "fed by nothing: connect an edge to it, give it a `path`, "
                                            "or feed it from a trigger", n.line))
    if pipeline.triggers:
        from .triggerspec import check_triggers

        problems += check_triggers(pipeline.triggers, pipeline, workspace)

    cycle = find_cycle(pipeline)
    if cycle:
        problems.append(Problem("edges", f"cycle: {' -> '.join(cycle)}; a pipeline must flow one way"))
    return problems


def _check_end(problems: list[Problem], where: str, line: int | None, node, node_id: str, port: str,
               kind: str, all_ids=()) -> bool:
    """One end of an edge: the node exists and has that port on the right side."""
    if node is None:
        problems.append(Problem(where, f"no node called `{node_id}`{did_you_mean(node_id, all_ids)}", line))
        return False
    own, other = (node.outputs, node.inputs) if kind == "output" else (node.inputs, node.outputs)
    if any(p.name == port for p in own):
        return True
    other_kind = "input" if kind == "output" else "output"
    hint = f" (it is an {other_kind} of that node)" if any(p.name == port for p in other) else ""
    names = ", ".join(p.name for p in own) or "none"
    hint = hint or did_you_mean(port, [p.name for p in own])
    problems.append(Problem(where, f"node `{node_id}` has no {kind} `{port}`{hint}; its {kind}s: {names}", line))
    return False


def _check_file(problems: list[Problem], where: str, field: str, rel: str, base: Path, workspace: Path,
                line: int | None, seen: dict[tuple[str, str], str | None]) -> None:
    if (field, rel) not in seen:
        seen[(field, rel)] = _file_problem(field, rel, base, workspace)
    if seen[(field, rel)]:
        problems.append(Problem(where, seen[(field, rel)], line))


def _file_problem(field: str, rel: str, base: Path, workspace: Path) -> str | None:
    """What is wrong with a file a node names (its `source`, an input's `path`), or None."""
    try:
        resolved = safe_path(workspace, base / rel, what=f"`{field}`")
    except BadPathError as exc:
        return str(exc)
    except UnsafePathError:
        return f"`{field}` {rel} is outside the workspace {Path(workspace).resolve()} (symlinks are followed)"
    if not resolved.is_file():
        return f"`{field}` {rel} not found (looked in {base})"
    return None


def find_cycle(pipeline: Pipeline) -> list[str] | None:
    """One cycle as a closed list of node ids (`a -> b -> a`), or None."""
    adj: dict[str, list[str]] = defaultdict(list)
    for e in pipeline.edges:
        adj[e.src_node].append(e.dst_node)
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in adj.get(u, []):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if state.get(v) is None:
                found = dfs(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for nid in [n.id for n in pipeline.nodes] + list(adj):
        if state.get(nid) is None:
            found = dfs(nid)
            if found:
                return found
    return None


def _format_names() -> list[str]:
    from .data import formats

    return list(formats.FORMATS)


def _can_convert(src: str, dst: str) -> tuple[bool, str | None]:
    from .data import formats

    return formats.can_convert(src, dst)
