"""R4: hostile requests to a real served studio are refused; legitimate ones are accepted.

Against `serve()` in a subprocess, over raw HTTP and over Socket.IO (python-socketio):
a foreign Origin, an https Origin on this plain-http server, a DNS-rebinding Host,
a missing or wrong token, form content types (text/plain, urlencoded, multipart)
and a cross-site fetch. A refused write must also leave no trace (no file created).
"""

from __future__ import annotations

import http.client
import json
import threading

import pytest
import socketio
import websocket

from tests.web.conftest import TOKEN, server, shell_pipeline, start_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.reliability

FORM_TYPES = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
              "multipart/form-data; boundary=----x"]


def raw(srv, method: str, path: str, *, host: str | None = None, headers: dict | None = None,
        body: bytes | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    h = {"Host": host if host is not None else f"127.0.0.1:{srv.port}"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, data


def _refused_json(status: int, text: str) -> bool:
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return 400 <= status < 500 and isinstance(body.get("error"), str) and isinstance(body.get("details"), list)


def socket_connects(srv, *, token=TOKEN, headers=None, transport="websocket") -> tuple[bool, object]:
    """(connected, client) for one python-socketio connection attempt."""
    client = socketio.Client(reconnection=False)
    try:
        client.connect(srv.url, auth={"token": token} if token is not None else None, headers=headers or {},
                       transports=[transport], wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        return False, client
    return client.connected, client


def test_r4_hostile_requests_are_refused_and_legitimate_ones_accepted(workspace, server, figure):
    srv = server
    shell_pipeline(workspace)
    me = f"http://127.0.0.1:{srv.port}"
    good_auth = {"Authorization": f"Bearer {TOKEN}"}
    json_write = {**good_auth, "Content-Type": "application/json"}
    foreign = ["http://evil.example", f"http://evil.example:{srv.port}", "http://localhost:1", "null",
               f"https://127.0.0.1:{srv.port}", f"https://localhost:{srv.port}", f"http://127.0.0.1:{srv.port}.evil.io",
               f"ws://127.0.0.1:{srv.port}", "file://", f"http://[::1]:{srv.port + 1}"]
    rebinding = ["evil.example", f"evil.example:{srv.port}", f"127.0.0.1.nip.io:{srv.port}",
                 f"localhost.evil.example:{srv.port}", f"127.0.0.1:{srv.port}@evil.example", "", "0.0.0.0",
                 f"[::ffff:7f00:1]:{srv.port}x"]
    hostile: list[tuple[str, bool]] = []
    legit: list[tuple[str, bool]] = []
    made = iter(range(10_000))

    def write_refused(label: str, headers: dict, *, content_type_ok=True, host=None) -> None:
        name = f"r4-{next(made)}.pipeline.yaml"
        body = json.dumps({"path": name}).encode()
        status, text = raw(srv, "POST", "/api/pipelines", host=host, headers=headers, body=body)
        hostile.append((f"POST {label}: {status}", _refused_json(status, text) and not (workspace / name).exists()))

    # ---------------------------------------------------------------- HTTP
    for origin in foreign:
        write_refused(f"Origin {origin}", {**json_write, "Origin": origin})
        status, text = raw(srv, "PUT", "/api/pipelines/flow/autorun", headers={**json_write, "Origin": origin},
                           body=b'{"enabled": true}')
        hostile.append((f"PUT autorun Origin {origin}: {status}", _refused_json(status, text)))
    for host in rebinding:
        for method, path in (("GET", "/api/pipelines"), ("GET", "/"), ("GET", "/static/js/api.js"),
                             ("GET", "/socket.io/?EIO=4&transport=polling")):
            status, text = raw(srv, method, path, host=host, headers=good_auth)
            hostile.append((f"{method} {path} Host {host!r}: {status}", _refused_json(status, text)))
        write_refused(f"Host {host!r}", {**json_write, "Origin": me}, host=host)
    for label, headers in (("no token", {}), ("wrong token", {"Authorization": "Bearer wrong"}),
                           ("token prefix", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
                           ("token suffix", {"Authorization": f"Bearer {TOKEN}x"}),
                           ("basic auth", {"Authorization": f"Basic {TOKEN}"}),
                           ("wrong cookie", {"Cookie": "pipeloom_token=wrong"})):
        for path in ("/api/pipelines", "/api/pipelines/flow", "/api/runs", "/api/health"):
            status, text = raw(srv, "GET", path, headers=headers)
            hostile.append((f"GET {path} {label}: {status}", _refused_json(status, text)))
        for path in ("/", "/pipelines/flow", "/static/js/api.js", f"/api/health?token={TOKEN}"):
            status, text = raw(srv, "GET", path, headers=headers)
            hostile.append((f"GET {path} {label}: {status}", status in (401, 403)))
        write_refused(label, {**headers, "Content-Type": "application/json", "Origin": me})
        status, text = raw(srv, "POST", "/api/pipelines/flow/runs",
                           headers={**headers, "Content-Type": "application/json"}, body=b"{}")
        hostile.append((f"POST runs {label}: {status}", _refused_json(status, text)))
    for ctype in FORM_TYPES:
        for origin in (None, me):
            h = {**good_auth, "Content-Type": ctype, **({"Origin": origin} if origin else {})}
            write_refused(f"{ctype} (Origin {origin})", h)
            status, text = raw(srv, "POST", "/api/pipelines/flow/runs", headers=h, body=b"{}")
            hostile.append((f"POST runs {ctype}: {status}", _refused_json(status, text)))
    write_refused("Sec-Fetch-Site cross-site", {**json_write, "Origin": me, "Sec-Fetch-Site": "cross-site"})
    # the same cross-site fetch, with the browser's cookie rather than the header
    write_refused("cookie, cross-site", {"Cookie": f"pipeloom_token={TOKEN}", "Content-Type": "text/plain",
                                         "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})

    # ---------------------------------------------------------------- Socket.IO
    to_close = []
    for transport in ("websocket", "polling"):
        for label, kw in (("no token", {"token": None}), ("wrong token", {"token": "wrong"}),
                          ("empty token", {"token": ""}), ("token suffix", {"token": TOKEN + "x"}),
                          ("wrong cookie", {"token": None, "headers": {"Cookie": "pipeloom_token=wrong"}})):
            ok, client = socket_connects(srv, transport=transport, **kw)
            hostile.append((f"Socket.IO {transport} {label}: {'connected' if ok else 'refused'}", not ok))
            if ok:
                to_close.append(client)
    for origin in foreign:  # python-socketio's WebSocket sends its own Origin, so polling carries these
        ok, client = socket_connects(srv, transport="polling", headers={"Origin": origin})
        hostile.append((f"Socket.IO polling Origin {origin}: {'connected' if ok else 'refused'}", not ok))
        if ok:
            to_close.append(client)
    ws_url = f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket"
    for origin, host in [(o, None) for o in foreign] + [(me, h) for h in rebinding if h]:
        try:
            conn = websocket.create_connection(ws_url, origin=origin, host=host, timeout=5)
        except websocket.WebSocketBadStatusException as exc:
            hostile.append((f"WebSocket Origin {origin} Host {host}: {exc.status_code}", 400 <= exc.status_code < 500))
        else:
            conn.close()
            hostile.append((f"WebSocket Origin {origin} Host {host}: connected", False))

    # ---------------------------------------------------------------- legitimate
    for path in ("/api/health", "/api/pipelines", "/api/pipelines/flow", "/api/runs", "/api/runtimes",
                 "/", "/pipelines/flow", "/static/js/api.js", "/api/pygments.css"):
        for label, headers in (("bearer", good_auth), ("cookie", {"Cookie": f"pipeloom_token={TOKEN}"}),
                               ("bearer, same Origin", {**good_auth, "Origin": me})):
            status, _ = raw(srv, "GET", path, headers=headers)
            legit.append((f"GET {path} {label}: {status}", status == 200))
        status, _ = raw(srv, "GET", path, host=f"localhost:{srv.port}", headers=good_auth)
        legit.append((f"GET {path} Host localhost: {status}", status == 200))
    status, text = raw(srv, "GET", f"/?token={TOKEN}")
    legit.append((f"GET /?token= (the printed link): {status}", status == 302))
    for label, headers in (("same Origin", {"Origin": me}), ("no Origin (a script)", {}),
                           ("charset", {"Origin": me, "Content-Type": "application/json; charset=utf-8"}),
                           ("localhost Origin", {"Origin": f"http://localhost:{srv.port}"})):
        h = {**json_write, **headers}
        host = f"localhost:{srv.port}" if "localhost" in headers.get("Origin", "") else None
        name = f"legit-{next(made)}.pipeline.yaml"
        status, _ = raw(srv, "POST", "/api/pipelines", host=host, headers=h, body=json.dumps({"path": name}).encode())
        legit.append((f"POST /api/pipelines {label}: {status}", status == 201 and (workspace / name).exists()))
        status, _ = raw(srv, "PUT", "/api/pipelines/flow/autorun", host=host, headers=h, body=b'{"enabled": false}')
        legit.append((f"PUT autorun {label}: {status}", status == 200))
    for transport, label, kw in (("websocket", "token (its own same Origin)", {}), ("polling", "token", {}),
                                 ("polling", "token, same Origin", {"headers": {"Origin": me}}),
                                 ("polling", "cookie", {"token": None,
                                                        "headers": {"Cookie": f"pipeloom_token={TOKEN}"}})):
        ok, client = socket_connects(srv, transport=transport, **kw)
        subscribed = False
        if ok:
            to_close.append(client)
            subscribed = (client.call("subscribe", {"pipeline_id": "flow"}, timeout=10) or {}).get("ok") is True
        legit.append((f"Socket.IO {transport} {label}: connected={ok} subscribed={subscribed}", ok and subscribed))

    for origin, host in ((me, None), (f"http://localhost:{srv.port}", f"localhost:{srv.port}")):
        conn = websocket.create_connection(ws_url, origin=origin, host=host, timeout=5)
        try:
            legit.append((f"WebSocket Origin {origin}: open", conn.recv().startswith("0{")))
        finally:
            conn.close()

    closers = [threading.Thread(target=c.disconnect) for c in to_close]
    for t in closers:
        t.start()
    for t in closers:
        t.join(15)

    refused = sum(ok for _, ok in hostile)
    accepted = sum(ok for _, ok in legit)
    figure("R4", "hostile requests refused (%)", round(100.0 * refused / len(hostile), 2), target="100",
           ok=refused == len(hostile), detail=f"{refused}/{len(hostile)} over HTTP and Socket.IO, a served app")
    figure("R4", "legitimate requests accepted (%)", round(100.0 * accepted / len(legit), 2), target="100",
           ok=accepted == len(legit), detail=f"{accepted}/{len(legit)}")
    assert len(hostile) >= 150 and len(legit) >= 40
    failures = [f"accepted: {what}" for what, ok in hostile if not ok]
    failures += [f"refused: {what}" for what, ok in legit if not ok]
    assert not failures, "\n".join(failures)
