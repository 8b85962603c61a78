"""Web fixtures: an in-process app with an authenticated test client, and a
real server (`serve()` in a subprocess) with real Socket.IO clients."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from server.web import create_app

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-5f2b9c"


# ------------------------------------------------------------ workspace builders

def write(ws: Path, rel: str, text: str) -> Path:
    p = ws / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def shell_pipeline(ws: Path, name: str = "flow", scripts: dict[str, str] | None = None) -> Path:
    """Two shell nodes: `make` writes two JSON records, `copy` copies its input to its output."""
    scripts = scripts or {}
    write(ws, "make.sh", scripts.get("make", 'echo "making records"\nprintf \'[{"n": 1}, {"n": 2}]\' > out.json\n'))
    write(ws, "copy.sh", scripts.get("copy", 'echo "copying"\ncp in.json out.json\n'))
    doc = {
        "version": 1, "name": name,
        "nodes": [
            {"id": "make", "runtime": "shell", "title": "Make", "source": "make.sh",
             "outputs": [{"name": "out", "format": "json"}]},
            {"id": "copy", "runtime": "shell", "source": "copy.sh",
             "inputs": [{"name": "in", "format": "json"}], "outputs": [{"name": "out", "format": "json"}]},
        ],
        "edges": [{"from": "make.out", "to": "copy.in"}],
    }
    path = ws / f"{name}.pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def python_pipeline(ws: Path, code: str, name: str = "py", node_id: str = "talk") -> Path:
    """One Python node running `code` (it must write out.json)."""
    write(ws, f"{node_id}.py", code)
    doc = {"version": 1, "name": name,
           "nodes": [{"id": node_id, "runtime": "python", "source": f"{node_id}.py",
                      "outputs": [{"name": "out", "format": "json"}]}],
           "edges": []}
    path = ws / f"{name}.pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------ in-process app

class AuthClient:
    """Flask's test client with the token header on every request (unless told otherwise)."""

    def __init__(self, app, token: str | None = TOKEN):
        self.app = app
        self.raw = app.test_client()
        self.token = token

    def open(self, method: str, path: str, *, auth: bool = True, headers: dict | None = None, **kw):
        h = dict(headers or {})
        if auth and self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        return self.raw.open(path, method=method, headers=h, **kw)

    def get(self, path, **kw):
        return self.open("GET", path, **kw)

    def post(self, path, **kw):
        return self.open("POST", path, **kw)

    def put(self, path, **kw):
        return self.open("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.open("DELETE", path, **kw)

    def wait_run(self, run_id: str, timeout: float = 30) -> dict:
        """Block until the run is over; return GET /api/runs/<id>."""
        assert self.app.extensions["pipeloom"].runs.wait(run_id, timeout), f"run {run_id} still going"
        r = self.get(f"/api/runs/{run_id}")
        assert r.status_code == 200, r.json
        return r.json


@pytest.fixture
def make_app(workspace):
    """Build apps over the test workspace (watcher off unless asked); all are closed afterwards."""
    apps = []

    def make(**cfg):
        settings = {"workspace": workspace, "token": TOKEN, "watch": False}
        settings.update(cfg)
        app = create_app(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["pipeloom"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return AuthClient(app)


def assert_json_error(resp, status: int) -> dict:
    """A 4xx answer with the API's error shape."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.is_json, resp.get_data(as_text=True)[:200]
    body = resp.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("details"), list)
    return body


# ------------------------------------------------------------ a real server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, workspace: Path, port: int, token: str, proc: subprocess.Popen, log_path: Path):
        self.workspace = workspace
        self.port = port
        self.token = token
        self.proc = proc
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.origin = self.url

    def request(self, method: str, path: str, body=None, headers: dict | None = None, auth: bool = True):
        """A raw HTTP request; returns (status, headers, parsed JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Host": f"127.0.0.1:{self.port}"}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        ctype = resp.getheader("Content-Type", "")
        parsed = json.loads(raw) if "json" in ctype and raw else raw.decode("utf-8", "replace")
        return resp.status, dict(resp.getheaders()), parsed

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def start_server(workspace, tmp_path):
    """Start `serve()` in a subprocess on a free port; stopped with SIGTERM afterwards."""
    servers: list[Server] = []

    def start(token: str = TOKEN) -> Server:
        port = free_port()
        log_path = tmp_path / f"server-{port}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        code = ("import sys; from server.web import serve; "
                "serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), sys.argv[3])")
        with open(log_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", code, str(workspace), str(port), token],
                                    cwd=str(workspace), env=env, stdout=out, stderr=subprocess.STDOUT)
        srv = Server(workspace, port, token, proc, log_path)
        servers.append(srv)
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited early:\n{srv.log()}")
            try:
                status, _, _ = srv.request("GET", "/api/health")
                if status == 200:
                    return srv
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 20 s:\n{srv.log()}")
            time.sleep(0.05)

    yield start
    for srv in servers:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                srv.proc.wait(20)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait(5)
                pytest.fail(f"the server ignored SIGTERM:\n{srv.log()}")


@pytest.fixture
def server(start_server):
    return start_server()


class Live:
    """A real python-socketio client that records every event it receives, with arrival times."""

    def __init__(self):
        import socketio

        self.sio = socketio.Client(reconnection=False)
        self.events: list[tuple[float, str, object]] = []
        self.cond = threading.Condition()

        @self.sio.on("*")
        def _any(event, data=None):
            with self.cond:
                self.events.append((time.monotonic(), event, data))
                self.cond.notify_all()

    def connect(self, srv: Server, *, token: str | None = TOKEN, headers: dict | None = None,
                transports=("websocket",)):
        auth = {"token": token} if token is not None else None
        self.sio.connect(srv.url, auth=auth, headers=headers or {}, transports=list(transports), wait_timeout=10)
        return self

    def call(self, event: str, data, timeout: float = 10):
        return self.sio.call(event, data, timeout=timeout)

    def of(self, event: str, pred=lambda d: True) -> list:
        with self.cond:
            return [d for _, e, d in self.events if e == event and pred(d)]

    def timed(self, event: str, pred=lambda d: True) -> list[tuple[float, object]]:
        with self.cond:
            return [(t, d) for t, e, d in self.events if e == event and pred(d)]

    def wait_for(self, event: str, pred=lambda d: True, timeout: float = 15):
        """The first matching event (already received or arriving within `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for _, e, d in self.events:
                    if e == event and pred(d):
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(e, d) for _, e, d in self.events][-15:]
                    raise AssertionError(f"no `{event}` event within {timeout} s; last events: {got}")
                self.cond.wait(left)

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture
def live():
    """Factory of connected Socket.IO clients; all disconnected afterwards."""
    clients: list[Live] = []

    def make(srv: Server, **kw) -> Live:
        c = Live()
        clients.append(c)
        return c.connect(srv, **kw)

    yield make
    # a WebSocket close takes the client ~3 s against Werkzeug; close them side by side
    closers = [threading.Thread(target=c.close) for c in clients]
    for t in closers:
        t.start()
    for t in closers:
        t.join(15)
