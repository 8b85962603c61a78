"""docs/api.md must describe every route and every Socket.IO event the server knows."""

from __future__ import annotations

import re

from tests.web.conftest import REPO

DOC = (REPO / "docs" / "api.md").read_text()


def _norm(text: str) -> str:
    return re.sub(r"<[^>]+>", "<>", text)


def test_every_api_route_is_documented(app):
    doc = _norm(DOC)
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            entry = f"{method} {_norm(rule.rule)}"
            if f"`{entry}`" not in doc and f"`{entry}?" not in doc and f"{entry} " not in doc:
                missing.append(entry)
    assert missing == []


def test_every_socket_event_is_documented():
    src = "".join((REPO / "server" / "web" / name).read_text() for name in ("runs.py", "app.py", "sockets.py"))
    emitted = set(re.findall(r'emit\("([a-z_]+)"', src)) | set(re.findall(r'@socketio\.on\("([a-z_]+)"\)', src))
    emitted -= {"connect"}
    assert {"snapshot", "run_status", "node_status", "log", "output_ready", "source_changed", "pipeline_changed",
            "subscribe", "unsubscribe"} <= emitted
    assert [e for e in sorted(emitted) if f"`{e}`" not in DOC] == []


def test_examples_use_the_id_the_readme_command_shows():
    from server.engine.paths import pipeline_id_for

    # README's first command serves the repository itself
    demo_id = pipeline_id_for(REPO, REPO / "nodes" / "sensor-alerts.pipeline.yaml")
    assert f'"id": "{demo_id}"' in DOC
    assert f"/api/pipelines/{demo_id}" in DOC
    assert '"id": "sensor-alerts", "name"' not in DOC


def test_broken_file_answer_is_documented():
    from server.web.pipelines import BROKEN_MESSAGE

    assert f'"error": "{BROKEN_MESSAGE}", "broken": true' in DOC
    assert '"replace_broken": true' in DOC
