"""Hostile input the server must refuse with a 4xx JSON answer, never a 500:
deep JSON, NUL bytes, lone surrogates, absurd numbers, over-long names, links
leading out of the workspace, the wrong content type, an https Origin, weak tokens."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys

import pytest

from server.engine.errors import UnsafePathError, UsageError
from server.engine.paths import safe_path
from server.web import serve
from server.web import security
from server.web.security import Guard
from tests.conftest import REPO
from tests.web.conftest import TOKEN, assert_json_error, shell_pipeline
from tests.web.routes import routes

DEEP = "[" * 100_000 + "]" * 100_000
LONG = "n" * 4000
BAD_NAMES = {"nul": "a\x00b", "surrogate": "a\ud800b", "long": LONG}


def _doc(client, pid="flow"):
    r = client.get(f"/api/pipelines/{pid}")
    assert r.status_code == 200, r.json
    return r.json


# ------------------------------------------------------------ the shared guard

@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_safe_path_refuses_names_the_file_system_cannot_take(workspace, name):
    with pytest.raises(UnsafePathError) as info:
        safe_path(workspace, f"dir/{BAD_NAMES[name]}.txt", what="source of node `x`")
    assert "source of node `x`" in str(info.value)
    assert "\x00" not in str(info.value) and "\ud800" not in str(info.value)
    # the message must print anywhere
    str(info.value).encode("utf-8")


def test_safe_path_still_accepts_ordinary_names(workspace):
    assert safe_path(workspace, "a/b.txt") == workspace.resolve() / "a" / "b.txt"
    assert safe_path(workspace, "x" * 255) == workspace.resolve() / ("x" * 255)


# ------------------------------------------------------------ bodies

def test_deeply_nested_json_is_400_on_every_json_route(workspace, client):
    shell_pipeline(workspace)
    writes = [r for r in routes(client.app) if r.writes and r.is_api]
    assert len(writes) >= 8
    for route in writes:
        for body in (DEEP, '{"document": ' + "[" * 500 + "]" * 500 + "}"):
            r = client.open(route.method, route.url, data=body, content_type="application/json")
            err = assert_json_error(r, 400)
            assert "nested" in err["error"], (route, err)


def test_lone_surrogates_in_a_body_are_400(workspace, client):
    shell_pipeline(workspace)
    body = '{"path": "a\\ud800.pipeline.yaml"}'
    err = assert_json_error(client.post("/api/pipelines", data=body, content_type="application/json"), 400)
    assert "surrogate" in err["error"]
    doc = _doc(client)
    doc["document"]["name"] = "x\ud800"
    r = client.put("/api/pipelines/flow", json={"document": doc["document"], "version": doc["version"]})
    assert_json_error(r, 400)
    assert not any(p.name.startswith("a") for p in workspace.iterdir())


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_names_in_a_new_pipeline_path_are_4xx(workspace, client, name):
    for path in (f"{BAD_NAMES[name]}.pipeline.yaml", f"{BAD_NAMES[name]}/x.pipeline.yaml"):
        r = client.post("/api/pipelines", json={"path": path})
        assert 400 <= r.status_code < 500, r.get_data(as_text=True)[:300]
        assert_json_error(r, r.status_code)
    assert sorted(p.name for p in workspace.iterdir() if p.name != ".pipeloom") == []


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_names_in_a_node_source_are_4xx(workspace, client, name):
    shell_pipeline(workspace)
    r = client.post("/api/pipelines/flow/nodes", json={"id": "x", "runtime": "shell", "source": BAD_NAMES[name]})
    assert_json_error(r, 400)


@pytest.mark.parametrize("name", list(BAD_NAMES))
@pytest.mark.parametrize("field", ["input path", "source"])
def test_bad_names_in_a_document_are_422_naming_the_node(workspace, client, name, field):
    path = shell_pipeline(workspace)
    before = path.read_text()
    described = _doc(client)
    doc = copy.deepcopy(described["document"])
    if field == "source":
        doc["nodes"][0]["source"] = BAD_NAMES[name]
        where = "node `make`"
    else:
        doc["nodes"][1]["inputs"][0]["path"] = BAD_NAMES[name]
        doc["edges"] = []
        where = "node `copy`"
    for r in (client.post("/api/pipelines/flow/validate", json={"document": doc}),
              client.put("/api/pipelines/flow", json={"document": doc, "version": described["version"]})):
        if name == "surrogate":  # no JSON body may carry one (see test_lone_surrogates_in_a_body_are_400)
            assert "surrogate" in assert_json_error(r, 400)["error"]
            continue
        err = assert_json_error(r, 422)
        assert any(d["where"].startswith(where) for d in err["details"]), err
    assert path.read_text() == before


@pytest.mark.parametrize("escaped", ["\\0", "\\ud800", "n" * 300])
def test_bad_names_in_a_file_on_disk_are_problems_not_crashes(workspace, client, escaped):
    path = shell_pipeline(workspace)
    text = path.read_text().replace("source: make.sh", f'source: "make{escaped}.sh"')
    assert text != path.read_text()
    path.write_text(text)
    body = _doc(client)
    assert any("make" in p["where"] for p in body["problems"]), body["problems"]
    assert_json_error(client.get("/api/pipelines/flow/nodes/make/source"), 400)
    proc = subprocess.run([sys.executable, "-m", "server.cli", "validate", str(path)], cwd=workspace,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "node `make`" in proc.stderr


# ------------------------------------------------------------ numbers

@pytest.mark.parametrize("number", ["99999999999999999999999", str(2**63), "1" + "0" * 400])
def test_absurd_version_numbers_are_404(workspace, client, number):
    shell_pipeline(workspace)
    _doc(client)
    assert_json_error(client.get(f"/api/pipelines/flow/versions/{number}"), 404)
    assert_json_error(client.post(f"/api/pipelines/flow/versions/{number}/restore", json={}), 404)
    assert client.get("/api/pipelines/flow/versions/1").status_code == 200


# ------------------------------------------------------------ content type

@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                   None])
def test_json_routes_require_application_json(workspace, client, ctype):
    shell_pipeline(workspace)
    writes = [r for r in routes(client.app) if r.writes and r.is_api]
    for route in writes:
        headers = {"Content-Type": ctype} if ctype else {}
        r = client.open(route.method, route.url, data='{"path": "made.pipeline.yaml", "enabled": true}',
                        headers=headers)
        err = assert_json_error(r, 415)
        assert "application/json" in err["error"], route
    assert not (workspace / "made.pipeline.yaml").exists()
    ok = client.post("/api/pipelines", data='{"path": "made.pipeline.yaml"}',
                     content_type="application/json; charset=utf-8")
    assert ok.status_code == 201, ok.json


def test_empty_json_body_still_counts_as_an_empty_object(workspace, client):
    shell_pipeline(workspace)
    r = client.open("POST", "/api/pipelines/flow/runs", data="", content_type="application/json")
    assert r.status_code == 202, r.json
    client.wait_run(r.json["run_id"])


# ------------------------------------------------------------ a pipeline file linking out

@pytest.fixture
def outside_pipeline(tmp_path):
    p = tmp_path / "elsewhere" / "secret.pipeline.yaml"
    p.parent.mkdir()
    p.write_text("version: 1\nname: top secret pipeline\nnodes: []\nedges: []\n")
    return p


def test_a_pipeline_file_linking_out_is_listed_as_refused(workspace, client, outside_pipeline):
    shell_pipeline(workspace)
    (workspace / "sub").mkdir()
    os.symlink(outside_pipeline, workspace / "sub" / "leak.pipeline.yaml")
    r = client.get("/api/pipelines")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    items = {p["id"]: p for p in r.json}
    assert set(items) == {"flow", "sub.leak"}
    leak = items["sub.leak"]
    assert leak["refused"] is True and leak["broken"] is True
    assert leak["error"] == "links outside the workspace"
    assert leak["path"] == "sub/leak.pipeline.yaml"
    assert "top secret" not in r.get_data(as_text=True)
    assert items["flow"]["refused"] is False and items["flow"]["broken"] is False
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "links outside the workspace" in html and "top secret" not in html
    assert 'href="/pipelines/sub.leak"' not in html and 'href="/pipelines/flow"' in html
    assert client.get("/pipelines/flow").status_code == 200
    assert client.get("/pipelines/sub.leak").status_code == 403
    for url in ("/api/pipelines/sub.leak", "/api/pipelines/sub.leak/versions",
                "/api/pipelines/sub.leak/nodes/x/source"):
        err = assert_json_error(client.get(url), 403)
        assert "outside the workspace" in err["error"]
    assert _doc(client)["name"] == "flow"


def test_the_watcher_ignores_a_pipeline_file_linking_out(workspace, client, outside_pipeline):
    shell_pipeline(workspace)
    link = workspace / "leak.pipeline.yaml"
    os.symlink(outside_pipeline, link)
    state = client.app.extensions["pipeloom"]
    state.files_changed({link, workspace / "flow.pipeline.yaml"})  # must not raise
    assert state.store.latest_version("leak") is None
    assert state.store.latest_version("flow") is not None


# ------------------------------------------------------------ Origin scheme

def test_https_origin_is_refused_by_a_plain_http_server(workspace, client):
    shell_pipeline(workspace)
    guard = Guard(TOKEN, ["127.0.0.1"])
    assert guard.origin_ok("http://127.0.0.1:5000", "127.0.0.1:5000", "http")
    assert not guard.origin_ok("https://127.0.0.1:5000", "127.0.0.1:5000", "http")
    assert not guard.origin_ok("https://localhost:80", "localhost", "http")
    assert guard.origin_ok("https://localhost", "localhost", "https")
    assert not guard.origin_ok("http://localhost:443", "localhost", "https")
    r = client.put("/api/pipelines/flow/autorun", json={"enabled": True},
                   headers={"Host": "127.0.0.1:5000", "Origin": "https://127.0.0.1:5000"})
    assert_json_error(r, 403)
    assert guard.engineio_origin_check("https://127.0.0.1:5000",
                                       {"HTTP_HOST": "127.0.0.1:5000", "wsgi.url_scheme": "http"}) is False
    # an https origin named explicitly (a TLS proxy in front) is still accepted
    proxied = Guard(TOKEN, ["studio.lan"], ["https://studio.lan"])
    assert proxied.origin_ok("https://studio.lan", "studio.lan", "http")


# ------------------------------------------------------------ token strength

@pytest.fixture
def held_port():
    """A port something already listens on: were the token accepted, the server would stop at
    the port check instead of listening on a non-loopback address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("token", ["a", "short-token", "aaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab",
                                   "1111222211112222"])
