"""The REST API: thin routes over the engine, the store and the run manager."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from server import __version__
from server.engine.data.pageindex import INDEX_MIN_BYTES
from server.engine.errors import ConflictError, NotFoundError, UsageError
from server.engine.model import ID_RE, NODE_KEYS
from server.engine.paths import pipeline_id_for, safe_path

from .errors import json_body
from .highlight import stylesheet

api = Blueprint("api", __name__, url_prefix="/api")

PREVIEW_MAX_LIMIT = 1000
NEAR_RECORDS = 5000  # a page this close to the start is read from the start while the index is built
PAGE_WAIT_S = 60.0  # how long a far page waits for the index build to pass it
LOG_MAX_LIMIT = 10000
# a larger number cannot be a stored version (SQLite integers are 64-bit); such URLs are simply not found
VERSION_MAX = 2**63 - 1


def _state():
    return current_app.extensions["pipeloom"]


def int_arg(name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
    """An integer query parameter; a malformed one is a 400, an oversized one is clamped to `high`."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"`{name}` must be a whole number, got {raw!r}") from None
    if value < low:
        raise UsageError(f"`{name}` must be at least {low}, got {value}")
    return min(value, high) if high is not None else value


def _opt_str(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"`{key}` must be a node id (a non-empty string)")
    return value


def name_field(message: str, field: str) -> str:
    """An engine message about a run option, made to name the JSON field it concerns."""
    # the engine may still phrase it for the command line (`--only x: ...`)
    message = re.sub(rf"^--{field}\s+\S+:\s*", "", message)
    if f"`{field}`" in message or f'"{field}"' in message:
        return message
    return f'"{field}": {message}'


# ---------------------------------------------------------------- misc

@api.get("/health")
def health():
    return jsonify({"ok": True, "version": __version__, "workspace": _state().workspace.name})


@api.get("/pygments.css")
def pygments_css():
    theme = request.args.get("theme", "auto")
    if theme not in ("auto", "light", "dark"):
        raise UsageError("`theme` must be auto, light or dark")
    return Response(stylesheet(theme), mimetype="text/css", headers={"Cache-Control": "max-age=3600"})


@api.get("/runtimes")
def runtimes():
    from server.engine.runtimes import RUNTIMES

    return jsonify([r.describe() for r in RUNTIMES.values()])


@api.post("/demo")
def demo():
    from server.engine.demo import create_demo

    json_body()
    st = _state()
    path = create_demo(st.workspace)
    st.pipelines.invalidate_index()
    pid = pipeline_id_for(st.workspace, path)
    st.pipelines.sync(pid, path)
    return jsonify({"id": pid, "path": st.pipelines.rel(path)}), 201


# ---------------------------------------------------------------- pipelines

@api.get("/pipelines")
def list_pipelines():
    return jsonify(_state().pipelines.list())


@api.post("/pipelines")
def create_pipeline():
    body = json_body()
    st = _state()
    pid, _ = st.pipelines.create(body.get("path"), body.get("document"), body.get("name"))
    return jsonify(st.pipelines.describe(pid)), 201


@api.get("/pipelines/<pipeline_id>")
def get_pipeline(pipeline_id: str):
    return jsonify(_state().pipelines.describe(pipeline_id))


@api.put("/pipelines/<pipeline_id>")
def save_pipeline(pipeline_id: str):
    body = json_body()
    if "document" not in body:
        raise UsageError("`document` is required")
    replace_broken = body.get("replace_broken", False)
    if not isinstance(replace_broken, bool):
        raise UsageError("`replace_broken` must be true or false")
    return jsonify(_state().pipelines.save(pipeline_id, body["document"], body.get("version"),
                                           replace_broken=replace_broken, client=body.get("client")))


@api.post("/pipelines/<pipeline_id>/validate")
def validate_pipeline(pipeline_id: str):
    body = json_body()
    if "document" not in body:
        raise UsageError("`document` is required")
    pl = _state().pipelines
    pl.check_document(body["document"], pl.path_for(pipeline_id))
    return jsonify({"ok": True})


@api.get("/pipelines/<pipeline_id>/versions")
def list_versions(pipeline_id: str):
    st = _state()
    st.pipelines.sync(pipeline_id)
    return jsonify([{k: v.get(k) for k in ("version", "created_at", "note", "sha256")}
                    for v in st.store.list_versions(pipeline_id)])


