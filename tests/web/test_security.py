"""A test for each rule of "safe by default": token, loopback, Host, Origin, paths."""

from __future__ import annotations

import os

import pytest
import yaml

from server.engine.errors import UsageError
from server.web import serve
from server.web.security import is_loopback
from tests.web.conftest import TOKEN, assert_json_error, free_port, shell_pipeline


# ------------------------------------------------------------ token (HTTP)

def test_token_required_on_api_static_and_pages(workspace, client):
    shell_pipeline(workspace)
    for path in ("/api/pipelines", "/api/pipelines/flow", "/api/health", "/api/pygments.css"):
        r = client.get(path, auth=False)
        assert_json_error(r, 401)
        r = client.get(path, auth=False, headers={"Authorization": "Bearer wrong"})
        assert_json_error(r, 401)
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert_json_error(client.post("/api/pipelines", auth=False, json={"path": "x.pipeline.yaml"}), 401)
    assert not (workspace / "x.pipeline.yaml").exists()
    # static files and pages need it too; the page answer tells a person what to do
    assert client.get("/static/js/api.js", auth=False).status_code == 401
    page = client.get("/", auth=False)
    assert page.status_code == 401 and "pipeloom serve" in page.get_data(as_text=True)
    assert client.get("/static/js/api.js").status_code == 200


def test_cookie_is_accepted(client):
    client.raw.set_cookie("pipeloom_token", TOKEN)
    assert client.get("/api/health", auth=False).status_code == 200
    client.raw.set_cookie("pipeloom_token", "wrong")
    assert_json_error(client.get("/api/health", auth=False), 401)


def test_query_token_sets_cookie_and_redirects_to_clean_url(client):
    r = client.get(f"/pipelines/flow?token={TOKEN}&x=1", auth=False)
    assert r.status_code == 302
    assert r.headers["Location"] == "/pipelines/flow?x=1"
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"pipeloom_token={TOKEN}")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    # the browser now carries the cookie
    assert client.get("/api/health", auth=False).status_code == 200


def test_wrong_query_token_and_query_token_on_api_are_refused(client):
    r = client.get("/?token=wrong", auth=False)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    assert_json_error(client.get(f"/api/health?token={TOKEN}", auth=False), 401)


# ------------------------------------------------------------ loopback

def test_non_loopback_host_needs_a_token(workspace):
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.com"):
        with pytest.raises(UsageError, match="without --token"):
            serve(workspace, host, free_port(), None)
    assert not (workspace / ".pipeloom").exists()  # refused before anything started


def test_is_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example.com"))


# ------------------------------------------------------------ Host allowlist

@pytest.mark.parametrize("host", ["evil.example", "evil.example:5000", "localhost.evil.example",
                                  "127.0.0.1.nip.io", "", "localhost:abc"])
def test_bad_host_is_refused_on_http_and_socketio(client, host):
    assert_json_error(client.get("/api/health", headers={"Host": host}), 400)
    assert_json_error(client.get("/socket.io/?EIO=4&transport=polling", auth=False, headers={"Host": host}), 400)


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8080", "[::1]:5000"])
def test_loopback_hosts_are_allowed(client, host):
    assert client.get("/api/health", headers={"Host": host}).status_code == 200
    r = client.get("/socket.io/?EIO=4&transport=polling", auth=False, headers={"Host": host})
    assert r.status_code == 200 and r.get_data(as_text=True).startswith("0{")


def test_extra_allowed_host(make_app):
    from tests.web.conftest import AuthClient

    c = AuthClient(make_app(allowed_hosts=["studio.internal"]))
    assert c.get("/api/health", headers={"Host": "studio.internal:5000"}).status_code == 200
    assert_json_error(c.get("/api/health", headers={"Host": "other.internal"}), 400)


def test_bad_host_on_real_server(server):
    for path in ("/api/health", "/socket.io/?EIO=4&transport=polling"):
        status, _, body = server.request("GET", path, headers={"Host": f"attacker.example:{server.port}"})
        assert status == 400 and "not allowed" in body["error"]


# ------------------------------------------------------------ Origin

def test_origin_checked_on_state_changing_requests(workspace, client):
    shell_pipeline(workspace)
    for origin in ("http://evil.example", "http://localhost:9999", "null", "https://localhost"):
        r = client.post("/api/pipelines", json={"path": "a.pipeline.yaml"}, headers={"Origin": origin})
        assert_json_error(r, 403)
        r = client.put("/api/pipelines/flow/autorun", json={"enabled": True}, headers={"Origin": origin})
        assert_json_error(r, 403)
    assert not (workspace / "a.pipeline.yaml").exists()
    r = client.post("/api/pipelines", json={"path": "a.pipeline.yaml"},
                    headers={"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"})
    assert_json_error(r, 403)
    ok = client.post("/api/pipelines", json={"path": "a.pipeline.yaml"}, headers={"Origin": "http://localhost"})
    assert ok.status_code == 201
    # a read is not state-changing: the token alone decides
    assert client.get("/api/pipelines", headers={"Origin": "http://evil.example"}).status_code == 200


def test_same_origin_with_port(client):
    h = {"Host": "127.0.0.1:5123"}
    assert client.put("/api/pipelines/x/autorun", json={"enabled": True},
                      headers=h | {"Origin": "http://127.0.0.1:5123"}).status_code == 404  # passed the check
    assert_json_error(client.put("/api/pipelines/x/autorun", json={"enabled": True},
                                 headers=h | {"Origin": "http://127.0.0.1:5124"}), 403)
    assert_json_error(client.put("/api/pipelines/x/autorun", json={"enabled": True},
                                 headers=h | {"Origin": "http://localhost:5123"}), 403)


