"""R1: generated requests over every REST route never get a 500, and every refusal is JSON.

Hypothesis (derandomized, so every run sends the same requests) builds each request
from the app's own url_map: the route's arguments, query string, body and content
type are drawn from ordinary values and from hostile ones (NUL bytes, lone surrogates,
`..`, huge numbers, deep nesting, broken JSON, form content types). The app runs
in-process over a real workspace with a real SQLite store and one finished run.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from urllib.parse import quote

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.web.conftest import AuthClient, make_app, shell_pipeline  # noqa: F401 (make_app is a fixture)
from tests.web.routes import routes

pytestmark = pytest.mark.reliability

REQUESTS = 10_000

HOSTILE_TEXT = ["", ".", "..", "../..", "../../etc/passwd", "/etc/passwd", "a\x00b", "\x00", "\ud800", "x\udfff",
                "..\\..\\x", "%2e%2e%2f", "C:\\Windows", "~root", "n" * 300, "n" * 4000, "\u202e", "😀" * 70,
                "flow", "make", "copy", "out", "in", "-1", "0", "1e999", "NaN", "null", "true", " "]
HUGE_NUMBERS = [0, -1, 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, -10**30, 10**400, 1e308, -0.0, 1.5]
FIELDS = ["path", "document", "name", "version", "replace_broken", "enabled", "id", "runtime", "source", "title",
          "description", "position", "only", "from", "force", "jobs", "note"]
CONTENT_TYPES = ["application/json"] * 30 + [
    "application/json; charset=utf-8", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/json-patch+json", "application/xml", "", "*/*",
    "application/json\x7f", "APPLICATION/JSON"]
RAW_BODIES = ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "{", "[1, 2]", '"x"', "null",
              '{"path": "a\\ud800.pipeline.yaml"}', '{"document": "\\u0000"}', "1" * 5000, '{"version": 1e999}',
              '{"version": NaN}', "\ufeff{}", "{}" * 1000, "a=1&b=2", "--xyz\r\n\r\n--xyz--"]


def _texts():
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40),
                     st.text(alphabet=st.sampled_from("./\\\x00%~ab"), max_size=30))


def _json_values():
    leaves = st.one_of(st.none(), st.booleans(), st.sampled_from(HUGE_NUMBERS), st.integers(), _texts(),
                       st.floats(allow_nan=False, allow_infinity=False))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(_texts(), inner, max_size=4)),
                        max_leaves=12)


def _documents(valid: dict):
    """Pipeline documents: the valid one, and that one with a field or node part replaced."""
    def mutate(args):
        where, key, value = args
        doc = json.loads(json.dumps(valid))
        if where == "top":
            doc[key] = value
        elif where == "node" and doc["nodes"]:
            doc["nodes"][len(key) % len(doc["nodes"])][key] = value
        elif where == "port" and doc["nodes"][-1].get("inputs"):
            doc["nodes"][-1]["inputs"][0][key] = value
            doc["edges"] = []
        return doc
    keys = st.sampled_from(["version", "name", "nodes", "edges", "id", "runtime", "source", "inputs", "outputs",
                            "params", "timeout", "retries", "command", "path", "file", "format", "position"])
    return st.one_of(st.just(valid), st.tuples(st.sampled_from(["top", "node", "port"]), keys,
                                               _json_values()).map(mutate))


CURRENT = "<current version>"  # replaced at send time by the pipeline's latest version


def _paths():
    """Path fields: hostile text, or ordinary relative names (some new, some existing)."""
    ordinary = st.builds(lambda d, n, ext: f"{d}{n}{ext}", st.sampled_from(["", "gen/", "gen/deep/", "../", "./"]),
                         st.text(alphabet="abc-_.", min_size=1, max_size=8),
                         st.sampled_from([".pipeline.yaml", ".pipeline.json", ".pipeline.yml", ".py", ".sh", ""]))
    return st.one_of(ordinary, _texts())


def _route_bodies(valid: dict) -> dict:
    """Bodies shaped for each write route, with hostile values in their fields."""
    docs = _documents(valid)
    maybe = lambda strat: st.one_of(st.none(), strat)  # noqa: E731
    def obj(**fields):
        return st.fixed_dictionaries({}, optional=fields)
    versions = st.one_of(st.just(CURRENT), st.just(CURRENT), st.sampled_from(HUGE_NUMBERS), _json_values())
    return {
        "api.create_pipeline": st.builds(lambda p, rest: {"path": p, **rest}, _paths(),
                                         obj(document=docs, name=_texts())),
        "api.save_pipeline": st.builds(lambda d, v, rest: {"document": d, "version": v, **rest}, docs, versions,
                                       obj(replace_broken=_json_values())),
        "api.validate_pipeline": st.builds(lambda d: {"document": d}, docs),
        "api.set_autorun": obj(enabled=st.one_of(st.booleans(), _json_values())),
        "api.new_node": obj(id=st.one_of(st.text(alphabet="abxyz-_", min_size=1, max_size=6), _texts()),
                            runtime=st.one_of(st.sampled_from(["python", "shell", "node", "go", "rust", "command"]),
                                              _texts()),
                            source=_paths(), title=_texts(), description=_texts(), position=_json_values()),
        "api.start_run": obj(only=maybe(st.sampled_from(["make", "copy"]) | _texts()),
                             **{"from": maybe(st.sampled_from(["make", "copy"]) | _texts())},
                             force=_json_values(), jobs=st.sampled_from(HUGE_NUMBERS) | _json_values()),
    }


def _bodies(valid: dict):
    fields = st.dictionaries(st.sampled_from(FIELDS), st.one_of(_json_values(), _documents(valid)), max_size=5)
    return st.one_of(fields, fields, _json_values(), st.sampled_from(RAW_BODIES),
                     st.binary(max_size=64).map(lambda b: b.decode("latin-1")))


def _hostile_segment():
    """A hostile URL path segment, percent-encoded (raw bytes, NUL, a surrogate's UTF-8 form, huge numbers)."""
    hostile = st.one_of(_texts().map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=20),
                        st.sampled_from([b"\xed\xa0\x80", b"%00", b"..%2f..", b"9" * 40, b"1" + b"0" * 400]))
    return hostile.map(lambda b: quote(b, safe=""))