@api.get(f"/pipelines/<pipeline_id>/versions/<int(max={VERSION_MAX}):number>")
def get_version(pipeline_id: str, number: int):
    return jsonify(_state().pipelines.version_document(pipeline_id, number))


@api.get(f"/pipelines/<pipeline_id>/versions/<int(max={VERSION_MAX}):number>/diff")
def version_diff(pipeline_id: str, number: int):
    """What restoring a version would change (?against=current, the default), or what that save changed
    (?against=previous): {version, against, from, same, summary, changes}."""
    return jsonify(_state().pipelines.version_diff(pipeline_id, number, request.args.get("against") or "current"))


@api.post(f"/pipelines/<pipeline_id>/versions/<int(max={VERSION_MAX}):number>/restore")
def restore_version(pipeline_id: str, number: int):
    json_body()
    return jsonify(_state().pipelines.restore(pipeline_id, number))


@api.put("/pipelines/<pipeline_id>/autorun")
def set_autorun(pipeline_id: str):
    body = json_body()
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise UsageError("`enabled` must be true or false")
    _state().pipelines.set_autorun(pipeline_id, enabled)
    return jsonify({"pipeline_id": pipeline_id, "enabled": enabled})


@api.post("/pipelines/<pipeline_id>/nodes")
def new_node(pipeline_id: str):
    from server.engine.runtimes import get_runtime

    body = json_body()
    st = _state()
    node_id, runtime_name = body.get("id"), body.get("runtime")
    if not isinstance(node_id, str) or not ID_RE.match(node_id):
        raise UsageError("`id` must match [a-z0-9_-]+ (lower-case letters, digits, - and _)")
    if not isinstance(runtime_name, str) or not runtime_name:
        raise UsageError("`runtime` is required (see GET /api/runtimes)")
    runtime = get_runtime(runtime_name)
    if runtime is None:
        from server.engine.runtimes import RUNTIMES

        raise UsageError(f"unknown runtime `{runtime_name}` (one of: {', '.join(RUNTIMES)})")
    path = st.pipelines.path_for(pipeline_id)
    try:
        st.pipelines.node_document(pipeline_id, node_id)
    except NotFoundError:
        pass
    else:
        raise ConflictError(f"pipeline `{pipeline_id}` already has a node `{node_id}`")
    node = starter_node(runtime, node_id, body)
    source_path = None
    if runtime.needs_source:
        rel = body.get("source")
        if rel is None:
            folder = _node_folder(path)
            rel = (f"{folder}/" if folder else "") + f"{node_id}{runtime.source_ext}"
        if not isinstance(rel, str) or not rel:
            raise UsageError("`source` must be a path relative to the pipeline file")
        template = runtime.template(node_id) if callable(runtime.template) else runtime.template
        created = st.pipelines.new_node_file(pipeline_id, rel, template)
        node["source"] = Path(rel).as_posix()
        source_path = created.relative_to(st.workspace).as_posix()
    node = {k: node[k] for k in NODE_KEYS if k in node}
    return jsonify({"node": node, "source_path": source_path}), 201


def _node_folder(pipeline_path: Path) -> str | None:
    """Node files go in a folder named like the pipeline when it has one (the demo's layout)."""
    from server.engine.paths import strip_pipeline_suffix

    stem = strip_pipeline_suffix(pipeline_path.name)
    return stem if (pipeline_path.parent / stem).is_dir() else None


def starter_node(runtime, node_id: str, body: dict) -> dict:
    """The document dict of a new node: title, ports matching the runtime's template."""
    node: dict = {"id": node_id, "runtime": runtime.name}
    title = body.get("title")
    node["title"] = title if isinstance(title, str) and title.strip() else node_id.replace("-", " ").replace("_", " ").capitalize()
    desc = body.get("description")
    if isinstance(desc, str) and desc.strip():
        node["description"] = desc
    # every runtime's starter program writes one JSON output called `out` (out.json)
    node["outputs"] = [{"name": "out", "file": "out.json", "format": "json"}]
    if not runtime.needs_source:
        node["command"] = ["cp", "params.json", "out.json"]
    pos = body.get("position")
    if isinstance(pos, dict) and all(isinstance(pos.get(k), (int, float)) for k in ("x", "y")):
        node["position"] = {"x": pos["x"], "y": pos["y"]}
    return node


