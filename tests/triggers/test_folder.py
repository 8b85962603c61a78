"""The folder trigger with real files and a real watchdog observer."""

from __future__ import annotations

import os
import threading
import time

from server.triggers.base import FeedOutcome
from server.triggers.folder import FolderTrigger
from server.engine.triggerspec import parse_triggers


def _trigger(**extra):
    (t,), problems = parse_triggers([{"id": "inbox", "kind": "folder", "path": "inbox", "pattern": "*.log",
                                      "to": "ingest.log", **extra}])
    assert not problems
    return t


class Feed:
    def __init__(self, fail_on: str | None = None):
        self.seen: list[tuple[str, bytes]] = []
        self.fail_on = fail_on
        self.event = threading.Event()

    def __call__(self, path, origin):
        self.seen.append((origin["file"], path.read_bytes()))
        self.event.set()
        if self.fail_on and self.fail_on in origin["file"]:
            return FeedOutcome(ok=False, run_id="r-bad", failed_node="ingest", message="exited with code 3")
        return FeedOutcome(ok=True, run_id=f"r-{len(self.seen)}")


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_a_file_still_being_written_is_not_taken_early(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    feed = Feed()
    ft = FolderTrigger(_trigger(settle_ms=400), folder=inbox, feed=feed, poll_s=0.05)
    ft.start()
    try:
        with open(inbox / "a.log", "wb") as fh:
            for i in range(8):  # grows for ~0.8 s, in steps shorter than the settle time
                fh.write(f"line {i}\n".encode())
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(0.1)
            assert feed.seen == []  # never taken while it grows
        assert wait_for(lambda: feed.seen)
        assert feed.seen[0][1].count(b"\n") == 8  # the whole file, not a prefix
        assert wait_for(lambda: (inbox / "done" / "a.log").exists())
    finally:
        ft.stop()


def test_moved_in_files_go_at_once_and_failures_say_why(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    feed = Feed(fail_on="bad")
    ft = FolderTrigger(_trigger(settle_ms=60_000), folder=inbox, feed=feed, poll_s=0.05)
    ft.start()
    try:
        for name in ("good.log", "bad.log"):
            (inbox / f".{name}.tmp").write_text("x 1\n")  # the usual atomic writer: a hidden name, then a rename
            os.rename(inbox / f".{name}.tmp", inbox / name)  # complete on arrival: no settle wait
        (inbox / "notes.txt").write_text("not matching")
        assert wait_for(lambda: (inbox / "failed" / "bad.log.error.txt").exists() and (inbox / "done" / "good.log").exists())
        why = (inbox / "failed" / "bad.log.error.txt").read_text()
        assert "run r-bad failed at node `ingest`: exited with code 3" in why
        assert (inbox / "notes.txt").exists() and len(feed.seen) == 2
        status = ft.status()
        assert status["failures"] == 1 and status["runs_started"] == 2
    finally:
        ft.stop()


def test_files_from_while_down_and_a_crash_are_handled_at_start(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / ".processing").mkdir(parents=True)
    (inbox / ".processing" / "crashed.log").write_text("half done\n")
    (inbox / "waiting.log").write_text("arrived while down\n")
    feed = Feed()
    ft = FolderTrigger(_trigger(settle_ms=100), folder=inbox, feed=feed, poll_s=0.05)
    ft.start()
    try:
        assert wait_for(lambda: len(feed.seen) == 2)
        assert feed.seen[0][0] == "crashed.log"  # what was taken before goes first
        assert wait_for(lambda: sorted(p.name for p in (inbox / "done").iterdir()) == ["crashed.log", "waiting.log"])
        assert not any((inbox / ".processing").iterdir())
    finally:
        ft.stop()


def test_a_name_already_done_is_never_overwritten(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "done").mkdir(parents=True)
    (inbox / "done" / "a.log").write_text("first\n")
    (inbox / "a.log").write_text("second\n")
    feed = Feed()
    ft = FolderTrigger(_trigger(settle_ms=0), folder=inbox, feed=feed, poll_s=0.05)
    ft.start()
    try:
        assert wait_for(lambda: (inbox / "done" / "a.1.log").exists())
        assert (inbox / "done" / "a.log").read_text() == "first\n"
    finally:
        ft.stop()
