"""R1b: generated pipeline documents through `pipeloom validate` and through PUT.

Hypothesis (derandomized) builds a valid pipeline of one to five shell nodes, then
applies zero to three mutations, each of which makes the document invalid on its
own (an unknown runtime, a source outside the workspace, a NUL byte in a path, a
cycle, a nesting 100,000 levels deep, …). So every document has a known verdict:
valid ones must pass (exit 0, HTTP 200), the others must be refused with their
problems listed (exit 2, HTTP 422; 400 for a body no JSON route accepts). Nothing
may end in a traceback or a 500. Most CLI checks run in-process through click's
CliRunner; a sample runs as real `pipeloom validate` subprocesses.
"""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from server.cli import main as cli
from tests.conftest import pipeloom_cmd
from tests.web.conftest import AuthClient, make_app  # noqa: F401 (make_app is a fixture)

pytestmark = pytest.mark.reliability

DOCUMENTS = 1000
SUBPROCESS_EVERY = 33  # about 30 of the 1,000 run as real processes

ODD_TEXT = st.sampled_from(["", " ", "a\x00b", "n" * 4000, "../x", "/etc/passwd", "UPPER", "with space", "é", "😀",
                            "1e999", "null", "-", "a.b"])


def valid_document(n: int, fan_in: bool) -> dict:
    """A chain of `n` shell nodes (s0 … s{n-1}); with `fan_in`, the last also reads the first."""
    nodes, edges = [], []
    for i in range(n):
        node = {"id": f"s{i}", "runtime": "shell", "title": f"Step {i}", "source": f"s{i}.sh",
                "outputs": [{"name": "out", "format": "json"}], "params": {"i": i}}
        if i:
            node["inputs"] = [{"name": "in", "format": "json"}]
            edges.append({"from": f"s{i - 1}.out", "to": f"s{i}.in"})
        nodes.append(node)
    if fan_in and n > 2:
        nodes[-1]["inputs"].append({"name": "first", "format": "json", "file": "first.json"})
        edges.append({"from": "s0.out", "to": f"s{n - 1}.first"})
    return {"version": 1, "name": f"generated {n}", "nodes": nodes, "edges": edges}


def _node(doc, k):
    return doc["nodes"][k % len(doc["nodes"])]


def _reader(doc):
    """A node with an input, or None (a one-node pipeline has none)."""
    return next((n for n in doc["nodes"] if n.get("inputs")), None)


# Each mutation makes a valid document invalid by itself. The flag says whether the
# result can still travel as a JSON body (False: the PUT is refused as 400 before validation).
def m_runtime(doc, k, text):
    _node(doc, k)["runtime"] = "cobol" if not text.strip() or text in ("shell", "python") else f"x-{text}"


def m_missing_source(doc, k, text):
    _node(doc, k)["source"] = f"missing-{k}.sh"


def m_outside_source(doc, k, text):
    _node(doc, k)["source"] = ["../outside.sh", "/etc/passwd", "../../../../etc/hostname", "a/../../b.sh"][k % 4]


def m_bad_path_text(doc, k, text):
    bad = ["a\x00b.sh", "n" * 4000, "d/" + "n" * 300 + ".sh"][k % 3]
    if k % 2 and _reader(doc):
        _reader(doc)["inputs"][0]["path"] = bad
    else:
        _node(doc, k)["source"] = bad


def m_bad_id(doc, k, text):
    _node(doc, k)["id"] = ["Bad Id", 12, None, "", ["x"], "UPPER", "a.b", "é"][k % 8]


def m_duplicate_id(doc, k, text):
    doc["nodes"].append(json.loads(json.dumps(_node(doc, k))))


def m_edge_unknown_node(doc, k, text):
    doc["edges"].append({"from": "nowhere.out", "to": f"{_node(doc, k)['id']}.in"})


def m_edge_unknown_port(doc, k, text):
    doc["edges"].append({"from": f"{_node(doc, k)['id']}.nope", "to": "s0.in"})


