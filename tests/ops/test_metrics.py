"""Prometheus metrics: the values move when turns run, and /metrics is not open to anyone.

Each test scrapes the real API's /metrics and the real worker's own metrics server (found
through the worker's presence in Redis), runs turns through the whole stack, and compares.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.db import make_engine
from shared.devtools.redis_server import RedisServer
from shared.workers import WorkerInfo, alive_workers
from tests.support.client import WsClient, turn_frames
from tests.support.data import make_account, make_project
from tests.support.metrics import Samples, scrape, value
from tests.support.processes import StackFactory, wait_for


def workers_of(redis_url: str) -> list[WorkerInfo]:
    async def read() -> list[WorkerInfo]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            return await alive_workers(redis)
        finally:
            await redis.aclose()

    return asyncio.run(read())


def worker_metrics_url(redis_url: str) -> str:
    """The metrics server of the one worker announced in this Redis."""
    wait_for(lambda: len(workers_of(redis_url)) == 1, 20, "the worker's presence")
    url = workers_of(redis_url)[0].metrics_url
    assert url is not None
    return url


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def wire_size(frames: list[dict[str, Any]]) -> int:
    return sum(len(json.dumps(f, separators=(",", ":"))) for f in frames)


class TestTurnMetrics:
    def test_a_turn_with_a_tool_moves_api_and_worker_metrics(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        api_url = f"{stack.api.base_url}/metrics"
        worker_url = worker_metrics_url(own_redis.url)
        acct = make_account()
        project = make_project(project_dir)
        with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            api0, w0 = scrape(api_url), scrape(worker_url)
            assert value(api0, "assistant_websockets_open") == 1
            frames = ws.ask('[[tool:Read {"file_path": "README.md"}]] [[text:30]]')
            api1, w1 = scrape(api_url), scrape(worker_url)
        turn = turn_frames(frames)
        assert turn[-1]["type"] == "response_done"

        # The worker ended it, timed it and ran its tool.
        assert delta(w0, w1, "assistant_turns_total", outcome="complete", how="completed") == 1
        assert delta(w0, w1, "assistant_turn_first_chunk_seconds_count") == 1
        assert delta(w0, w1, "assistant_turn_duration_seconds_count", outcome="completed") == 1
        assert delta(w0, w1, "assistant_turn_duration_seconds_sum", outcome="completed") > 0
        assert delta(w0, w1, "assistant_tool_calls_total", tool="Read", outcome="ok") == 1
        published = [f for f in turn if f["type"] != "response_done"]  # the ending's is counted
        assert delta(w0, w1, "assistant_chunks_published_total", type="text") == len(
            [f for f in published if f["type"] == "text"]
        )

        # The API relayed every frame the client got, byte for byte.
        for kind in ("message_accepted", "text", "tool_call", "response_done"):
            sent = len([f for f in frames if f["type"] == kind])
            assert delta(api0, api1, "assistant_chunks_relayed_total", type=kind) == sent
        assert delta(api0, api1, "assistant_chunk_bytes_relayed_total") == wire_size(frames)
        assert delta(api0, api1, "assistant_relay_delay_seconds_count") >= 1
        # The publish time that measures it travels through Redis but never to a client.
        assert not [f for f in frames if "published_at" in f]
        # Gone with the socket.
        wait_for(
            lambda: value(scrape(api_url), "assistant_websockets_open") == 0, 10, "socket count"
        )

    def test_failures_and_cancels_are_counted_by_kind(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        worker_url = worker_metrics_url(own_redis.url)
        acct = make_account()
        project = make_project(project_dir)
        before = scrape(worker_url)
        with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            failed = ws.ask("[[error:529]]")
            ws.start()
            refused = ws.ask('[[tool:Read {"file_path": "../outside.txt"}]] [[text:1]]')
            ws.start()  # a new conversation: the stand-in model reads directives in the history
            ws.send(type="message", content="[[text:2000]] [[slow:20]]")
            ws.recv_until(lambda m: m["type"] == "text" and "seq" in m)
            ws.send(type="cancel")
            cancelled = ws.until_terminal()
        after = scrape(worker_url)
        assert failed[-1]["type"] == "error" and cancelled[-1]["status"] == "cancelled"
        assert delta(before, after, "assistant_model_errors_total", kind="overloaded") == 1
        assert delta(before, after, "assistant_turns_total", outcome="failed", how="failed") == 1
        stopped = delta(before, after, "assistant_turns_total", outcome="cancelled", how="stopped")
        assert stopped == 1
        assert delta(before, after, "assistant_model_errors_total", kind="internal") == 0
        # A tool call the sandbox refuses is an error for the model, not a failed turn.
        assert refused[-1]["type"] == "response_done"
        assert delta(before, after, "assistant_tool_calls_total", tool="Read", outcome="error") == 1
        assert delta(before, after, "assistant_tool_calls_total", tool="Read", outcome="ok") == 0

    def test_queued_and_running_turns_and_queue_depth(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        api = isolated.api()  # no worker yet: the turn waits in the broker's queue
        api_url = f"{api.base_url}/metrics"
        acct = make_account()
        project = make_project(project_dir)
        with WsClient(f"{api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            ws.send(type="message", content="[[text:200]] [[slow:30]]")
            # Accepted, then handed to the broker.
            wait_for(
                lambda: value(scrape(api_url), "assistant_queue_depth", queue="celery") == 1,
                10,
                "the message in the broker's queue",
            )
            queued = scrape(api_url)
            assert value(queued, "assistant_turns_current", state="queued") == 1
            assert value(queued, "assistant_workers_alive", state="taking_turns") == 0

            isolated.worker()
            ws.recv_until(lambda m: m["type"] == "text" and "seq" in m, timeout=60)
            running = scrape(api_url)
            assert value(running, "assistant_queue_depth", queue="celery") == 0
            assert value(running, "assistant_turns_current", state="running") == 1
            assert value(running, "assistant_turns_current", state="queued") == 0
            assert value(running, "assistant_workers_alive", state="taking_turns") == 1
            worker = scrape(worker_metrics_url(own_redis.url))
            assert value(worker, "assistant_worker_turns_active") == 1
            ws.until_terminal(timeout=60)
        done = scrape(api_url)
        assert value(done, "assistant_turns_current", state="running") == 0


class TestProtection:
    def test_only_loopback_or_the_metrics_token_may_scrape(self, isolated: StackFactory) -> None:
        api = isolated.api({"ASSISTANT_METRICS_TOKEN": "s3cret-metrics"})
        url = f"{api.base_url}/metrics"
        proxied = {"X-Forwarded-For": "203.0.113.7"}  # a visitor through a local proxy
        assert httpx.get(url).status_code == 200
        refused = httpx.get(url, headers=proxied)
        assert refused.status_code == 403 and "ASSISTANT_METRICS_TOKEN" in refused.text
        token = {**proxied, "Authorization": "Bearer s3cret-metrics"}
        assert httpx.get(url, headers=token).status_code == 200
        wrong = {**proxied, "Authorization": "Bearer guess"}
        assert httpx.get(url, headers=wrong).status_code == 403
        assert httpx.get(url, headers={"Authorization": "Bearer guess"}).status_code == 403

    def test_without_a_token_no_proxied_client_gets_in(self, isolated: StackFactory) -> None:
        api = isolated.api()
        url = f"{api.base_url}/metrics"
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            headers = {header: "203.0.113.7", "Authorization": "Bearer anything"}
            assert httpx.get(url, headers=headers).status_code == 403, header
        assert "assistant_websockets_open" in httpx.get(url).text


def test_database_errors_are_counted(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    labels = {"error": "OperationalError"}
    before = REGISTRY.get_sample_value("assistant_database_errors_total", labels) or 0
    with engine.connect() as conn, pytest.raises(OperationalError):
        conn.execute(text("SELECT * FROM no_such_table"))
    engine.dispose()
    assert REGISTRY.get_sample_value("assistant_database_errors_total", labels) == before + 1
