"""The http trigger end to end: a real `pipeloom serve`, real keys from the CLI, a real Python node."""

from __future__ import annotations

import http.client
import json
import re
import signal
import threading
import time

import pytest
import yaml

from tests.conftest import pipeloom_cmd
from tests.web.conftest import start_server, write  # noqa: F401  (start_server is a fixture)

NODE = '''import json, sys, time
data = json.load(open("events.json"))
if isinstance(data, dict):
    time.sleep(data.get("sleep", 0))
    if data.get("fail"):
        print("asked to fail", file=sys.stderr)
        sys.exit(3)
json.dump({"echo": data}, open("out.json", "w"))
'''


def _service(ws, **trigger):
    write(ws, "echo.py", NODE)
    write(ws, "sample.json", '{"sample": true}')
    doc = {"version": 1, "name": "svc", "nodes": [
        {"id": "echo", "runtime": "python", "source": "echo.py",
         "inputs": [{"name": "events", "format": "json", "path": "sample.json"}],
         "outputs": [{"name": "out", "format": "json"}]}], "edges": [],
        "triggers": [{"id": "call", "kind": "http", "to": "echo.events", "result": "echo.out", "timeout": 5,
                      "max_concurrent": 1, "queue": 1, "max_body_mb": 0.01, **trigger},
                     {"id": "other", "kind": "http", "to": "echo.events"}]}
    (ws / "svc.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def make_key(ws, name, *extra) -> str:
    r = pipeloom_cmd("keys", "create", "svc", "--name", name, *extra, cwd=ws)
    assert r.returncode == 0, r.stderr
    return re.search(r"^\s+(plk_\S+)$", r.stdout, re.M).group(1)


def call(srv, key, body=b'{"n": 1}', ctype="application/json", path="/invoke/svc/call", query="",
         headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    h = {"Host": f"127.0.0.1:{srv.port}", "Content-Type": ctype}
    if key:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    conn.request("POST", path + query, body=body, headers=h)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        data = json.loads(raw)
    except ValueError:
        data = raw
    return resp.status, dict(resp.getheaders()), data


def wait_run(srv, run_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = srv.request("GET", f"/api/runs/{run_id}")
        if status == 200 and body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


@pytest.fixture
def svc(workspace, start_server):
    _service(workspace)
    key = make_key(workspace, "k1", "--trigger", "call")
    return start_server(), key


def test_a_call_runs_the_pipeline_and_answers_with_its_result(svc, workspace):
    srv, key = svc
    status, headers, body = call(srv, key, b'{"reading": 42}')
    assert status == 200, body
    assert body == {"echo": {"reading": 42}}
    run = wait_run(srv, headers["X-Pipeloom-Run"])
    assert run["status"] == "succeeded"
    assert run["options"]["origin"]["by"] == "trigger" and run["options"]["origin"]["trigger"] == "call"
    # a run by hand still uses the sample file
    r = pipeloom_cmd("run", "svc.pipeline.yaml", "--force", "--json", cwd=workspace)
    out = json.loads(r.stdout)["nodes"]["echo"]["outputs"]["out"]
    assert json.load(open(out)) == {"echo": {"sample": True}}


def test_wait_false_answers_202_at_once(svc):
    srv, key = svc
    status, headers, body = call(srv, key, b'{"sleep": 0.5}', query="?wait=false")
    assert status == 202 and body["run_id"] == headers["X-Pipeloom-Run"]
    assert wait_run(srv, body["run_id"])["status"] == "succeeded"


def test_a_failing_run_is_422_with_the_node_and_the_run(svc):
    srv, key = svc
    status, headers, body = call(srv, key, b'{"fail": true}')
    assert status == 422, body
    assert body["node"] == "echo" and body["run_id"] == headers["X-Pipeloom-Run"]
    assert "exit" in body["error"] or "code 3" in body["error"], body
    assert body["error"].endswith(": asked to fail"), body  # the last line the step wrote to stderr


def test_past_the_timeout_it_is_504_and_the_run_goes_on(svc):
    srv, key = svc
    status, headers, body = call(srv, key, b'{"sleep": 7}')
    assert status == 504, body
    assert body["run_id"] == headers["X-Pipeloom-Run"]
    assert wait_run(srv, body["run_id"], timeout=30)["status"] == "succeeded"


def test_past_the_queue_it_is_429_with_retry_after(svc):
    srv, key = svc
    first = call(srv, key, b'{"sleep": 3}', query="?wait=false")
    assert first[0] == 202
    time.sleep(0.5)
    queued = {}
    t = threading.Thread(target=lambda: queued.setdefault("r", call(srv, key, b'{"n": 2}')))
    t.start()
    time.sleep(0.5)
    status, headers, body = call(srv, key, b'{"n": 3}')
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1
    t.join(30)
    assert queued["r"][0] == 200 and queued["r"][2] == {"echo": {"n": 2}}


def test_a_body_over_the_limit_is_413(svc):
    srv, key = svc
    status, _, body = call(srv, key, json.dumps({"pad": "x" * 20_000}).encode())
    assert status == 413 and "max_body_mb" in body["error"]


def test_bad_bodies_are_refused_with_the_reason(svc):
    srv, key = svc
    status, _, body = call(srv, key, b"{nope")
    assert status == 422 and "not valid JSON" in body["error"]
    assert body["error"].lower().count("not valid json") == 1, body
    status, _, body = call(srv, key, b"<x/>", ctype="application/xml")
    assert status == 415


def test_keys_open_only_what_they_name(svc, workspace):
    srv, key = svc
    assert call(srv, None)[0] == 401
    assert call(srv, "plk_not-a-key")[0] == 401
    status, _, body = call(srv, key, path="/invoke/svc/other")
    assert status == 403 and "opens svc/call" in body["error"]
    # an invoke key is no studio token
    status, _, _ = srv.request("GET", "/api/pipelines", auth=False, headers={"Authorization": f"Bearer {key}"})
    assert status == 401
    # the studio token may invoke
    assert call(srv, srv.token)[0] == 200
    # a revoked key is refused at once
    r = pipeloom_cmd("keys", "revoke", "k1", cwd=workspace)
    assert r.returncode == 0, r.stderr
    status, _, body = call(srv, key)
    assert status == 401 and "revoked" in body["error"]
    listed = json.loads(pipeloom_cmd("keys", "list", "--json", cwd=workspace).stdout)
    assert listed[0]["name"] == "k1" and listed[0]["revoked_at"] and "key_hash" not in listed[0]
    assert key not in (workspace / ".pipeloom" / "pipeloom.db").read_bytes().decode("latin-1")


def test_a_paused_trigger_refuses_calls_until_resumed(svc, workspace):
    srv, key = svc
    assert pipeloom_cmd("triggers", "pause", "svc", "call", cwd=workspace).returncode == 0
    deadline = time.monotonic() + 5
    while call(srv, key)[0] != 409 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert call(srv, key)[0] == 409
    status, _, body = srv.request("GET", "/api/triggers?pipeline=svc")
    assert {t["trigger_id"]: t["state"] for t in body["triggers"]}["call"] == "paused"
    status, _, body = srv.request("POST", "/api/pipelines/svc/triggers/call/resume", body={})
    assert status == 200 and body["state"] == "running"
    assert call(srv, key)[0] == 200


def test_the_panel_counts_survive_a_restart(workspace, start_server):
    _service(workspace)
    key = make_key(workspace, "k1", "--trigger", "call")
    srv = start_server()
    assert call(srv, key)[0] == 200
    assert call(srv, key, b'{"fail": true}')[0] == 422
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(20)
    srv = start_server()
    status, _, body = srv.request("GET", "/api/triggers?pipeline=svc")
    (t,) = [t for t in body["triggers"] if t["trigger_id"] == "call"]
    assert (t["runs_started"], t["failures"]) == (2, 1), t
    assert t["last_run_id"] and t["last_batch"]["run_id"] == t["last_run_id"]


def test_metrics_count_triggered_runs_and_their_latency(svc):
    srv, key = svc
    assert call(srv, key)[0] == 200
    assert call(srv, key, b'{"fail": true}')[0] == 422
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/metrics", headers={"Host": f"127.0.0.1:{srv.port}"})
    assert conn.getresponse().status == 401  # behind the same token as the studio
    conn.close()
    status, headers, text = srv.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'pipeloom_runs_total{origin="trigger:call",pipeline="svc",status="succeeded"} 1.0' in text
    assert 'pipeloom_runs_total{origin="trigger:call",pipeline="svc",status="failed"} 1.0' in text
    assert 'pipeloom_event_to_result_seconds_count{pipeline="svc",trigger="call"} 1.0' in text
    assert 'pipeloom_node_duration_seconds_count{node="echo",pipeline="svc",status="succeeded"}' in text


def test_no_studio_serves_only_invoke_metrics_and_triggers(workspace, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.web.conftest import free_port

    _service(workspace)
    key = make_key(workspace, "k2")
    port, token = free_port(), "a-strong-token-for-tests-5f2b9c"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-studio", "--port", str(port),
                             "--token", token, "--workspace", str(workspace)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = ""
        while "Triggers:" not in banner:
            line = proc.stdout.readline()
            assert line, f"the service exited early:\n{banner}"
            banner += line
        assert "(no studio)" in banner and f"/invoke/<pipeline>/<trigger>" in banner
        assert "svc: call (http, on), other (http, on)" in proc.stdout.readline()

        import socket

        deadline = time.monotonic() + 20
        while True:  # the banner comes just before the server listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the service never listened"
                time.sleep(0.05)

        class Srv:
            pass

        srv = Srv()
        srv.port = port
        status, _, body = call(srv, key)
        assert status == 200 and body == {"echo": {"n": 1}}
        for path in ("/", "/api/pipelines", "/pipelines/svc"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {token}"})
            assert conn.getresponse().status == 404, path
            conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
