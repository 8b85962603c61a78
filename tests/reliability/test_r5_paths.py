"""R5: traversal payloads on every path-taking route leak nothing and write nothing outside.

A canary file sits beside the workspace, and links inside the workspace lead out
to it (a source, a folder, a pipeline file, a node output, a log). More than 250
payloads (`../`, encoded, absolute, NUL, backslashes, look-alike dots, long names,
the links) go into every path field of a body (new pipeline `path`, new node
`source`, a document's `source` and input `path`, saved and validated), into a
pipeline file on disk (then read through the source view), and into every
argument of every URL rule the app has (so a route added later is covered).
Afterwards: no answer holds a byte of the canary, no file appeared outside the
workspace, and no answer was a 500.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.web.conftest import AuthClient, make_app, shell_pipeline  # noqa: F401 (make_app is a fixture)
from tests.web.routes import SAMPLES, routes

pytestmark = pytest.mark.reliability

MIN_PAYLOADS = 250


def payloads(outside: Path, canary: Path) -> list[str]:
    """Traversal payloads: every way we know to name a file outside the workspace."""
    targets = [canary.name, "", "r5-written.sh", "r5-written.pipeline.yaml", "etc/passwd"]
    ups = ["../", "../../", "../../../../../../", "./../", "a/../../", "a/b/../../../", "..//", ".././",
           "....//", "..;/", "%2e%2e/", "%2e%2e%2f", "..%2f", "..%252f", "%252e%252e/", "..\\", "..\\..\\",
           "．．/", "..%c0%af", "..%00/", "\u2025/", "/./../"]
    found: list[str] = []
    for up in ups:
        for t in targets:
            found.append(f"{up}{outside.name}/{t}")
    found += [str(canary), str(outside) + "/", str(outside / "r5-written.sh"), "/etc/passwd", "/etc/hostname",
              "//etc/passwd", "file:///etc/passwd", str(canary).replace("/", "\\"), "~/.bashrc", "~root/.profile",
              "/proc/self/environ", "/proc/self/cwd/../outside/" + canary.name, "/dev/stdin", "/dev/zero",
              f"{canary}\x00.sh", f"ok.sh\x00/../../{outside.name}/{canary.name}", "\x00", "a\x00b",
              "\ud800/../x", "x\udfff", "n" * 255 + "/../../x", "n" * 4000, "d/" * 2100, "../" * 1400,
              "link-canary.sh", "link-out/" + canary.name, "link-out/r5-written.sh",
              "link-out/r5-written.pipeline.yaml",
              "sub/escape/" + canary.name, "sub/escape/r5-written.sh", "linked.pipeline.yaml", "link-loop/x",
              "link-out", "link-out/", "sub/escape", ".", "..", "...", "/", "./", "//", "\\", "C:\\Windows\\win.ini",
              "\\\\server\\share\\x", " ../x", "../x ", "..\t/x", "\n../x", "%00", "%2F", "?x", "#x", "*", "$HOME/x",
              "${HOME}/x", "`id`", "$(id)", ".pipeloom/pipeloom.db", ".pipeloom/../../" + outside.name + "/x",
              ".git/config"]
    for i, base in enumerate(list(found)):
        if i % 3 == 0:
            found.append(base + ".pipeline.yaml")
        elif i % 3 == 1:
            found.append("gen/" + base)  # the same, one folder down
    unique = list(dict.fromkeys(found))
    return unique


@pytest.fixture
def r5(workspace, tmp_path, make_app):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = f"CANARY-{uuid.uuid4().hex}"
    canary = outside / "canary.txt"
    canary.write_text(secret + "\n")
    (outside / "secret.pipeline.yaml").write_text(
        f"version: 1\nname: {secret}\nnodes: []\nedges: []\ndescription: {secret}\n")
    shell_pipeline(workspace, scripts={"make": f"ln -s {canary} out.json\n"})
    os.symlink(canary, workspace / "link-canary.sh")
    os.symlink(outside, workspace / "link-out")
    (workspace / "sub").mkdir()
    os.symlink("../../outside", workspace / "sub" / "escape")
    os.symlink(outside / "secret.pipeline.yaml", workspace / "linked.pipeline.yaml")
    os.symlink(workspace / "link-loop", workspace / "link-loop")
    app = make_app()
    client = AuthClient(app)
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(run_id)
    # the run's log is a link to the canary as well
    log = workspace / ".pipeloom" / "runs" / run_id / "_logs" / "copy.log"
    if log.exists():
        log.unlink()
    log.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(canary, log)
    return app, client, run_id, outside, canary, secret


def _tree(root: Path) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.join(dirpath, name))
    return found


def test_r5_traversal_payloads_leak_nothing_and_write_nothing_outside(r5, workspace, tmp_path, figure):
    app, client, run_id, outside, canary, secret = r5
    loads = payloads(outside, canary)
    assert len(loads) >= MIN_PAYLOADS, len(loads)
    outside_before = _tree(tmp_path) - _tree(workspace)
    root_before = set(os.listdir("/tmp"))
    leaks: list[str] = []
    leaked = [0]
    errors: list[str] = []
    per_route: dict[str, int] = {}
    needle = secret.encode()

    def check(label: str, r) -> None:
        per_route[label] = per_route.get(label, 0) + 1
        data = r.get_data()
        if needle in data:
            leaked[0] += data.count(needle) * len(needle)
            leaks.append(f"{label}: {r.status_code} {data[:200]!r}")
        if r.status_code >= 500:
            errors.append(f"{label}: {r.status_code} {data[:200]!r}")

    doc = client.get("/api/pipelines/flow").json
    logging.disable(logging.CRITICAL)
    try:
        for i, p in enumerate(loads):
            check("POST /api/pipelines path", client.post("/api/pipelines", json={"path": p}))
            check("POST /api/pipelines path (with document)", client.post(
                "/api/pipelines", json={"path": p + ".pipeline.yaml", "document": doc["document"]}))
            check("POST nodes source", client.post("/api/pipelines/flow/nodes",
                                                   json={"id": f"n{i}", "runtime": "shell", "source": p}))
            for field in ("source", "input path"):
                d = {**doc["document"], "nodes": [dict(n) for n in doc["document"]["nodes"]]}
                if field == "source":
                    d["nodes"][0]["source"] = p
                else:
                    d["nodes"][1]["inputs"] = [{**d["nodes"][1]["inputs"][0], "path": p}]
                    d["edges"] = []
                check(f"POST validate {field}", client.post("/api/pipelines/flow/validate", json={"document": d}))
                current = client.get("/api/pipelines/flow").json["version"]
                check(f"PUT document {field}", client.put("/api/pipelines/flow",
                                                          json={"document": d, "version": current}))
                # a save that went through must be undone, so the next payload starts from the same file
                if client.get("/api/pipelines/flow").json["version"] != current:
                    back = client.get("/api/pipelines/flow").json["version"]
                    client.put("/api/pipelines/flow", json={"document": doc["document"], "version": back})

        # payloads written into a pipeline file on disk, then read through the source view
        disk_nodes = [{"id": f"p{i}", "runtime": "shell", "source": p, "outputs": [{"name": "out"}]}
                      for i, p in enumerate(loads)]
        # JSON, which escapes NULs and surrogates (and parses fast enough to read once per request)
        (workspace / "disk.pipeline.json").write_text(
            json.dumps({"version": 1, "name": "disk", "nodes": disk_nodes, "edges": []}, ensure_ascii=True))
        check("GET disk pipeline", client.get("/api/pipelines/disk"))
        for i in range(len(loads)):
            check("GET node source (from disk)", client.get(f"/api/pipelines/disk/nodes/p{i}/source"))

        # every argument of every URL rule, raw and percent-encoded
        values = {**SAMPLES, "run_id": run_id}
        for route in routes(app, values):
            for arg in route.arguments:
                if arg == "number":
                    continue  # an int converter: text never reaches the route
                for i, p in enumerate(loads):
                    seg = quote(p.encode("utf-8", "surrogatepass"), safe="" if i % 2 else "/")
                    url = route.rule
                    for name in route.arguments:
                        fill = seg if name == arg else quote(str(values[name]), safe="/")
                        url = re.sub(rf"<(?:[^<>]*:)?{name}>", lambda _, f=fill: f, url)
                    body = {"data": "{}", "content_type": "application/json"} if route.writes else {}
                    check(f"{route.method} {route.rule} <{arg}>", client.open(route.method, url, **body))
        # the links themselves, by their ordinary names
        for port in ("out",):
            check("GET output (a link out)", client.get(f"/api/runs/{run_id}/nodes/make/outputs/{port}"))
            check("GET raw output (a link out)", client.get(f"/api/runs/{run_id}/nodes/make/outputs/{port}/raw"))
        check("GET log (a link out)", client.get(f"/api/runs/{run_id}/nodes/copy/logs"))
        check("GET linked pipeline", client.get("/api/pipelines/linked"))
        check("GET pipeline list", client.get("/api/pipelines"))
        check("GET index page", client.get("/"))
    finally:
        logging.disable(logging.NOTSET)
        st_ = app.extensions["pipeloom"]
        for run in st_.store.list_runs(limit=100):
            st_.runs.wait(run["run_id"], 60)

    written = sorted((_tree(tmp_path) - _tree(workspace)) - outside_before)
    written += sorted(f"/tmp/{n}" for n in set(os.listdir("/tmp")) - root_before if "r5-written" in n)
    requests = sum(per_route.values())
    assert canary.read_text() == secret + "\n"
    detail = f"{len(loads)} payloads, {requests:,} requests over {len(per_route)} route fields"
    figure("R5", "bytes leaked from the canary", leaked[0], target="0", ok=not leaks, detail=detail)
    figure("R5", "files written outside the workspace", len(written), target="0", ok=not written, detail=detail)
    figure("R5", "answers >= 500", len(errors), target="0", ok=not errors, detail=detail)
    assert all(n >= MIN_PAYLOADS for label, n in per_route.items() if "<" in label or "POST" in label
               or "PUT" in label or "source" in label), per_route
    assert not errors, "\n".join(errors[:10])
    assert not leaks, "\n".join(leaks[:10])
    assert not written, written[:10]
