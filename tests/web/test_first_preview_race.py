"""The first previews after the studio starts arrive together (what came in and what went out of a
step), and each request imports the preview module lazily, in its own thread. A request that arrives
while another is still importing it must wait for that import and then get the real module, not a
half-made one: it used to get the old `server.engine.preview` alias module itself and answer 500
("cannot import name 'preview_file'").

The test holds the first import open inside the preview module's loader, lets a second request
start and wait on the import lock, then lets the first import finish. It runs in a fresh interpreter,
so nothing is imported yet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent(r'''
    import importlib._bootstrap as bootstrap
    import importlib.abc
    import json
    import sys
    import tempfile
    import threading
    import time
    from pathlib import Path

    from server.web import api

    SLOW = "server.engine.data.preview"
    assert SLOW not in sys.modules, "the preview module is imported already; the race cannot happen"
    entered = threading.Event()
    release = threading.Event()


    class Hold(importlib.abc.MetaPathFinder):
        """Finds the preview module as usual, but its loading waits for `release`."""

        def find_spec(self, name, path, target=None):
            if name != SLOW:
                return None
            sys.meta_path.remove(self)
            spec = bootstrap._find_spec(name, path, target)
            exec_module = spec.loader.exec_module

            def held(module):
                entered.set()
                release.wait(60)
                exec_module(module)

            spec.loader.exec_module = held
            return spec


    sys.meta_path.insert(0, Hold())

    data = Path(tempfile.mkdtemp()) / "rows.json"
    data.write_text(json.dumps([{"n": i} for i in range(3)]))


    def first_import():
        import server.engine.preview  # noqa: F401  (the old name, as any other caller may use it)


    answers = {}


    def request():
        try:
            answers["page"] = api.indexed_page(data, "json", 0, 10, None, None)
        except Exception as exc:  # the failure this test is about
            answers["error"] = f"{type(exc).__name__}: {exc}"


    def waiting_on_an_import() -> bool:
        for name in ("server.engine.preview", SLOW):
            ref = bootstrap._module_locks.get(name)
            lock = ref() if ref else None
            waiters = getattr(lock, "waiters", 0) if lock else 0
            if (len(waiters) if isinstance(waiters, list) else waiters) > 0:
                return True
        return False


    a = threading.Thread(target=first_import)
    a.start()
    assert entered.wait(60), "the first import never reached the preview module"
    b = threading.Thread(target=request)
    b.start()
    while b.is_alive() and not waiting_on_an_import():
        time.sleep(0.01)
    release.set()
    a.join(60)
    b.join(60)
    print(json.dumps(answers, default=str))
''')


def test_a_preview_asked_for_while_the_module_is_being_imported_gets_the_page():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in answers, answers["error"]
    assert [row["n"] for row in answers["page"]["items"]] == [0, 1, 2], answers