@api.get("/pipelines/<pipeline_id>/nodes/<node_id>/source")
def node_source(pipeline_id: str, node_id: str):
    payload = _state().source_payload(pipeline_id, node_id)
    return jsonify({k: payload[k] for k in ("language", "code", "html", "path", "truncated", "node_id")})


# ---------------------------------------------------------------- runs

@api.post("/pipelines/<pipeline_id>/runs")
def start_run(pipeline_id: str):
    body = json_body()
    only, from_node = _opt_str(body, "only"), _opt_str(body, "from")
    if only and from_node:
        raise UsageError("give `only` or `from`, not both")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise UsageError("`force` must be true or false")
    jobs = body.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise UsageError("`jobs` must be a whole number >= 1")
    st = _state()
    pipeline = st.pipelines.load_for_run(pipeline_id)
    try:
        run_id = st.runs.start(pipeline, pipeline_id, only=only, from_node=from_node, force=force, jobs=jobs)
    except UsageError as exc:
        field = "only" if only else "from" if from_node else None
        if field is None:
            raise
        raise UsageError(name_field(str(exc), field)) from None
    return jsonify({"run_id": run_id, "pipeline_id": pipeline_id}), 202


@api.get("/pipelines/<pipeline_id>/runs/latest")
def latest_run(pipeline_id: str):
    st = _state()
    st.pipelines.path_for(pipeline_id)
    runs = st.store.list_runs(pipeline_id=pipeline_id, limit=1)
    if not runs:
        raise NotFoundError(f"pipeline `{pipeline_id}` has not been run yet")
    return jsonify(_run_dict(runs[0]["run_id"]))


@api.get("/pipelines/<pipeline_id>/latest")
def latest_results_route(pipeline_id: str):
    """Every step's latest result and the run that produced it (the studio's default view)."""
    from server.engine.store.latest import latest_results

    st = _state()
    return jsonify(latest_results(st.store, pipeline_id, node_ids=st.pipelines.node_ids(pipeline_id)))


@api.get("/runs")
def list_runs():
    st = _state()
    pid = request.args.get("pipeline") or None
    limit = int_arg("limit", 50, low=1, high=500)
    runs = st.store.list_runs(pipeline_id=pid, limit=limit)
    for r in runs:
        r["active"] = st.runs.is_active(r["run_id"])
    return jsonify(runs)


def _run_dict(run_id: str) -> dict:
    st = _state()
    run = st.store.get_run(run_id)
    run["active"] = st.runs.is_active(run_id)
    for info in (run.get("nodes") or {}).values():
        keep_source_run(info)
    return run


def keep_source_run(info: dict) -> None:
    """`source_run` (the run a cached node's outputs come from) stays on cached nodes only."""
    if info.get("status") != "cached" or not info.get("source_run"):
        info.pop("source_run", None)


@api.get("/runs/<run_id>")
def get_run(run_id: str):
    return jsonify(_run_dict(run_id))


@api.post("/runs/<run_id>/cancel")
def cancel_run(run_id: str):
    json_body()
    st = _state()
    if st.runs.cancel(run_id):
        return jsonify({"run_id": run_id, "status": "cancelling"}), 202
    run = st.store.get_run(run_id)
    raise ConflictError(f"run {run_id} is not running (it {run.get('status')})")


def _node_of_run(run_id: str, node_id: str) -> None:
    """404 unless the run exists and has (or, while active, will have) this node."""
    st = _state()
    run = st.store.get_run(run_id)
    if node_id in (run.get("nodes") or {}):
        return
    snap = st.runs.live_snapshot(run_id)
    if snap is not None and node_id in (snap.get("nodes") or {}):
        return
    raise NotFoundError(f"run {run_id} has no node `{node_id}`")


@api.get("/runs/<run_id>/nodes/<node_id>/logs")
def node_logs(run_id: str, node_id: str):
    from server.engine.logs import read_log

    st = _state()
    offset = int_arg("offset", 0)
    limit = int_arg("limit", 1000, low=1, high=LOG_MAX_LIMIT)
    _node_of_run(run_id, node_id)
    try:
        raw = st.store.log_path(run_id, node_id)
    except NotFoundError:
        return jsonify({"lines": [], "next": offset, "size": 0})
    path = safe_path(st.workspace, raw, what="log")
    if not path.is_file():
        return jsonify({"lines": [], "next": offset, "size": 0})
    size = path.stat().st_size
    if offset > size:
        raise UsageError(f"`offset` {offset} is past the end of the log ({size} bytes)")
    lines, nxt = read_log(path, offset=offset, limit=limit)
    return jsonify({"lines": lines, "next": nxt, "size": size})