def m_cycle(doc, k, text):
    first = doc["nodes"][0]
    first.setdefault("inputs", []).append({"name": "back", "format": "json", "file": "back.json"})
    doc["edges"].append({"from": f"{doc['nodes'][-1]['id']}.out", "to": "s0.back"})


def m_unknown_field(doc, k, text):
    (doc if k % 2 else _node(doc, k))["colour"] = text


def m_version(doc, k, text):
    doc["version"] = [2, "1", 0, 10**30, None][k % 5]


def m_name(doc, k, text):
    doc["name"] = ["", "   ", 7, None, ["x"]][k % 5]


def m_nodes_type(doc, k, text):
    doc[["nodes", "edges"][k % 2]] = [{"a": 1}, "all of them", 3][k % 3]


def m_input_path(doc, k, text):
    if not _reader(doc):
        _node(doc, 0)["source"] = "missing.sh"
        return
    _reader(doc)["inputs"][0]["path"] = ["../outside.json", "/etc/hostname", "missing.json"][k % 3]


def m_numbers(doc, k, text):
    key, value = [("timeout", -1), ("timeout", "soon"), ("timeout", True), ("retries", -1), ("retries", 1.5),
                  ("timeout", 0)][k % 6]
    _node(doc, k)[key] = value


def m_format(doc, k, text):
    _node(doc, k)["outputs"][0]["format"] = f"fmt-{k}" if not text else f"x{text}"


def m_unfed_input(doc, k, text):
    if len(doc["nodes"]) < 2:
        _node(doc, 0)["runtime"] = "cobol"
        return
    doc["edges"] = doc["edges"][1:]


def m_command_on_shell(doc, k, text):
    _node(doc, k)["command"] = ["echo", text or "x"]


def m_port_file(doc, k, text):
    _node(doc, k)["outputs"][0]["file"] = ["../out.json", "a/b.json", ".", "..", ""][k % 5]


MUTATIONS = [m_runtime, m_missing_source, m_outside_source, m_bad_path_text, m_bad_id, m_duplicate_id,
             m_edge_unknown_node, m_edge_unknown_port, m_cycle, m_unknown_field, m_version, m_name, m_nodes_type,
             m_input_path, m_numbers, m_format, m_unfed_input, m_command_on_shell, m_port_file]


def m_deep(doc, k):
    """A document nested far too deeply for any parser that recurses (JSON text, which YAML reads too)."""
    return "[" * 100_000 + "]" * 100_000 if k % 2 else '{"a": ' * 50_000 + "1" + "}" * 50_000


def m_surrogate(doc, k):
    _node(doc, k)["source" if k % 2 else "title"] = "x\ud800.sh"
    if k % 2 == 0:
        _node(doc, k)["runtime"] = "cobol"  # a surrogate in a title alone would be valid


@pytest.fixture
def r1b_workspace(workspace):
    for i in range(5):
        (workspace / f"s{i}.sh").write_text('printf "[]" > out.json\n')
    # the save target is JSON, so the run is not spent parsing YAML; the CLI side writes both
    (workspace / "target.pipeline.json").write_text(json.dumps(valid_document(2, False)))
    return workspace


def _render(doc, as_json: bool) -> str:
    if isinstance(doc, str):
        return doc
    if as_json:
        return json.dumps(doc, ensure_ascii=True, indent=1)
    # YAML escapes NULs and surrogates in double quotes, as a person might write them
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=False)


