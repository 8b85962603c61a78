"""`pipeloom triggers`, `keys` and `gc` read as a newcomer needs: what is off and why, a curl that fits, typos named."""

from __future__ import annotations

import json

from server.engine.demo import create_demo
from tests.conftest import pipeloom_cmd


def test_triggers_list_says_which_trigger_is_off_and_why(workspace, monkeypatch):
    monkeypatch.delenv("PIPELOOM_KAFKA_BROKERS", raising=False)
    create_demo(workspace)
    r = pipeloom_cmd("triggers", "list", cwd=workspace, env={"PIPELOOM_KAFKA_BROKERS": ""})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("readings" in ln and " off " in ln for ln in lines), r.stdout
    assert any("invoke" in ln and " run " in ln for ln in lines), r.stdout
    assert "sensor-alerts/readings is off: set PIPELOOM_KAFKA_BROKERS" in r.stdout
    rows = json.loads(pipeloom_cmd("triggers", "list", "--json", cwd=workspace,
                                   env={"PIPELOOM_KAFKA_BROKERS": "127.0.0.1:9"}).stdout)
    assert {t["id"]: t["off"] for t in rows} == {"readings": None, "invoke": None}


def test_keys_create_prints_a_curl_for_the_inputs_format(workspace):
    create_demo(workspace)
    r = pipeloom_cmd("keys", "create", "sensor-alerts", "--trigger", "invoke", cwd=workspace)
    assert r.returncode == 0, r.stderr
    assert "takes text" in r.stdout and "Content-Type: text/plain" in r.stdout and "--data-binary" in r.stdout
    # the body is the input's own sample, named from where the command ran, so the curl works as printed
    assert "--data-binary @sensor-alerts/sensors.log " in r.stdout, r.stdout
    assert "use the address it printed" in r.stdout


def test_a_mistyped_pipeline_id_is_an_error_not_an_empty_answer(workspace):
    create_demo(workspace)
    for args in (("runs", "--pipeline", "sensor-alert"), ("gc", "--pipeline", "sensor-alert"),
                 ("triggers", "pause", "sensor-alert", "invoke")):
        r = pipeloom_cmd(*args, cwd=workspace)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "did you mean `sensor-alerts`" in r.stderr, (args, r.stderr)
    r = pipeloom_cmd("triggers", "pause", "sensor-alerts", "invoek", cwd=workspace)
    assert r.returncode == 2 and "did you mean `invoke`" in r.stderr


def test_runs_says_when_it_shows_only_the_newest(workspace):
    from tests.engine.util import chain

    path = chain(workspace, [("a", "echo '[1]' > out.json\n")])
    for _ in range(3):
        assert pipeloom_cmd("run", str(path), "--force", cwd=workspace).returncode == 0
    r = pipeloom_cmd("runs", "--limit", "2", cwd=workspace)
    assert "(the newest 2 of 3 runs; show more with --limit N)" in r.stdout, r.stdout
    assert "newest" not in pipeloom_cmd("runs", cwd=workspace).stdout


def test_revoking_a_revoked_key_says_so(workspace):
    create_demo(workspace)
    assert pipeloom_cmd("keys", "create", "sensor-alerts", "--name", "k", cwd=workspace).returncode == 0
    first = pipeloom_cmd("keys", "revoke", "k", cwd=workspace)
    again = pipeloom_cmd("keys", "revoke", "k", cwd=workspace)
    assert first.returncode == again.returncode == 0
    assert "revoked key `k`" in first.stdout and "was already revoked" in again.stdout


def test_pause_and_resume_say_when_nothing_changes(workspace):
    create_demo(workspace)
    resumed = pipeloom_cmd("triggers", "resume", "sensor-alerts", "invoke", cwd=workspace)
    assert resumed.returncode == 0 and "already running (not paused); nothing changed" in resumed.stdout
    assert "paused trigger `invoke`" in pipeloom_cmd("triggers", "pause", "sensor-alerts", "invoke",
                                                    cwd=workspace).stdout
    again = pipeloom_cmd("triggers", "pause", "sensor-alerts", "invoke", cwd=workspace)
    assert "already paused; nothing changed" in again.stdout
    assert "resumed trigger `invoke`" in pipeloom_cmd("triggers", "resume", "sensor-alerts", "invoke",
                                                     cwd=workspace).stdout
