"""`assistant flower`: Flower for this service's broker, behind a login unless on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.flower import login_problem
from tests.support.client import WsClient
from tests.support.data import make_account, make_project
from tests.support.processes import REPO, StackFactory, free_port, wait_for

LOGIN = ("ops", "flower-s3cret")


def test_flower_lists_the_worker_and_finished_turns_to_logged_in_users_only(
    isolated: StackFactory, project_dir: Path
) -> None:
    stack = isolated.stack()
    port = free_port()
    flower = isolated.spawn(
        ["flower", "--port", str(port)],
        "flower",
        {"ASSISTANT_FLOWER_BASIC_AUTH": ":".join(LOGIN), "ASSISTANT_LOG_FORMAT": "json"},
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert flower.alive(), flower.log()[-3000:]
        try:
            return httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, 30, "Flower to listen")
    assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401
    assert httpx.get(f"{base}/api/tasks", auth=("ops", "wrong"), timeout=10).status_code == 401
    # The password reached Flower through its environment, never its command line.
    assert LOGIN[1] not in str(flower.popen.args)

    # Workers send no task events by default; Flower switches them on (every 5 s).
    wait_for(lambda: "enabled by remote" in stack.worker.log(), 30, "Flower to enable events")

    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        turn_id = ws.ask("[[text:5]]")[-1]["turn_id"]

    def finished_turn() -> dict[str, Any] | None:
        tasks = httpx.get(f"{base}/api/tasks", auth=LOGIN, timeout=10).json()
        for task in tasks.values():
            if task.get("name") == "turn.run" and task.get("state") == "SUCCESS":
                return dict(task)
        return None

    wait_for(finished_turn, 30, "Flower to see the finished turn.run")
    task = finished_turn()
    assert task is not None
    assert task["args"].startswith(f"[{turn_id}, 1") or task["args"].startswith(f"({turn_id}, 1")

    workers = httpx.get(f"{base}/api/workers?refresh=1", auth=LOGIN, timeout=20).json()
    assert len(workers) == 1
    assert next(iter(workers)).endswith("@test") and task["worker"] == next(iter(workers))
    # Its log is ours: JSON lines.
    assert '"process": "flower"' in flower.log()


def test_flower_refuses_to_listen_beyond_loopback_without_a_login(
    isolated: StackFactory,
) -> None:
    env = isolated.env()
    for name in ("ASSISTANT_FLOWER_BASIC_AUTH", "FLOWER_BASIC_AUTH", "FLOWER_AUTH_PROVIDER"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "flower", "--address", "0.0.0.0", "--port", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: Flower on 0.0.0.0 needs a login: set ASSISTANT_FLOWER_BASIC_AUTH=user:password "
        "(or Flower's OAuth settings, e.g. FLOWER_AUTH_PROVIDER and FLOWER_AUTH), "
        "or listen on 127.0.0.1"
    ]


@pytest.mark.parametrize(
    ("address", "basic_auth", "environ", "allowed"),
    [
        ("127.0.0.1", "", {}, True),
        ("localhost", "", {}, True),
        ("::1", "", {}, True),
        ("0.0.0.0", "", {}, False),
        ("", "", {}, False),  # every interface
        ("0.0.0.0", "ops:pw", {}, True),
        ("0.0.0.0", "", {"FLOWER_BASIC_AUTH": "a:b"}, True),
        ("0.0.0.0", "", {"FLOWER_AUTH_PROVIDER": "flower.views.auth.GithubLoginHandler"}, True),
        ("127.0.0.1", "no-password", {}, False),  # a malformed login is refused anywhere
    ],
)
def test_login_rule(address: str, basic_auth: str, environ: dict[str, str], allowed: bool) -> None:
    assert (login_problem(address, basic_auth, environ) is None) is allowed