def test_a_weak_token_is_refused_on_a_non_loopback_host(workspace, token, held_port):
    assert security.token_problem(token) is not None
    for host in ("0.0.0.0", "192.168.1.20"):
        with pytest.raises(UsageError, match="weak --token"):
            serve(workspace, host, held_port, token)
    assert not (workspace / ".pipeloom").exists()


@pytest.mark.parametrize("token", ["Jx3vQ9-kLm2Zp8Rt", "0f8e2a9c41b7d3e6", "correct-horse-battery-staple"])
def test_a_strong_token_passes_the_rule(token):
    assert security.token_problem(token) is None


def test_the_cli_refuses_a_weak_token_with_exit_2(workspace, held_port):
    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port",
                           str(held_port), "--token", "a"], cwd=workspace, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "weak --token" in proc.stderr and "16" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------ files the disk refuses to create

@pytest.mark.parametrize("source", ["make.sh/x.sh", "make.sh/deeper/x.sh", ".", "sub"])
def test_a_new_node_file_the_disk_refuses_is_4xx(workspace, client, source):
    shell_pipeline(workspace)
    (workspace / "sub").mkdir()
    r = client.post("/api/pipelines/flow/nodes", json={"id": "x", "runtime": "shell", "source": source})
    err = assert_json_error(r, r.status_code)
    assert 400 <= r.status_code < 500 and "`" in err["error"]
    assert (workspace / "make.sh").is_file()


def test_a_new_pipeline_the_disk_refuses_is_4xx(workspace, client):
    shell_pipeline(workspace)
    for path in ("make.sh/x.pipeline.yaml", "make.sh/a/b.pipeline.yaml"):
        r = client.post("/api/pipelines", json={"path": path})
        err = assert_json_error(r, r.status_code)
        assert 400 <= r.status_code < 500 and "make.sh" in err["error"], err


def test_a_port_file_name_no_file_system_takes_is_a_problem(workspace, client):
    shell_pipeline(workspace)
    body = client.get("/api/pipelines/flow").json
    doc = body["document"]
    doc["nodes"][0]["outputs"][0]["file"] = "out\x00.json"
    r = client.put("/api/pipelines/flow", json={"document": doc, "version": body["version"]})
    body = assert_json_error(r, 422)
    assert any("NUL byte" in d["message"] and "output `out`" in d["where"] for d in body["details"]), body


def test_a_subscribe_with_a_lone_surrogate_is_refused_quietly(server, live, caplog):
    c = live(server)
    answer = c.call("subscribe", {"run_id": "r\ud800"})
    assert answer["ok"] is False
    assert "run_id" in answer["error"]