def _artifact_path(run_id: str, node_id: str, port: str) -> tuple[dict, Path]:
    st = _state()
    _node_of_run(run_id, node_id)
    art = st.store.get_artifact(run_id, node_id, port)
    path = safe_path(st.workspace, art["path"], what="output")
    if not path.is_file():
        raise NotFoundError(f"the output `{node_id}.{port}` of run {run_id} is no longer on disk")
    return art, path


def page_index_for(path: Path, fmt: str, offset: int, get):
    """A file's page index, as far as it goes once its scan has passed `offset` (a first page does not
    wait; a far one waits up to PAGE_WAIT_S while the index is built); None for small or other files.
    `get()` returns the index or the build under way."""
    from server.engine.data.pageindex import INDEXED_FORMATS, Build

    if fmt not in INDEXED_FORMATS or path.stat().st_size <= INDEX_MIN_BYTES:
        return None
    got = get()
    if isinstance(got, Build):
        return got.wait_for(offset, PAGE_WAIT_S if offset > NEAR_RECORDS else 0)
    return got


def _page_index(run_id: str, node_id: str, port: str, art: dict, path: Path, offset: int):
    """An output's page index (see `page_index_for`)."""
    fmt = art.get("format") or "binary"
    return page_index_for(path, fmt, offset,
                          lambda: _state().runs.index_output(run_id, node_id, port, path, art, fmt))


@api.get("/runs/<run_id>/nodes/<node_id>/outputs/<port>")
def output_preview(run_id: str, node_id: str, port: str):
    offset = int_arg("offset", 0)
    limit = int_arg("limit", 50, low=1, high=PREVIEW_MAX_LIMIT)
    art, path = _artifact_path(run_id, node_id, port)
    from server.engine.data.pageindex import index_key

    from .inspect import query_page

    fmt = art.get("format") or "binary"
    key = index_key(path, art.get("sha256"), art.get("size"), art.get("mtime_ns"))
    queried = query_page(path, fmt, key, offset, limit, art.get("records"))  # ?sort=, filter=, q=
    if queried is not None:
        return jsonify(queried)
    index = _page_index(run_id, node_id, port, art, path, offset)
    return jsonify(indexed_page(path, fmt, offset, limit, index, art.get("records")))


def indexed_page(path: Path, fmt: str, offset: int, limit: int, index, records: int | None) -> dict:
    """A preview page read through the file's page index (when it has one), with the record count the
    run gave or the index's exact total, and whether that total is known."""
    from server.engine.data.preview import preview_file

    page = preview_file(path, fmt, offset=offset, limit=limit, index=index)
    if records is None and index is not None and index.complete:
        records = index.total
    page.setdefault("records", records)
    page["total_known"] = page.get("total") is not None
    page.setdefault("counting", False)
    return page


@api.get("/runs/<run_id>/nodes/<node_id>/outputs/<port>/raw")
def output_raw(run_id: str, node_id: str, port: str):
    _, path = _artifact_path(run_id, node_id, port)
    return send_file(path, as_attachment=True, download_name=f"{node_id}-{path.name}",
                     mimetype="application/octet-stream", max_age=0)


# ---------------------------------------------------------------- one cell of a table preview, by pages

@api.get("/runs/<run_id>/nodes/<node_id>/outputs/<port>/cell")
def output_cell(run_id: str, node_id: str, port: str):
    """One page of the full text of a table cell (previews cut long cells and list them in `cut_cells`)."""
    from server.engine.data.preview import CELL_MAX_CHARS, CELL_PAGE_CHARS, cell_value

    if request.args.get("record") in (None, ""):
        raise UsageError("`record` is required: the cell's record number, counted from 0")
    record = int_arg("record", 0)
    column = request.args.get("column")
    if column is None or column == "":
        raise UsageError("`column` is required: the name of the cell's column")
    offset = int_arg("offset", 0)
    limit = int_arg("limit", CELL_PAGE_CHARS, low=1, high=CELL_MAX_CHARS)
    art, path = _artifact_path(run_id, node_id, port)
    index = _page_index(run_id, node_id, port, art, path, record)
    return jsonify(cell_value(path, art.get("format") or "binary", record, column, offset=offset, limit=limit,
                              index=index))
