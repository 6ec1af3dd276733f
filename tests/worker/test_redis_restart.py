"""A Redis restart, met the way an operator meets it: the same `assistant worker` keeps working.

Real processes started through the CLI (`python -m cli api` / `python -m cli worker`), a private
Redis without persistence that the test restarts (so every broker message and key is lost), and
the demo model. After Redis is back, a new conversation on a new WebSocket must be answered by
the worker that was running all along, within seconds, with no outside supervisor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.db import session_scope
from shared.devtools.redis_server import RedisServer
from shared.models import Turn
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.processes import StackFactory, celery_pids, wait_for

SLOW = "[[text:200]] [[slow:30]]"  # about six seconds of streaming
# The promise: new turns run within 10 s of Redis answering again.
RECOVERY_DEADLINE_S = 10
CELERY_QUEUE = "celery"  # Celery's default queue: a Redis list of the waiting messages


def stored_status(turn_id: int) -> str:
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        assert turn is not None
        return str(turn.status)


def new_conversation_answers(ws_url: str, project: str, token: str, deadline: float) -> str:
    """A fresh WebSocket and conversation, one short question; the answer's text.

    Right after a Redis restart the API's pooled Redis connections are dead: the first `start`
    must still be answered (the client is not told to try again), and the worker must answer
    the question within the deadline.
    """
    left = max(deadline - time.monotonic(), 0.1)
    with WsClient(f"{ws_url}/api/assistant/ws/{project}", token) as ws:
        ws.send(type="start", conversation_id=None)
        frames = ws.recv_until(lambda m: m["type"] in ("response_done", "error"), left)
        assert frames[-1]["type"] == "response_done", frames
        frames = ws.ask("[[text:5]]", timeout=max(deadline - time.monotonic(), 0.1))
    assert frames[-1]["type"] == "response_done", frames
    return text_of(frames)


class TestWorkerOutlivesRedisRestart:
    def test_new_turns_run_on_the_same_worker_after_a_restart_mid_turn(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        acct = make_account()
        project = make_project(project_dir)
        url = f"{stack.api.ws_url}/api/assistant/ws/{project}"
        with WsClient(url, acct.token) as ws:
            ws.start()
            ws.send(type="message", content=SLOW)
            ws.recv_until(lambda m: m["type"] == "text" and "seq" in m)
            # A turn is in flight, its message unacknowledged: this is what broke the consumer.
            own_redis.restart()
            deadline = time.monotonic() + RECOVERY_DEADLINE_S
            # New work, while the old turn still streams: a new conversation on a new socket
            # is answered in time...
            answer = new_conversation_answers(stack.api.ws_url, project, acct.token, deadline)
            assert answer == "word1 word2 word3 word4 word5"
            assert time.monotonic() < deadline
            # ...and the turn that was running goes on to its end.
            assert ws.until_terminal(timeout=30)[-1]["type"] == "response_done"

        # The worker command the operator started is still the one running...
        assert stack.worker.alive(), stack.worker.log()[-3000:]
        # Not by restarting Celery (the supervisor's job when all else fails): the Celery
        # process that was running the turn when Redis went away is the one answering.
        assert len(celery_pids(stack.worker)) == 1
        assert "Unrecoverable error" not in stack.worker.log()

    def test_worker_keeps_taking_turns_after_repeated_restarts(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        acct = make_account()
        project = make_project(project_dir)
        url = f"{stack.api.ws_url}/api/assistant/ws/{project}"
        for _ in range(2):
            with WsClient(url, acct.token) as ws:
                ws.start()
                ws.send(type="message", content=SLOW)
                ws.recv_until(lambda m: m["type"] == "text" and "seq" in m)
                own_redis.restart()
                deadline = time.monotonic() + RECOVERY_DEADLINE_S
                answer = new_conversation_answers(stack.api.ws_url, project, acct.token, deadline)
                assert answer == "word1 word2 word3 word4 word5"
                ws.until_terminal(timeout=30)
        assert stack.worker.alive(), stack.worker.log()[-3000:]
        assert len(celery_pids(stack.worker)) == 1


class TestQueuedTurnsOutliveRedisRestart:
    """A queued turn's Celery message lives only in Redis; the database brings it back."""

    @pytest.fixture(autouse=True)
    def _close_clients(self) -> Iterator[None]:
        self._clients: list[redis.Redis] = []
        yield
        for client in self._clients:
            client.close()

    def broker(self, server: RedisServer) -> redis.Redis:
        client = redis.Redis.from_url(server.url)
        self._clients.append(client)
        return client

    def test_turn_queued_behind_a_busy_worker_runs_after_redis_lost_it(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        api = isolated.api()
        worker = isolated.worker(concurrency=1)  # one slot: a second turn has to wait in Redis
        acct = make_account()
        project = make_project(project_dir)
        url = f"{api.ws_url}/api/assistant/ws/{project}"
        broker = self.broker(own_redis)
        with WsClient(url, acct.token) as busy, WsClient(url, acct.token) as waiting:
            busy.start()
            busy.send(type="message", content=SLOW)
            busy.recv_until(lambda m: m["type"] == "text" and "seq" in m)
            waiting.start()
            waiting.send(type="message", content="[[text:5]]")
            turn_id = waiting.recv_until(lambda m: m["type"] == "message_accepted")[-1]["turn_id"]
            # Its message waits in the broker's queue, not in the worker.
            wait_for(lambda: broker.llen(CELERY_QUEUE) == 1, 10, "the turn's message in Redis")
            assert stored_status(turn_id) == "queued"

            own_redis.restart()  # no persistence: the queued message is gone
            assert broker.llen(CELERY_QUEUE) == 0
            busy.until_terminal(timeout=30)
            frames = waiting.until_terminal(timeout=RECOVERY_DEADLINE_S + 10)

        assert frames[-1]["type"] == "response_done", frames
        assert text_of(frames) == "word1 word2 word3 word4 word5"
        assert stored_status(turn_id) == "complete"
        assert worker.alive(), worker.log()[-3000:]
        # One process re-dispatched it: the sentinel's SET NX picks exactly one.
        logs = api.log() + worker.log()
        assert logs.count("re-dispatched 1 queued turn(s)") == 1, logs[-3000:]

    def test_turn_queued_while_no_worker_runs_is_answered_by_a_later_worker(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        api = isolated.api()
        acct = make_account()
        project = make_project(project_dir)
        broker = self.broker(own_redis)
        with WsClient(f"{api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            ws.send(type="message", content="[[text:5]]")
            turn_id = ws.recv_until(lambda m: m["type"] == "message_accepted")[-1]["turn_id"]
            wait_for(lambda: broker.llen(CELERY_QUEUE) == 1, 10, "the turn's message in Redis")
            own_redis.restart()
            # The API's watchdog puts the message back from the database...
            wait_for(lambda: broker.llen(CELERY_QUEUE) == 1, 10, "the message re-dispatched")
            isolated.worker()  # ...for whichever worker comes up next.
            frames = ws.until_terminal(timeout=30)
        assert frames[-1]["type"] == "response_done", frames
        assert text_of(frames) == "word1 word2 word3 word4 word5"
        assert stored_status(turn_id) == "complete"
