"""Node output: every line reaches the log file in order (up to the cap), the live view gets a sample that
says what it skipped, and odd output (no final newline, bytes that are not UTF-8, a program killed
mid-line) neither crashes the run nor loses what was written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from server.engine.logs import LiveLog, LogWriter, read_log
from server.engine.model import load_pipeline
from server.engine.process import forget_group, record_group, stop_orphans
from server.engine.runner import RunOptions, Runner
from server.engine.store import Store
from tests.conftest import REPO
from tests.engine.util import shell_node, write_pipeline


def run(path: Path, ws: Path, **opts):
    store = Store.open(ws)
    events = []
    result = Runner(load_pipeline(path, workspace=ws), store=store, workspace=ws, options=RunOptions(**opts),
                    listener=events.append).run()
    log = store.log_path(result.run_id, next(iter(result.order)))
    store.close()
    return result, [e for e in events if e.kind == "log"], Path(log)


def log_lines(path: Path) -> list[tuple[str, str]]:
    """(stream, text) of every line in a log file, read the way the logs route reads it."""
    out, offset = [], 0
    while True:
        lines, nxt = read_log(path, offset, 100_000)
        if not lines:
            return out
        out += [(ln["stream"], ln["text"]) for ln in lines]
        offset = nxt


def python_node(ws: Path, code: str, **extra) -> Path:
    node = {"id": "talk", "runtime": "python", "source": "talk.py", "outputs": [{"name": "out"}], **extra}
    return write_pipeline(ws, {"version": 1, "name": "talk", "nodes": [node]},
                          {"talk.py": code + "\nopen('out.json', 'w').write('[]')\n"})


BURST = 2_000_000


def test_every_line_of_a_two_million_line_burst_is_in_the_log_in_order(workspace):
    path = python_node(workspace, f"import sys\nsys.stdout.write(''.join(f'{{i}}\\n' for i in range({BURST})))\n")
    result, events, log = run(path, workspace)
    assert result.ok, result.nodes["talk"].message
    lines = log_lines(log)
    assert len(lines) == BURST
    assert lines[0] == ("out", "0") and lines[-1] == ("out", str(BURST - 1))
    assert all(text == str(i) for i, (_, text) in enumerate(lines))
    # the live view got a sample, and says how many lines it passed over
    shown = sum(len(e.lines) for e in events)
    skipped = sum(e.skipped for e in events)
    assert shown + skipped == BURST and skipped > 0
    assert events[-1].lines[-1]["text"] == str(BURST - 1), "the newest line always reaches the live view"
    texts = [int(ln["text"]) for e in events for ln in e.lines]
    assert texts == sorted(texts), "live lines keep their order"
    assert max(len(e.lines) for e in events) <= LiveLog(lambda *_: None).keep


def test_a_burst_past_the_cap_keeps_a_whole_prefix_and_counts_the_rest(workspace, monkeypatch):
    monkeypatch.setenv("PIPELOOM_LOG_CAP", "1M")
    n = 300_000
    path = python_node(workspace, f"import sys\nsys.stdout.write(''.join(f'{{i}}\\n' for i in range({n})))\n")
    result, _, log = run(path, workspace, emit_logs=False)
    assert result.ok
    lines = log_lines(log)
    kept = [text for stream, text in lines if stream == "out"]
    assert kept == [str(i) for i in range(len(kept))] and 0 < len(kept) < n
    meta = [text for stream, text in lines if stream == "meta"]
    assert "log truncated at 1,048,576 bytes" in meta[0]
    dropped = int(meta[-1].split("] ", 1)[1].split(" lines")[0].replace(",", ""))
    assert len(kept) + dropped == n
    assert log.stat().st_size <= 1024 * 1024 + 4096


def test_stdout_and_stderr_both_kept_each_in_order(workspace):
    code = ("import sys\n"
            "for i in range(5000):\n"
            "    print(f'o{i}')\n"
            "    print(f'e{i}', file=sys.stderr)\n")
    result, events, log = run(python_node(workspace, code), workspace)
    assert result.ok
    lines = log_lines(log)
    assert [t for s, t in lines if s == "out"] == [f"o{i}" for i in range(5000)]
    assert [t for s, t in lines if s == "err"] == [f"e{i}" for i in range(5000)]
    live = [(ln["stream"], ln["text"]) for e in events for ln in e.lines]
    assert ("err", "e4999") in live and ("out", "o4999") in live


def test_last_line_without_newline_cr_and_bad_utf8_are_kept(workspace):
    n, f = shell_node("odd", "printf 'crlf\\r\\n'\nprintf 'bad \\377\\376 bytes\\n'\nprintf 'tab\\there\\n'\n"
                             "printf 'caf\\303\\251\\n'\necho '[]' > out.json\nprintf 'no newline at the end'\n")
    path = write_pipeline(workspace, {"version": 1, "name": "odd", "nodes": [n]}, f)
    result, events, log = run(path, workspace)
    assert result.ok
    texts = [t for s, t in log_lines(log) if s == "out"]
    assert texts == ["crlf", "bad \ufffd\ufffd bytes", "tab\there", "café", "no newline at the end"]
    assert [ln["text"] for e in events for ln in e.lines] == texts


def test_a_program_killed_mid_line_keeps_what_it_wrote(workspace):
    n, f = shell_node("stuck", "echo started\nprintf 'half a li'\nsleep 300\n", timeout=1)
    path = write_pipeline(workspace, {"version": 1, "name": "stuck", "nodes": [n]}, f)
    result, _, log = run(path, workspace)
    assert result.nodes["stuck"].status == "timed_out"
    lines = log_lines(log)
    assert ("out", "started") in lines and ("out", "half a li") in lines
    assert any(s == "meta" and "timed out after 1s" in t for s, t in lines)


def test_live_log_sends_a_trickle_whole_and_samples_a_burst():
    sent = []
    live = LiveLog(lambda lines, skipped: sent.append(([ln["text"] for ln in lines], skipped)),
                   interval=3600, keep=3)
    live.add("out", b"first\n", 1.0)
    assert sent == [(["first"], 0)], "a line after a quiet spell goes out at once"
    live.add("out", b"a\nb\nc\n", 2.0)
    live.add("err", b"d\ne\n", 2.0)
    live.add("out", b"f\ng\n", 3.0)
    assert len(sent) == 1 and live.due() > 0, "within the interval lines are held"
    live.flush()
    assert sent[1] == (["e", "f", "g"], 4)
    live.flush()
    assert len(sent) == 2, "nothing held, nothing sent"


def test_log_writer_block_cut_at_the_cap_on_a_line_boundary(tmp_path):
    w = LogWriter(tmp_path / "x.log", cap=100)
    assert w.write_block("out", b"".join(b"line %d\n" % i for i in range(50)), ts=1.0) > 0
    w.write_block("out", b"more\n", ts=2.0)
    w.close()
    raw = (tmp_path / "x.log").read_bytes()
    body = raw.split(b"\tmeta\t")[0].rsplit(b"\n", 1)[0] + b"\n"
    assert len(body) <= 100 and body.endswith(b"\n")
    lines = [ln["text"] for ln in read_log(tmp_path / "x.log")[0] if ln["stream"] == "out"]
    assert lines == [f"line {i}" for i in range(len(lines))]
    assert w.lines + w.dropped == 51


def test_recovery_stops_a_noted_group_even_without_its_marker(workspace, tmp_path):
    """A node that scrubs its environment (env -i) loses the marker; the group note still finds it."""
    groups = tmp_path / "runs" / "20260101-000000-gone" / "_groups"
    scrubbed = subprocess.Popen(["env", "-i", "sleep", "300"], start_new_session=True)
    done = subprocess.Popen(["env", "-i", "sleep", "300"], start_new_session=True)
    try:
        record_group(groups, "a", scrubbed.pid, "20260101-000000-gone/a/1")
        record_group(groups, "b", done.pid, "20260101-000000-gone/b/1")
        forget_group(groups, "b")  # b finished: its note no longer counts
        assert stop_orphans(groups) >= 1
        assert scrubbed.wait(5) == -signal.SIGKILL
        time.sleep(0.2)
        assert done.poll() is None, "a forgotten note is left alone"
    finally:
        for p in (scrubbed, done):
            p.kill()
            p.wait()


def test_runs_in_one_process_share_one_guard_that_still_stops_them_on_kill_9(workspace, tmp_path):
    """Two runs in one long-lived process; kill -9 during the second: its node's escapee dies too."""
    pidfile = tmp_path / "pid"
    quick, f1 = shell_node("quick", "echo '[]' > out.json\n")
    slow, f2 = shell_node("slow", f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' </dev/null >/dev/null 2>&1 &)\n"
                                  "sleep 300\n")
    write_pipeline(workspace, {"version": 1, "name": "q", "nodes": [quick]}, f1, name="q.pipeline.yaml")
    write_pipeline(workspace, {"version": 1, "name": "s", "nodes": [slow]}, f2, name="s.pipeline.yaml")
    script = ("import sys\n"
              "from server.engine.model import load_pipeline\n"
              "from server.engine.runner import Runner\n"
              "from server.engine.store import Store\n"
              "from server.engine import process\n"
              "store = Store.open('.')\n"
              "Runner(load_pipeline('q.pipeline.yaml', workspace='.'), store=store, workspace='.').run()\n"
              "first = process._watcher._proc.pid\n"
              "r = Runner(load_pipeline('s.pipeline.yaml', workspace='.'), store=store, workspace='.')\n"
              "r.start()\n"
              "import time\n"
              "while r.states['slow'].status != 'running': time.sleep(0.01)\n"
              "print(first, process._watcher._proc.pid, flush=True)\n"
              "time.sleep(300)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=workspace, env=env, stdout=subprocess.PIPE, text=True)
    try:
        first, second = proc.stdout.readline().split()
        assert first == second, "the second run used the same guard"
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "the escapee never started"
            time.sleep(0.05)
        escapee = int(pidfile.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(escapee):
            time.sleep(0.05)
        alive = _alive(escapee)
        if alive:
            os.kill(escapee, signal.SIGKILL)
        assert not alive, "the escapee outlived a kill -9 of Pipeloom"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_a_node_that_prints_nothing_has_no_log_file_and_reads_as_empty(workspace):
    quiet, f1 = shell_node("quiet", "echo '[]' > out.json\n")
    loud, f2 = shell_node("loud", "echo one\necho '[]' > out.json\n")
    broke, f3 = shell_node("broke", "exit 3\n")
    path = write_pipeline(workspace, {"version": 1, "name": "q", "nodes": [quiet, loud, broke]}, {**f1, **f2, **f3})
    store = Store.open(workspace)
    result = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace).run()
    logs = {n: Path(store.log_path(result.run_id, n)) for n in ("quiet", "loud", "broke")}
    store.close()
    assert not logs["quiet"].exists() and read_log(logs["quiet"]) == ([], 0)
    assert log_lines(logs["loud"]) == [("out", "one")]
    assert "exited with code 3" in logs["broke"].read_text(), "Pipeloom's own lines still make the file"
    shown = subprocess.run([sys.executable, "-m", "server.cli", "logs", result.run_id, "quiet"], cwd=workspace,
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert shown.returncode == 0 and shown.stdout == ""


def test_a_group_noted_with_the_spawn_clock_is_stopped_and_a_reused_pid_is_not(workspace, tmp_path):
    """The start time a node's note carries comes from the clock around the spawn, not from /proc; recovery
    still tells the node's group from a process that later got the same pid."""
    from server.engine.logs import NodeOutput
    from server.engine.process import NodeProcess, process_start_time

    groups = tmp_path / "runs" / "20260101-000000-gone" / "_groups"
    env = {**os.environ, "PIPELOOM_RUN_ID": "20260101-000000-gone", "PIPELOOM_NODE_ID": "a"}
    node = NodeProcess(["env", "-i", "sleep", "300"], cwd=str(tmp_path), env=env,
                       sink=NodeOutput(LogWriter(tmp_path / "a.log")))
    other = subprocess.Popen(["env", "-i", "sleep", "300"], start_new_session=True)
    try:
        first, _, last = node.started.partition("~")
        assert int(first) <= int(process_start_time(node.pgid)) <= int(last or first)
        record_group(groups, "a", node.pgid, node.token, node.started)
        earlier = int(process_start_time(other.pid)) - 500  # as if noted for an older process with that pid
        record_group(groups, "b", other.pid, "20260101-000000-gone/b/1", f"{earlier}~{earlier + 1}")
        assert stop_orphans(groups) >= 1
        assert node.proc.wait(5) == -signal.SIGKILL
        time.sleep(0.2)
        assert other.poll() is None, "a process whose start time is not the noted one is left alone"
    finally:
        for p in (node.proc, other):
            p.kill()
            p.wait()
        node.finish_reading()


def test_recovery_reads_group_notes_in_the_older_layout_too(workspace, tmp_path):
    """Runs noted before `_groups.txt` kept their notes in `_groups/groups.txt`; recovery still stops them."""
    groups = tmp_path / "runs" / "20260101-000000-old" / "_groups"
    groups.mkdir(parents=True)
    leftover = subprocess.Popen(["env", "-i", "sleep", "300"], start_new_session=True)
    try:
        from server.engine.process import process_start_time

        (groups / "groups.txt").write_text(f"a {leftover.pid} {process_start_time(leftover.pid)} tok\n")
        assert stop_orphans(groups) >= 1
        assert leftover.wait(5) == -signal.SIGKILL
        assert not (groups / "groups.txt").exists()
    finally:
        leftover.kill()
        leftover.wait()


def test_the_live_view_ends_with_the_last_lines_of_each_stream():
    """stderr read last in bulk does not crowd out stdout's closing line; every line is shown or counted."""
    sent = []
    live = LiveLog(lambda lines, skipped: sent.append(([(ln["stream"], ln["text"]) for ln in lines], skipped)),
                   interval=3600, keep=4)
    live.add("out", b"start\n", 1.0)
    live.add("out", b"o1\no2\nsummary\n", 2.0)
    live.add("err", b"".join(b"e%d\n" % i for i in range(10)), 3.0)
    live.flush()
    lines, skipped = sent[-1]
    assert ("out", "summary") in lines and lines[-1] == ("err", "e9")
    assert len(lines) == 4 and len(lines) + skipped == 13
    assert lines.index(("out", "summary")) < lines.index(("err", "e9")), "the order they were read in"


def test_python_output_shows_live_while_the_program_runs_without_running_unbuffered(workspace, monkeypatch):
    """A Python node's stdout keeps its block buffer (one write per block, not two per print), yet a line
    printed before a pause reaches the live view during the pause, and stderr does not overtake what stdout
    held before it wrote."""
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    code = ("import sys, time\n"
            "print('buffered' if not sys.stdout.write_through else 'unbuffered')\n"
            "print('before the pause')\n"
            "time.sleep(1.5)\n"
            "print('o1')\n"
            "print('e1', file=sys.stderr)\n"
            "print('o2')\n")
    seen: list[tuple[float, str]] = []
    store = Store.open(workspace)
    events = []

    def listen(e):
        events.append(e)
        if e.kind == "log":
            seen.extend((time.monotonic(), ln["text"]) for ln in e.lines)

    path = python_node(workspace, code)
    t0 = time.monotonic()
    result = Runner(load_pipeline(path, workspace=workspace), store=store, workspace=workspace,
                    listener=listen).run()
    store.close()
    assert result.ok, result.nodes["talk"].message
    ended = time.monotonic() - t0
    texts = [t for _, t in seen]
    assert texts[:2] == ["buffered", "before the pause"]
    shown_at = next(at for at, t in seen if t == "before the pause") - t0
    assert shown_at < ended - 1.0, f"the line came at {shown_at:.2f}s of a {ended:.2f}s run, not during the pause"
    assert sorted(texts[2:]) == ["e1", "o1", "o2"]
    assert texts.index("o1") < texts.index("e1"), "what stdout held was flushed before stderr wrote"


def test_a_python_node_asking_for_unbuffered_output_gets_it_and_its_own_sitecustomize_still_runs(workspace,
                                                                                                  monkeypatch):
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    own = workspace / "own_site"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITE_RAN'] = 'yes'\n")
    code = ("import os, sys\n"
            "print('unbuffered' if sys.stdout.write_through else 'buffered', os.environ.get('OWN_SITE_RAN'))\n")
    path = python_node(workspace, code, env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(own)})
    result, events, log = run(path, workspace)
    assert result.ok, result.nodes["talk"].message
    assert ("out", "unbuffered yes") in log_lines(log)