def test_r1b_generated_documents_get_a_verdict_never_a_traceback(r1b_workspace, make_app, figure):
    ws = r1b_workspace
    client = AuthClient(make_app())
    runner = CliRunner()
    seen = {"docs": 0, "valid": 0, "bad": 0, "subprocess": 0, "cli": 0, "put": 0}
    tracebacks: list[str] = []
    wrong: list[str] = []
    current = {"version": client.get("/api/pipelines/target").json["version"]}

    cases = st.tuples(
        st.integers(1, 5), st.booleans(), st.booleans(),
        st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 20), ODD_TEXT), max_size=3),
        st.sampled_from(["plain"] * 38 + ["deep", "surrogate"]))

    @settings(max_examples=DOCUMENTS, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(cases)
    def check(case):
        n, fan_in, as_json, mutations, special = case
        doc = valid_document(n, fan_in)
        expect_valid, json_body_ok = not mutations, True
        if special == "surrogate":
            m_surrogate(doc, n)
            expect_valid, json_body_ok = False, False
        # replacing `nodes` or `edges` wholesale goes last: the other mutations edit them
        for mutate, k, text in sorted(mutations, key=lambda m: m[0] is m_nodes_type):
            mutate(doc, k, text)
        if special == "deep":
            doc, expect_valid, json_body_ok = m_deep(doc, n if as_json else 0), False, False
        seen["docs"] += 1
        seen["valid" if expect_valid else "bad"] += 1
        label = f"doc #{seen['docs']} ({'valid' if expect_valid else [m.__name__ for m, _, _ in mutations]})"

        # the command line
        path = ws / ("gen.pipeline.json" if as_json else "gen.pipeline.yaml")
        path.write_text(_render(doc, as_json), encoding="utf-8", errors="surrogatepass")
        if seen["docs"] % SUBPROCESS_EVERY == 0:
            proc = pipeloom_cmd("validate", path.name, cwd=ws, timeout=120)
            code, out = proc.returncode, proc.stdout + proc.stderr
            seen["subprocess"] += 1
        else:
            result = runner.invoke(cli, ["validate", path.name, "--workspace", str(ws)])
            code, out = result.exit_code, result.output
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                out += f"\nTraceback: {result.exception!r}"
            seen["cli"] += 1
        if "Traceback" in out:
            tracebacks.append(f"cli {label}: {out[-400:]}")
        elif expect_valid and code != 0:
            wrong.append(f"cli {label}: exit {code}: {out[-300:]}")
        elif not expect_valid and (code != 2 or "  - " not in out):
            wrong.append(f"cli {label}: exit {code} without problems: {out[-300:]}")

        # the studio's save
        version = current["version"]
        if isinstance(doc, str):
            body = ('{"version": %d, "document": ' % version + doc + "}").encode()
        else:
            body = json.dumps({"document": doc, "version": version}, ensure_ascii=True).encode()
        r = client.put("/api/pipelines/target", data=body, content_type="application/json")
        seen["put"] += 1
        answer = r.get_json(silent=True) or {}
        if r.status_code == 200:
            current["version"] = answer["version"]
        if r.status_code >= 500:
            tracebacks.append(f"PUT {label}: {r.status_code} {r.get_data(as_text=True)[:300]}")
        elif expect_valid and r.status_code != 200:
            wrong.append(f"PUT {label}: {r.status_code} {answer}")
        elif not expect_valid and json_body_ok and not (r.status_code == 422 and answer.get("details")):
            wrong.append(f"PUT {label}: {r.status_code} without problems: {str(answer)[:300]}")
        elif not expect_valid and not json_body_ok and r.status_code not in (400, 422):
            wrong.append(f"PUT {label}: {r.status_code}, expected a refusal: {str(answer)[:300]}")

    logging.disable(logging.CRITICAL)
    try:
        check()
    finally:
        logging.disable(logging.NOTSET)

    detail = (f"{seen['docs']:,} documents ({seen['valid']} valid, {seen['bad']} invalid); CLI {seen['cli']} "
              f"in-process + {seen['subprocess']} subprocesses; {seen['put']} PUTs; Hypothesis derandomized")
    figure("R1b", "tracebacks (CLI) and answers >= 500 (PUT)", len(tracebacks), target="0", ok=not tracebacks,
           detail=detail)
    figure("R1b", "documents with the wrong verdict", len(wrong), target="0", ok=not wrong, detail=detail)
    assert seen["docs"] >= DOCUMENTS and seen["subprocess"] >= 25 and seen["valid"] >= 50
    assert not tracebacks, f"{len(tracebacks)} tracebacks, e.g.:\n" + "\n".join(tracebacks[:10])
    assert not wrong, f"{len(wrong)} wrong verdicts, e.g.:\n" + "\n".join(wrong[:10])
