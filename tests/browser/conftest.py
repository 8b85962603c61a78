"""Browser fixtures: a real studio server per test (`pipeloom serve` in a
subprocess, on its own workspace) and Debian's headless Chromium driven by
Playwright. Playwright never downloads a browser here."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
TOKEN = "browser-token-3b7e1c"
VIEWPORT = {"width": 1440, "height": 900}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (each test gets its own context)."""
    require(os.path.exists(CHROMIUM), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    require((REPO / "static" / "vendor" / "socket.io.esm.min.js").is_file()
            and (REPO / "static" / "vendor" / "dagre.esm.js").is_file(),
            "the studio's browser libraries are missing: run `npm install` at the repository root")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install 'pipeloom[test]')")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception:
        pw.stop()
        raise
    yield b
    b.close()
    pw.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Studio:
    """A served workspace plus a browser page logged in to it."""

    def __init__(self, workspace: Path, browser, tmp_path: Path):
        self.ws = workspace
        self.browser = browser
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace), "--port", str(self.port),
             "--token", TOKEN],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.contexts = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []  # what the browser console shows as errors (a test decides if that fails)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log()}")
            try:
                status, _ = self.api("GET", "/api/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, body=None):
        """A REST call with the token; returns (status, parsed JSON or None)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}", "Host": f"127.0.0.1:{self.port}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
                headers["Origin"] = self.base
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, None
        finally:
            conn.close()

    def page(self, path: str = "/", color_scheme: str = "light", viewport: dict | None = None):
        """A new logged-in page at `path` (the token URL sets the cookie, as a user's first visit does)."""
        ctx = self.browser.new_context(viewport=viewport or VIEWPORT, color_scheme=color_scheme)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{self.base}/?token={TOKEN}")
        if path != "/":
            page.goto(f"{self.base}{path}")
        page.wait_for_selector("body[data-ready=true]")
        return page

    def open(self, pipeline_id: str, **kw):
        """The studio page of one pipeline, loaded and connected."""
        page = self.page(f"/pipelines/{pipeline_id}", **kw)
        page.wait_for_selector("#conn-state[data-state=connected]")
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            try:
                ctx.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def studio(browser, workspace, tmp_path):
    """Start a studio server on the test's own workspace; fails the test on any page error."""
    st = Studio(workspace, browser, tmp_path)
    yield st
    errors = list(st.errors)
    st.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# ------------------------------------------------------------ workspaces

def write(ws: Path, rel: str, text: str) -> Path:
    p = ws / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def write_pipeline(ws: Path, name: str, doc: dict) -> str:
    """Write `<name>.pipeline.yaml` and return its pipeline id."""
    (ws / f"{name}.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return name


def one_step_pipeline(ws: Path, name: str, node_id: str, title: str, code: str, output: dict) -> str:
    """A pipeline of one Python step running `code`, with one declared output; returns its id."""
    write(ws, f"{node_id}.py", code)
    return write_pipeline(ws, name, {
        "version": 1, "name": name.capitalize(),
        "nodes": [{"id": node_id, "runtime": "python", "title": title, "source": f"{node_id}.py",
                   "outputs": [output]}],
        "edges": [],
    })


REPORT_PY = '''\
import pipeloom
cfg = pipeloom.params()
n = int(cfg.get("rows", 120))
rows = [{"id": i, "name": f"row {i}", "even": i % 2 == 0} for i in range(n)]
pipeloom.write("table", rows)
pipeloom.write("summary", {"count": n, "label": cfg.get("label", "first"), "nested": {"evens": n // 2, "tags": ["a", "b"]}})
print(f"wrote {n} rows")
'''

SHOUT_PY = '''\
import pipeloom
doc = pipeloom.read("summary")
pipeloom.write("out", {"shout": str(doc["label"]).upper()})
print("shouted")
'''


def report_pipeline(ws: Path) -> str:
    """Two Python steps: `report` writes a CSV table and a JSON object; `shout` reads the object."""
    write(ws, "steps/report.py", REPORT_PY)
    write(ws, "steps/shout.py", SHOUT_PY)
    return write_pipeline(ws, "report", {
        "version": 1, "name": "Report",
        "description": "Makes a small table and a summary, then shouts the label.",
        "nodes": [
            {"id": "report", "runtime": "python", "title": "Make the report",
             "description": "Writes a table of rows and a short summary.", "source": "steps/report.py",
             "params": {"rows": 120, "label": "first"},
             "outputs": [{"name": "table", "file": "table.csv", "format": "csv"},
                         {"name": "summary", "file": "summary.json", "format": "json"}],
             "position": {"x": 40, "y": 60}},
            {"id": "shout", "runtime": "python", "title": "Shout the label", "source": "steps/shout.py",
             "inputs": [{"name": "summary", "file": "summary.json", "format": "json"}],
             "outputs": [{"name": "out", "file": "out.json", "format": "json"}],
             "position": {"x": 420, "y": 60}},
        ],
        "edges": [{"from": "report.summary", "to": "shout.summary"}],
    })


def wait_status(page, node_id: str, statuses, timeout: float = 60_000) -> str:
    """Wait until a card's data-status is one of `statuses`; returns it."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    sel = ", ".join(f'.card[data-node-id="{node_id}"][data-status="{s}"]' for s in statuses)
    page.wait_for_selector(sel, timeout=timeout)
    return page.get_attribute(f'.card[data-node-id="{node_id}"]', "data-status")


def select_node(page, node_id: str) -> None:
    """Click a card on its title (the port rows start connections)."""
    page.click(f'.card[data-node-id="{node_id}"] .card-title')
    page.wait_for_selector(f'.card[data-node-id="{node_id}"].selected')


def wait_saved(page, timeout: float = 15_000) -> None:
    page.wait_for_selector('#save-state[data-state="saved"], #save-state[data-state="problems"]', timeout=timeout)


def add_step(page, runtime_label: str, node_id: str) -> None:
    """Add a step from the palette with the "Add a step" dialog and wait for its card."""
    page.get_by_role("button", name=f"Add a {runtime_label} step").click()
    page.fill("#add-node-id", node_id)
    page.get_by_role("button", name="Add step").click()
    page.wait_for_selector(f'.card[data-node-id="{node_id}"]')


def card_boxes(page) -> dict:
    """Every card's rectangle in canvas coordinates (from its transform and size): {id: {x, y, w, h}}."""
    return page.evaluate("""() => Object.fromEntries([...window.pipeloomStudio.canvas.items].map(([id, it]) =>
      [id, { x: it.pos.x, y: it.pos.y, w: it.metrics.width, h: it.metrics.height }]))""")


def overlapping(boxes: dict) -> list[tuple[str, str]]:
    """Pairs of cards that cover each other."""
    ids = sorted(boxes)
    pairs = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            p, q = boxes[a], boxes[b]
            if p["x"] < q["x"] + q["w"] and q["x"] < p["x"] + p["w"] and p["y"] < q["y"] + q["h"] and q["y"] < p["y"] + p["h"]:
                pairs.append((a, b))
    return pairs
