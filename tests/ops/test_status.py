"""`assistant status`: what runs where, what waits, what failed, from Redis and the database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.devtools.redis_server import RedisServer
from tests.support.client import WsClient
from tests.support.data import make_account, make_project
from tests.support.processes import REPO, StackFactory, wait_for


def status(factory: StackFactory, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "status", *args],
        cwd=REPO,
        env=factory.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_json(factory: StackFactory) -> dict[str, Any]:
    done = status(factory, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_shows_a_running_turn_and_the_worker_holding_it(
    isolated: StackFactory, project_dir: Path
) -> None:
    stack = isolated.stack()
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        ws.send(type="message", content="[[text:200]] [[slow:30]]")
        first = ws.recv_until(lambda m: m["type"] == "text" and "seq" in m)
        turn_id = first[-1]["turn_id"]
        report = status_json(isolated)
        text = status(isolated).stdout
        ws.until_terminal(timeout=60)

    [turn] = report["active_turns"]
    assert turn == {
        **turn,
        "turn_id": turn_id,
        "conversation_id": conv_id,
        "user_id": acct.user_id,
        "status": "running",
        "attempt": 1,
    }
    assert turn["age_s"] >= 0 and turn["running_s"] >= 0
    [worker] = report["workers"]
    assert worker["name"] == turn["worker"]
    assert worker["turns"] == 1 and worker["state"] == "taking turns"
    assert worker["node"].endswith("@test") and worker["metrics"].startswith("http://127.0.0.1:")
    assert report["queue"] == {"name": "celery", "depth": 0}
    assert report["problems"] == []
    assert f"turn {turn_id}" in text and "running" in text and worker["name"] in text

    # Finished: no longer active, and the worker holds nothing.
    after = status_json(isolated)
    assert after["active_turns"] == [] and after["workers"][0]["turns"] == 0


def test_lists_failed_turns_of_the_last_hour_with_their_reason(
    isolated: StackFactory, project_dir: Path
) -> None:
    stack = isolated.stack()
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        frames = ws.ask("[[error:529]]")
    turn_id = frames[-1]["turn_id"]
    report = status_json(isolated)
    [failed] = report["failed_last_hour"]
    assert failed["turn_id"] == turn_id and "overloaded" in failed["reason"]
    text = status(isolated).stdout
    assert "1 failed" in text and "overloaded" in text


def test_reports_what_it_cannot_read_and_exits_1(
    isolated: StackFactory, own_redis: RedisServer
) -> None:
    own_redis.stop()
    try:
        done = status(isolated, "--json")
    finally:
        own_redis.start()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert [p.split(":")[0] for p in report["problems"]] == ["redis"]
    assert report["active_turns"] == []  # the database part still came through
    wait_for(lambda: status(isolated).returncode == 0, 10, "status with Redis back")
