"""Socket.IO handlers: authenticated connect, subscribe/unsubscribe to rooms."""

from __future__ import annotations

import logging

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room, leave_room

from server.engine.errors import NotFoundError

from .security import Guard, cookie_token

log = logging.getLogger("pipeloom.web")


def _room(data) -> tuple[str, str, str] | None:
    """('pipeline'|'run', id, room name) from a subscribe payload, or None when malformed."""
    if not isinstance(data, dict):
        return None
    for key, prefix in (("run_id", "run"), ("pipeline_id", "pipeline")):
        value = data.get(key)
        if isinstance(value, str) and value and len(value) < 300:
            return prefix, value, f"{prefix}:{value}"
    return None


def register_socket_handlers(socketio: SocketIO, state, guard: Guard) -> None:
    """Attach connect/subscribe/unsubscribe to the app's SocketIO."""

    @socketio.on("connect")
    def on_connect(auth=None):
        env = request.environ
        if not guard.origin_ok(env.get("HTTP_ORIGIN"), env.get("HTTP_HOST"), env.get("wsgi.url_scheme", "http")):
            raise ConnectionRefusedError("origin not allowed")
        token = auth.get("token") if isinstance(auth, dict) else None
        if not guard.token_ok(token) and not guard.token_ok(cookie_token(env)):
            raise ConnectionRefusedError("missing or wrong token")
        return True

    @socketio.on("subscribe")
    def on_subscribe(data=None):
        target = _room(data)
        if target is None:
            return {"ok": False, "error": "send {\"pipeline_id\": ID} or {\"run_id\": ID}"}
        kind, ident, room = target
        if kind == "pipeline":
            try:
                state.pipelines.path_for(ident)
            except NotFoundError as exc:
                return {"ok": False, "error": str(exc)}
        join_room(room)

        def send(snap: dict) -> None:
            if kind == "pipeline":
                snap["autorun"] = state.pipelines.autorun(ident)
            emit("snapshot", snap)

        try:
            state.runs.snapshot(**{f"{kind}_id": ident}, send=send)
        except NotFoundError as exc:
            leave_room(room)
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a snapshot that cannot be read must not cost the subscription
            log.exception("snapshot of %s", room)
            send({"run_id": None, "status": None, "nodes": {}, "logs": {}, "error": str(exc)})
        return {"ok": True, "room": room}

    @socketio.on("unsubscribe")
    def on_unsubscribe(data=None):
        target = _room(data)
        if target is None:
            return {"ok": False, "error": "send {\"pipeline_id\": ID} or {\"run_id\": ID}"}
        leave_room(target[2])
        return {"ok": True, "room": target[2]}