def _query():
    keys = st.sampled_from(["offset", "limit", "theme", "pipeline", "token", "x", "offset[]", ""])
    values = st.one_of(st.sampled_from(["0", "1", "-1", "50", "99999999999999999999999", "1e3", "dark", "flow",
                                        "", "%00", "%ED%A0%80", "a" * 5000]),
                       st.text(max_size=10).map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")))
    return st.lists(st.tuples(keys, values), max_size=3).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))


@pytest.fixture
def r1_app(workspace, make_app):
    path = shell_pipeline(workspace)
    doc = yaml.safe_load(path.read_text())  # an http trigger, so /invoke is exercised past its lookup
    (workspace / "seed.json").write_text("[]")
    doc["nodes"][0]["inputs"] = [{"name": "seed", "format": "json", "path": "seed.json"}]
    doc["triggers"] = [{"id": "call", "kind": "http", "to": "make.seed", "result": "make.out", "timeout": 5}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (workspace / "second.pipeline.json").write_text(json.dumps(
        {"version": 1, "name": "second", "nodes": [], "edges": []}))
    app = make_app()
    client = AuthClient(app)
    run_id = client.post("/api/pipelines/flow/runs", json={}).json["run_id"]
    client.wait_run(run_id)
    return app, client, run_id


def test_r1_generated_requests_never_get_a_500(r1_app, figure):
    app, client, run_id = r1_app
    valid = client.get("/api/pipelines/flow").json["document"]
    table = ([r for r in routes(app) if r.is_api] + [r for r in routes(app) if not r.is_api and r.method == "GET"]
             + [r for r in routes(app) if r.rule.startswith("/invoke/")])
    samples = {"pipeline_id": ["flow", "second"], "node_id": ["make", "copy"], "run_id": [run_id],
               "port": ["out", "in"], "number": [1, 2], "filename": ["js/api.js", "css/studio.css"],
               "trigger_id": ["call", "nope"]}
    # strategies are built once: building them inside each draw costs more than the request
    plain = {arg: st.sampled_from([quote(str(v), safe="") for v in values]) for arg, values in samples.items()}
    hostile, dice = _hostile_segment(), st.integers(0, 9)
    methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])
    queries, bodies, ctypes = _query(), _bodies(valid), st.sampled_from(CONTENT_TYPES)
    shaped = _route_bodies(valid)
    pick_route = st.sampled_from(table)

    @st.composite
    def requests(draw):
        route = draw(pick_route)
        url = route.rule
        for arg in route.arguments:
            seg = draw(plain[arg]) if draw(dice) < 8 else draw(hostile)
            url = re.sub(rf"<(?:[^<>]*:)?{arg}>", lambda _: seg, url)
        method = route.method if draw(dice) else draw(methods)
        query = draw(queries) if draw(dice) < 3 else ""
        body = None
        if method != "GET":
            body = draw(shaped[route.endpoint]) if route.endpoint in shaped and draw(dice) < 7 else draw(bodies)
        ctype = draw(ctypes) if body is not None else None
        return route, method, url + (f"?{query}" if query else ""), body, ctype

    store = app.extensions["pipeloom"].store
    counts: Counter = Counter()
    bad: list[str] = []
    unstructured: list[str] = []

    def encode(body, url: str) -> bytes:
        if isinstance(body, str):
            return body.encode("utf-8", "surrogatepass")
        if isinstance(body, dict) and body.get("version") == CURRENT:
            pid = url.split("/")[3] if url.count("/") >= 3 else ""
            latest = store.latest_version(pid) if pid in ("flow", "second") else None
            body = {**body, "version": latest["version"] if latest else 1}
        return json.dumps(body, ensure_ascii=True).encode()

    @settings(max_examples=REQUESTS, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(requests())
    def send(req):
        route, method, url, body, ctype = req
        headers = {"Content-Type": ctype} if ctype else {}
        data = encode(body, url) if body is not None else None
        r = client.open(method, url, data=data, headers=headers)
        counts[f"status {r.status_code}"] += 1
        counts["requests"] += 1
        counts[route.rule] += 1
        what = f"{method} {url[:120]} ({ctype}) body {str(body)[:80]!r} -> {r.status_code}"
        if r.status_code >= 500:
            bad.append(what + " " + r.get_data(as_text=True)[:200])
        elif r.status_code >= 400:
            counts["refusals"] += 1
            body_ok = False
            if r.is_json:
                answer = r.get_json(silent=True)
                body_ok = (isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"]
                           and isinstance(answer.get("details"), list))
            if not body_ok and (route.is_api or url.startswith("/api")):
                unstructured.append(what + " " + r.get_data(as_text=True)[:200])
            elif not body_ok:
                counts["page refusals"] += 1  # a page or static file answers a person in HTML

    logging.disable(logging.CRITICAL)  # a 500 logs a traceback; the figure counts it instead
    try:
        send()
    finally:
        logging.disable(logging.NOTSET)
        st_ = app.extensions["pipeloom"]
        for run in st_.store.list_runs(limit=500):
            st_.runs.wait(run["run_id"], 60)

    n = counts["requests"]
    api_refusals = counts["refusals"] - counts["page refusals"]
    structured = 100.0 * (api_refusals - len(unstructured)) / max(api_refusals, 1)
    covered = {r.rule for r in table if counts[r.rule] == 0}
    statuses = ", ".join(f"{k.split()[1]}: {v:,}" for k, v in sorted(counts.items()) if k.startswith("status "))
    detail = f"{n:,} requests over {len(table)} routes, Hypothesis derandomized; statuses {statuses}"
    figure("R1", "answers >= 500", len(bad), target="0", ok=not bad, detail=detail)
    figure("R1", "API refusals that are structured JSON (%)", round(structured, 2), target="100",
           ok=not unstructured, detail=f"{api_refusals:,} refusals")
    assert n >= REQUESTS, n
    assert not covered, f"routes never requested: {covered}"
    assert not bad, f"{len(bad)} answers >= 500, e.g.:\n" + "\n".join(bad[:15])
    assert not unstructured, (f"{len(unstructured)} refusals without the JSON error shape:\n"
                              + "\n".join(unstructured[:15]))