# ------------------------------------------------------------ paths

@pytest.fixture
def outside(tmp_path):
    """A file outside the workspace, with something private in it."""
    p = tmp_path / "outside" / "secret.txt"
    p.parent.mkdir()
    p.write_text("top secret\n")
    return p


def test_source_route_refuses_escapes(workspace, client, outside):
    path = shell_pipeline(workspace)
    doc = yaml.safe_load(path.read_text())
    doc["nodes"][0]["source"] = "../outside/secret.txt"
    path.write_text(yaml.safe_dump(doc))
    body = assert_json_error(client.get("/api/pipelines/flow/nodes/make/source"), 403)
    assert "outside the workspace" in body["error"]
    # a symlink inside the workspace that leads out
    os.symlink(outside, workspace / "link.sh")
    doc["nodes"][0]["source"] = "link.sh"
    path.write_text(yaml.safe_dump(doc))
    body = assert_json_error(client.get("/api/pipelines/flow/nodes/make/source"), 403)
    assert "secret" not in str(body.get("code", ""))


def test_saved_documents_cannot_point_outside(workspace, client, outside):
    path = shell_pipeline(workspace)
    before = path.read_text()
    os.symlink(outside, workspace / "link.sh")
    body = client.get("/api/pipelines/flow").json
    for source in ("../outside/secret.txt", str(outside), "link.sh"):
        doc = body["document"]
        doc["nodes"][0]["source"] = source
        r = client.put("/api/pipelines/flow", json={"document": doc, "version": body["version"]})
        assert r.status_code in (403, 422), r.json
        assert any("outside the workspace" in d["message"] for d in r.json["details"]) or \
            "outside the workspace" in r.json["error"]
    doc = client.get("/api/pipelines/flow").json["document"]
    doc["nodes"][1]["inputs"][0]["path"] = "../outside/secret.txt"
    doc["edges"] = []
    r = client.put("/api/pipelines/flow", json={"document": doc, "version": body["version"]})
    assert r.status_code in (403, 422)
    assert path.read_text() == before


def test_new_files_cannot_be_created_outside(workspace, client, tmp_path):
    shell_pipeline(workspace)
    assert_json_error(client.post("/api/pipelines", json={"path": "../evil.pipeline.yaml"}), 403)
    assert_json_error(client.post("/api/pipelines", json={"path": str(tmp_path / "abs.pipeline.yaml")}), 403)
    os.symlink(tmp_path, workspace / "up")
    assert_json_error(client.post("/api/pipelines", json={"path": "up/evil.pipeline.yaml"}), 403)
    r = client.post("/api/pipelines/flow/nodes", json={"runtime": "python", "id": "x", "source": "../../x.py"})
    assert_json_error(r, 403)
    r = client.post("/api/pipelines/flow/nodes", json={"runtime": "python", "id": "y", "source": "up/y.py"})
    assert_json_error(r, 403)
    assert not (tmp_path / "evil.pipeline.yaml").exists() and not (tmp_path / "y.py").exists()
    assert not (tmp_path / "abs.pipeline.yaml").exists()


def test_output_routes_refuse_a_symlink_leading_out(workspace, client, outside):
    shell_pipeline(workspace, scripts={"make": f"ln -s {outside} out.json\n"})
    run = client.wait_run(client.post("/api/pipelines/flow/runs", json={}).json["run_id"])
    assert run["nodes"]["make"]["status"] == "succeeded", run
    rid = run["run_id"]
    body = assert_json_error(client.get(f"/api/runs/{rid}/nodes/make/outputs/out"), 403)
    assert "top secret" not in body["error"]
    raw = client.get(f"/api/runs/{rid}/nodes/make/outputs/out/raw")
    assert_json_error(raw, 403)


def test_log_route_refuses_a_symlink_leading_out(workspace, client, outside):
    shell_pipeline(workspace)
    rid = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(rid)
    log = workspace / ".pipeloom" / "runs" / rid / "_logs" / "make.log"
    assert log.is_file()
    log.unlink()
    os.symlink(outside, log)
    body = assert_json_error(client.get(f"/api/runs/{rid}/nodes/make/logs"), 403)
    assert "top secret" not in str(body)


@pytest.mark.parametrize("path", [
    "/api/runs/..%2F..%2Fetc/nodes/make/logs",
    "/api/runs/../../etc/nodes/make/logs",
    "/api/runs/RUN/nodes/..%2F..%2Fsecret/logs",
    "/api/runs/RUN/nodes/../logs",
    "/api/runs/RUN/nodes/make/outputs/..%2F..%2Fsecret",
    "/api/runs/RUN/nodes/make/outputs/../../x/raw",
    "/api/pipelines/..%2Fsecret/nodes/make/source",
    "/static/..%2F..%2Fserver/web/app.py",
    "/static/../server/web/app.py",
])
def test_dot_dot_in_urls_never_escapes(workspace, client, path):
    shell_pipeline(workspace)
    rid = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(rid)
    r = client.get(path.replace("RUN", rid))
    assert 400 <= r.status_code < 500
    assert b"top secret" not in r.data and b"create_app" not in r.data


# ------------------------------------------------------------ the socket rules live in test_live.py:
# test_socket_needs_token, test_socket_refuses_bad_origin
