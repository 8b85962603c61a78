"""The diff of one step of one run: which input and output to compare, where their files are, and why records went.

The step's ports come from the run's pipeline file; its files from the run's
record (an output reused from an earlier run is read where it lives). An input
fed by an edge is compared as the upstream output it came from; an entry input
as the file the step was given.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..dataerrors import MalformedDataError
from ..errors import NotFoundError
from ..hashing import file_sha256
from ..logs import parse_line
from ..paths import Layout
from .diff import RECORDS_FORMATS, Diff, DiffError, Side, compute, reasons_from_log


def pipeline_of_run(workspace, run: dict):
    """The pipeline a stored run ran: the document it kept, or (a run from before runs kept it) its file
    as it is today; confined to the workspace."""
    from ..model import build_pipeline, load_pipeline
    from ..paths import safe_path

    path = safe_path(workspace, run["pipeline_path"], what="pipeline")
    kept = run.get("document")
    if isinstance(kept, dict):
        pipeline, problems = build_pipeline(kept, {}, base_dir=path.parent)
        if not problems:  # it ran, so it was valid; its files may have moved since, which a diff does not need
            pipeline.path = path
            return pipeline
    return load_pipeline(path, workspace=workspace, check_env=False)


def _pick(ports, wanted: str | None, what: str, node_id: str):
    records = [p for p in ports if p.format in RECORDS_FORMATS]
    if wanted is not None:
        port = next((p for p in ports if p.name == wanted), None)
        if port is None:
            names = ", ".join(p.name for p in ports) or "none"
            raise NotFoundError(f"step `{node_id}` has no {what} `{wanted}` ({what}s: {names})")
        if port.format not in RECORDS_FORMATS:
            raise DiffError(f"{what} `{wanted}` of step `{node_id}` is {port.format}, not records "
                            f"({', '.join(RECORDS_FORMATS)})")
        return port
    if not records:
        raise DiffError(f"step `{node_id}` has no records {what} ({', '.join(RECORDS_FORMATS)}) to compare")
    return records[0]


def step_diff(workspace, store, pipeline, run_id: str, node_id: str, *, input: str | None = None,
              output: str | None = None) -> tuple[Diff, dict]:
    """Diff of `node_id` in run `run_id`: (the Diff, {"input": name, "output": name, "node": id})."""
    node = pipeline.node(node_id)
    if node is None:
        raise NotFoundError(f"the pipeline has no step `{node_id}` (steps: {', '.join(pipeline.node_ids)})")
    run = store.get_run(run_id)
    rec = (run.get("nodes") or {}).get(node_id)
    if rec is None:
        raise NotFoundError(f"step `{node_id}` is not part of run {run_id}")
    fed = {e.dst_port for e in pipeline.edges if e.dst_node == node_id}
    if input is None:  # the records that flow in from another step first, then the step's own files
        ordered = sorted(node.inputs, key=lambda p: p.name not in fed)
        candidates = [p for p in ordered if p.format in RECORDS_FORMATS] or [_pick(node.inputs, None, "input", node_id)]
    else:
        candidates = [_pick(node.inputs, input, "input", node_id)]
    out_port = _pick(node.outputs, output, "output", node_id)
    art = (rec.get("artifacts") or {}).get(out_port.name)
    if not art or not art.get("path"):
        raise NotFoundError(f"step `{node_id}` has no output `{out_port.name}` in run {run_id} "
                            f"(it {rec.get('status', 'did not run')})")
    layout = Layout(workspace)
    home = rec.get("source_run") or run_id  # a reused step's files live in the run that made them
    after = Side(Path(art["path"]), art.get("format") or out_port.format, f"output `{out_port.name}`",
                 art.get("sha256"))
    diff = in_port = None
    for i, in_port in enumerate(candidates):
        before = _input_side(layout, pipeline, run, home, node_id, in_port)
        try:
            diff = compute(before, after, key=out_port.key or in_port.key, cache_dir=layout.state / "diffs",
                           normal=out_port.normal)
            break
        except MalformedDataError as exc:
            # a settings file (a JSON object) is not records: try the next input, unless this one was asked for
            if input is not None or exc.path != str(before.path):
                raise
            if i == len(candidates) - 1:
                raise DiffError(f"step `{node_id}` has no input that is a list of records to compare with its "
                                f"output (input `{in_port.name}`: {exc.detail})") from exc
    reasons = {}
    log = layout.log_path(home, node_id)
    if diff.key and log.is_file():
        with open(log, encoding="utf-8", errors="replace") as fh:
            reasons = reasons_from_log((parse_line(line)["text"] for line in fh), diff.key)
    diff.reasons = reasons
    return diff, {"node": node_id, "input": in_port.name, "output": out_port.name}


def _input_side(layout: Layout, pipeline, run: dict, home: str, node_id: str, port) -> Side:
    edge = next((e for e in pipeline.edges if e.dst_node == node_id and e.dst_port == port.name), None)
    if edge is not None:
        up = ((run.get("nodes") or {}).get(edge.src_node) or {}).get("artifacts", {}).get(edge.src_port)
        if up and up.get("path") and Path(up["path"]).is_file():
            return Side(Path(up["path"]), up.get("format") or port.format, f"input `{port.name}`", up.get("sha256"))
    staged = layout.node_dir(home, node_id) / port.file
    if not staged.is_file():
        raise NotFoundError(f"the file that fed input `{port.name}` of step `{node_id}` is no longer there "
                            f"({staged})")
    return Side(staged, port.format, f"input `{port.name}`", _sha(staged))


def _sha(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return hashlib.sha256(str(path).encode()).hexdigest()


def run_diff(workspace, store, pipeline, run_a: str, run_b: str, node_id: str, port: str) -> tuple[Diff, dict]:
    """How output `port` of step `node_id` differs between run `run_a` (before) and run `run_b` (after)."""
    sides = []
    for which, run_id in (("a", run_a), ("b", run_b)):
        run = store.get_run(run_id)
        rec = (run.get("nodes") or {}).get(node_id)
        if rec is None:
            raise NotFoundError(f"step `{node_id}` is not part of run {run_id}")
        art = (rec.get("artifacts") or {}).get(port)
        if not art or not art.get("path"):
            names = ", ".join(rec.get("artifacts") or {}) or "none"
            raise NotFoundError(f"run {run_id} has no output `{port}` of step `{node_id}` (its outputs: {names})")
        fmt = art.get("format") or "json"
        if fmt not in RECORDS_FORMATS:
            raise DiffError(f"output `{port}` of step `{node_id}` is {fmt}, not records ({', '.join(RECORDS_FORMATS)})")
        path = Path(art["path"])
        if not path.is_file():
            raise NotFoundError(f"output `{port}` of step `{node_id}` in run {run_id} is no longer on disk")
        sides.append(Side(path, fmt, f"run {run_id}'s `{node_id}.{port}`", art.get("sha256")))
    node = pipeline.node(node_id) if pipeline is not None else None
    out = node.output(port) if node is not None else None
    key = out.key if out is not None else None
    diff = compute(sides[0], sides[1], key=key, cache_dir=Layout(workspace).state / "diffs",
                   normal=out.normal if out is not None else None)
    return diff, {"a": run_a, "b": run_b, "node": node_id, "port": port}
