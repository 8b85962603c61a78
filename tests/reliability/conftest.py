"""The reliability suite: each test measures a figure and records it.

`figure(...)` appends one measured row to the report file named by
PIPELOOM_RELIABILITY_REPORT (JSON lines), and the terminal summary prints every
row of the session, so a plain `python -m pytest tests/reliability -q` shows
what was measured. `python -m tests.reliability.report FILE` turns a report
into the table kept in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import time

import pytest

_ROWS: list[dict] = []


@pytest.fixture
def figure(request):
    """Record one measured figure: figure("R1", "answers >= 500", 0, target="0", detail="...")."""
    def record(rid: str, what: str, value, *, target: str, ok: bool, detail: str = "") -> None:
        row = {"id": rid, "what": what, "value": value, "target": target, "ok": bool(ok), "detail": detail,
               "test": request.node.nodeid, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _ROWS.append(row)
        out = os.environ.get("PIPELOOM_RELIABILITY_REPORT")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
    return record


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    terminalreporter.section("reliability figures")
    for r in _ROWS:
        mark = "ok " if r["ok"] else "MISS"
        terminalreporter.write_line(f"{mark} {r['id']:<4} {r['what']}: {r['value']} (target {r['target']})")
