"""The routes other programs call: /invoke (http triggers), /metrics, and the triggers' state for the studio.

Thin over server/triggers: admission, bodies, timeouts and answers are decided
there; this file only checks keys and turns an Answer into a response.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request

from server.engine.errors import UsageError

from .errors import error_body, json_body

invoke = Blueprint("invoke", __name__)
service = Blueprint("triggers_api", __name__, url_prefix="/api")


def _state():
    return current_app.extensions["pipeloom"]


def _unauthorized(message: str, status: int = 401) -> Response:
    resp = jsonify(error_body(message))
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="pipeloom-invoke"'
    return resp


def _authorize(pipeline_id: str, trigger_id: str) -> Response | None:
    """None when the caller may invoke: an invoke key for this pipeline (and trigger), or the studio token."""
    from server.triggers.keys import key_allows, key_hash

    guard = current_app.extensions["pipeloom_guard"]
    given = guard.bearer(request.environ)
    if not given:
        return _unauthorized("send an invoke key as `Authorization: Bearer <key>` "
                             "(make one with: pipeloom keys create PIPELINE)")
    if guard.token_ok(given):
        return None
    row = _state().store.find_key(key_hash(given))
    if row is None:
        return _unauthorized("this invoke key is not known here")
    if row.get("revoked_at"):
        return _unauthorized(f"invoke key `{row['name']}` was revoked")
    if not key_allows(row, pipeline_id, trigger_id):
        opens = f"{row['pipeline_id']}/{row['trigger_id'] or '*'}"
        return _unauthorized(f"invoke key `{row['name']}` opens {opens}, not {pipeline_id}/{trigger_id}", 403)
    return None


@invoke.post("/invoke/<pipeline_id>/<trigger_id>")
def call(pipeline_id: str, trigger_id: str):
    """Run a pipeline on the request body and answer with its result output (docs/api.md, "Invoking")."""
    refused = _authorize(pipeline_id, trigger_id)
    if refused is not None:
        return refused
    state = _state()
    if state.triggers is None:
        return jsonify(error_body("this server runs no triggers")), 404
    trigger = state.triggers.http(pipeline_id, trigger_id)
    length = request.content_length
    if length is not None and length > trigger.max_body:
        return jsonify(error_body(f"the body is {length:,} bytes; trigger `{trigger_id}` takes at most "
                                  f"{trigger.max_body:,} (max_body_mb)")), 413
    wait = request.args.get("wait", "true").lower() not in ("false", "0", "no")
    request.max_content_length = trigger.max_body  # the trigger's limit, not the studio's
    body = request.get_data(cache=False)
    if len(body) > trigger.max_body:  # a chunked body has no Content-Length to check first
        return jsonify(error_body(f"the body is over {trigger.max_body:,} bytes, the most trigger "
                                  f"`{trigger_id}` takes (max_body_mb)")), 413
    answer = trigger.invoke(body, request.content_type, wait=wait,
                            request_id=request.headers.get("X-Request-Id") or None)
    data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
    resp = Response(data, status=answer.status, content_type=answer.content_type)
    for k, v in answer.headers.items():
        resp.headers[k] = v
    return resp


@invoke.get("/metrics")
def metrics():
    """Prometheus text format: runs, node durations, batch sizes, lag and event-to-result latency."""
    data, ctype = _state().metrics.render()
    return Response(data, content_type=ctype)


@service.get("/triggers")
def list_triggers():
    """Every trigger's live state: {triggers: [{pipeline_id, trigger_id, kind, state, lag, ...}]}."""
    state = _state()
    pid = request.args.get("pipeline") or None
    return jsonify({"triggers": state.triggers.statuses(pid) if state.triggers else []})


@service.post("/pipelines/<pipeline_id>/triggers/<trigger_id>/pause")
def pause(pipeline_id: str, trigger_id: str):
    """Stop a trigger from starting runs (kept across restarts)."""
    return _steer(pipeline_id, trigger_id, True)


@service.post("/pipelines/<pipeline_id>/triggers/<trigger_id>/resume")
def resume(pipeline_id: str, trigger_id: str):
    """Let a paused trigger start runs again."""
    return _steer(pipeline_id, trigger_id, False)


def _steer(pipeline_id: str, trigger_id: str, paused: bool):
    json_body()
    state = _state()
    if state.triggers is None:
        raise UsageError("this server runs no triggers")
    return jsonify(state.triggers.set_paused(pipeline_id, trigger_id, paused))
