"""The schedule trigger on a fake clock: fires on its ticks, remembers them across restarts, handles missed ones."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from server.triggers.base import FeedOutcome
from server.triggers.schedule import ScheduleTrigger, due, newest_tick
from server.engine.triggerspec import parse_triggers
from server.triggers.state import TriggerState


def ts(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _trigger(**extra):
    (t,), problems = parse_triggers([{"id": "nightly", "kind": "schedule", "cron": "0 2 * * *", **extra}])
    assert not problems
    return t


class Feed:
    def __init__(self):
        self.calls = []

    def __call__(self, path, origin):
        self.calls.append((path, origin))
        return FeedOutcome(ok=True, run_id=f"run-{len(self.calls)}")


def test_newest_tick_honours_the_time_zone():
    now = ts("2026-07-01T10:00:00")
    assert newest_tick("0 2 * * *", "UTC", now) == ts("2026-07-01T02:00:00")
    assert newest_tick("0 2 * * *", "Europe/Paris", now) == ts("2026-07-01T02:00:00", "Europe/Paris")


def test_due_rules():
    tick = ts("2026-07-01T02:00:00")
    assert due("0 2 * * *", "UTC", "skip", None, tick + 1) == (tick, False, tick)
    assert due("0 2 * * *", "UTC", "skip", None, tick + 3600)[0] is None  # a new trigger does not fire the past
    assert due("0 2 * * *", "UTC", "skip", tick, tick + 3600) == (None, False, tick)
    missed_at = tick + 86400 + 3600  # down over the next night's tick
    assert due("0 2 * * *", "UTC", "skip", tick, missed_at) == (None, True, tick + 86400)
    assert due("0 2 * * *", "UTC", "run_once", tick, missed_at) == (tick + 86400, True, tick + 86400)


def test_fires_once_per_tick_and_never_twice_across_a_restart(tmp_path):
    state = TriggerState(tmp_path / "state")
    clock = Clock(ts("2026-07-01T01:59:00"))
    feed = Feed()
    s = ScheduleTrigger(_trigger(), state=state, feed=feed, input_format=None, workdir=tmp_path, clock=clock)
    assert s.check() is None
    clock.now = ts("2026-07-01T02:00:00.2")
    assert s.check() == "run-1"
    assert feed.calls[0][1]["scheduled_for"] == "2026-07-01T02:00:00Z"
    clock.now += 5
    assert s.check() is None  # the same tick again
    # a restart: a new object reading the same state file
    again = ScheduleTrigger(_trigger(), state=TriggerState(tmp_path / "state"), feed=feed, input_format=None,
                            workdir=tmp_path, clock=clock)
    assert again.check() is None
    assert len(feed.calls) == 1
    clock.now = ts("2026-07-02T02:00:10")
    assert again.check() == "run-2"


def test_missed_ticks_skip_or_run_once(tmp_path):
    for missed, expected in (("skip", 0), ("run_once", 1)):
        state = TriggerState(tmp_path / missed)
        state.update(last_tick=ts("2026-07-01T02:00:00"))
        feed = Feed()
        clock = Clock(ts("2026-07-04T09:00:00"))  # three nightly ticks passed while down
        s = ScheduleTrigger(_trigger(missed=missed), state=state, feed=feed, input_format=None, workdir=tmp_path,
                            clock=clock)
        s.check()
        s.check()
        assert len(feed.calls) == expected, missed
        if expected:
            assert feed.calls[0][1]["missed"] is True
        assert state.read()["last_tick"] == ts("2026-07-04T02:00:00")


def test_a_paused_schedule_lets_ticks_pass(tmp_path):
    state = TriggerState(tmp_path / "s")
    state.update(paused=True, last_tick=ts("2026-06-30T02:00:00"))
    feed = Feed()
    s = ScheduleTrigger(_trigger(), state=state, feed=feed, input_format=None, workdir=tmp_path,
                        clock=Clock(ts("2026-07-01T02:00:01")))
    s.state = "paused"
    assert s.check() is None and feed.calls == []
    assert state.read()["last_tick"] == ts("2026-07-01T02:00:00")


def test_a_schedule_with_an_entry_input_hands_it_the_tick(tmp_path):
    (t,), _ = parse_triggers([{"id": "tick", "kind": "schedule", "cron": "*/5 * * * *", "to": "ingest.log"}])
    feed = Feed()
    s = ScheduleTrigger(t, state=TriggerState(tmp_path / "s"), feed=feed, input_format="ndjson",
                        workdir=tmp_path, clock=Clock(ts("2026-07-01T10:05:00")))
    s.check()
    path = feed.calls[0][0]
    assert '"scheduled_for": "2026-07-01T10:05:00Z"' in path.read_text()
