"""Liveness and readiness as an operator meets them: no worker, Redis gone and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from shared.devtools.redis_server import RedisServer
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.metrics import scrape, value
from tests.support.processes import Api, StackFactory, wait_for


def readiness(api: Api) -> tuple[int, dict[str, Any]]:
    resp = httpx.get(f"{api.base_url}/readyz", timeout=15)
    return resp.status_code, resp.json()


def test_healthz_answers_whatever_the_dependencies_do(
    isolated: StackFactory, own_redis: RedisServer
) -> None:
    api = isolated.api()
    own_redis.stop()
    try:
        resp = httpx.get(f"{api.base_url}/healthz", timeout=5)
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    finally:
        own_redis.start()


def test_readiness_names_what_is_missing_and_recovers(
    isolated: StackFactory, own_redis: RedisServer, project_dir: Path
) -> None:
    api = isolated.api()
    assert readiness(api) == (
        503,
        {
            "status": "not ready",
            "database": "ok",
            "redis": "ok",
            "workers": 0,
            "missing": ["workers"],
        },
    )

    isolated.worker()
    wait_for(lambda: readiness(api)[0] == 200, 20, "readiness with a worker")
    assert readiness(api)[1] == {
        "status": "ready",
        "database": "ok",
        "redis": "ok",
        "workers": 1,
        "missing": [],
    }

    own_redis.stop()
    code, body = readiness(api)
    assert code == 503
    assert body["redis"] == "unavailable" and body["database"] == "ok"
    assert body["missing"] == ["redis", "workers"]

    own_redis.start()
    # The worker reconnects and announces itself again (Redis lost everything).
    wait_for(lambda: readiness(api)[0] == 200, 30, "readiness after Redis returned")
    errors = scrape(f"{api.base_url}/metrics")
    assert value(errors, "assistant_redis_errors_total", component="readiness") >= 1

    # And new work succeeds.
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        frames = ws.ask("[[text:5]]", timeout=60)
    assert frames[-1]["type"] == "response_done"
    assert text_of(frames) == "word1 word2 word3 word4 word5"
