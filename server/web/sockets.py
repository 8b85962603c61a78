"""Socket.IO handlers (authenticated connect, subscribe/unsubscribe to rooms) and the bound on what the
server holds for a client that does not keep up."""

from __future__ import annotations

import logging
import socket
import threading
import weakref
from urllib.parse import parse_qs

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room, leave_room

from server.engine.errors import NotFoundError

from .security import Guard, cookie_token

log = logging.getLogger("pipeloom.web")

MAX_BACKLOG_BYTES = 4 * 1024 * 1024


class SlowClients:
    """Cuts off a client whose unsent events pass `limit` bytes, so one that stops reading costs bounded memory.

    Engine.IO gives each client an unbounded queue and a writer thread; once a
    client stops reading and the kernel buffers fill, that writer blocks in a
    send with no timeout (Engine.IO's timeout never reaches simple-websocket's
    socket), the queue grows with every event, and the threads and the queue
    outlive even the ping timeout. Readers are not held up (each has its own
    writer), but memory is. So before each broadcast the backlog of every
    recipient is measured; a client past the limit is skipped, closed at the
    Engine.IO level and, for a WebSocket, its TCP connection is shut down,
    which unblocks its threads. The studio's client then reconnects,
    re-subscribes and gets a fresh snapshot.
    """

    def __init__(self, socketio: SocketIO, limit: int = MAX_BACKLOG_BYTES):
        self.server = socketio.server
        self.limit = limit
        self._raw: weakref.WeakValueDictionary[str, socket.socket] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        eio = self.server.eio
        handle = eio.handle_request

        def handle_request(environ, start_response):
            # a WebSocket upgrade names its Engine.IO session; a direct WebSocket connect is noted in on_connect
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if query.get("transport") == ["websocket"] and query.get("sid"):
                session = eio.sockets.get(query["sid"][0])
                if session is not None and not session.upgraded and not session.upgrading:
                    self.note(query["sid"][0], environ)
            return handle(environ, start_response)

        eio.handle_request = handle_request

    def note(self, eio_sid: str, environ: dict) -> None:
        """Remember the TCP socket carrying a client's WebSocket (Werkzeug puts it in the environ)."""
        raw = environ.get("werkzeug.socket")
        if isinstance(raw, socket.socket):
            with self._lock:
                self._raw[eio_sid] = raw

    def backlog(self, eio_sid: str) -> int:
        """Bytes queued for a client and not yet written to its connection."""
        sock = self.server.eio.sockets.get(eio_sid)
        if sock is None or sock.closed:
            return 0
        q = sock.queue
        with q.mutex:
            return sum(len(p.data) for p in q.queue if p is not None and isinstance(p.data, (str, bytes)))

    def lagging(self, rooms: list[str], namespace: str = "/") -> list[str]:
        """Socket.IO sids among the rooms' members that are past the limit; each is cut off."""
        late = []
        for sid, eio_sid in list(self.server.manager.get_participants(namespace, rooms)):
            queued = self.backlog(eio_sid)
            if queued > self.limit:
                late.append(sid)
                self.cut(eio_sid, queued)
        return late

    def cut(self, eio_sid: str, queued: int) -> None:
        """Close a client's session without waiting on it, and abort its TCP connection if known."""
        log.warning("a live client stopped reading (%.1f MB of events waiting); disconnecting it, and it will "
                    "get a fresh snapshot when it reconnects", queued / 1e6)
        sock = self.server.eio.sockets.get(eio_sid)
        if sock is not None:
            # abort: no CLOSE packet (it would only queue behind the rest) and no wait for the queue to drain
            sock.close(wait=False, abort=True)
        with self._lock:
            raw = self._raw.pop(eio_sid, None)
        if raw is not None:
            try:
                raw.shutdown(socket.SHUT_RDWR)  # the blocked writer and reader threads return with an error
            except OSError:
                pass


_guards: "weakref.WeakKeyDictionary[SocketIO, SlowClients]" = weakref.WeakKeyDictionary()


def slow_clients(socketio: SocketIO) -> SlowClients:
    """The SlowClients of an app's SocketIO (made on first use)."""
    guard = _guards.get(socketio)
    if guard is None:
        guard = _guards[socketio] = SlowClients(socketio)
    return guard


def _room(data) -> tuple[str, str, str] | None:
    """('pipeline'|'run', id, room name) from a subscribe payload, or None when malformed."""
    if not isinstance(data, dict):
        return None
    for key, prefix in (("run_id", "run"), ("pipeline_id", "pipeline")):
        value = data.get(key)
        if isinstance(value, str) and value and len(value) < 300 and value.isprintable():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate names no run or pipeline
                return None
            return prefix, value, f"{prefix}:{value}"
    return None


def register_socket_handlers(socketio: SocketIO, state, guard: Guard) -> None:
    """Attach connect/subscribe/unsubscribe to the app's SocketIO."""
    slow = slow_clients(socketio)

    @socketio.on("connect")
    def on_connect(auth=None):
        env = request.environ
        if not guard.origin_ok(env.get("HTTP_ORIGIN"), env.get("HTTP_HOST"), env.get("wsgi.url_scheme", "http")):
            raise ConnectionRefusedError("origin not allowed")
        token = auth.get("token") if isinstance(auth, dict) else None
        if not guard.token_ok(token) and not guard.token_ok(cookie_token(env)):
            raise ConnectionRefusedError("missing or wrong token")
        if parse_qs(env.get("QUERY_STRING", "")).get("transport") == ["websocket"]:
            eio_sid = socketio.server.manager.eio_sid_from_sid(request.sid, "/")
            if eio_sid:
                slow.note(eio_sid, env)
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
