"""Graceful shutdown: SIGTERM to an API or a worker mid-answer loses no word and stores one reply.

An API process closes its WebSockets with 1012 (service restart); the client reconnects to
another API process and resumes after the last seq it has. A worker stops taking turns, lets
its turns finish within the grace period, then hands the rest back to another worker
(`turn_restarted`). A rolling restart of every worker during a chat loses no reply.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from shared.conversations import messages_of
from shared.db import session_scope
from shared.usage import current_month, month_usage
from tests.support.client import WsClient, text_of, turn_frames
from tests.support.data import make_account, make_project
from tests.support.model_log import answered
from tests.support.processes import REPO, Proc, StackFactory, wait_for
from tests.worker.test_faults import assert_clean_sequence, first_text, stored_turn

WORDS_200 = " ".join(f"word{i}" for i in range(1, 201))
WORDS_400 = " ".join(f"word{i}" for i in range(1, 401))
SLOW_200 = "[[text:200]] [[slow:30]]"  # about six seconds of streaming
SLOW_400 = "[[text:400]] [[slow:30]]"  # about twelve


def sigterm(proc: Proc) -> None:
    proc.popen.send_signal(signal.SIGTERM)


def exits_cleanly(proc: Proc, timeout: float = 60) -> None:
    # uvicorn re-raises the signal once it has shut down gracefully (exit status -15).
    assert proc.popen.wait(timeout=timeout) in (0, -signal.SIGTERM), proc.log()[-3000:]
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def status_json(factory: StackFactory) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--json"],
        cwd=REPO,
        env=factory.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def worker_names(factory: StackFactory) -> set[str]:
    return {w["name"] for w in status_json(factory)["workers"]}


def holder(factory: StackFactory, workers: list[Proc], turn_id: int) -> tuple[Proc, str]:
    """The worker process running the turn, and its name (from `assistant status`)."""
    report = status_json(factory)
    [name] = [t["worker"] for t in report["active_turns"] if t["turn_id"] == turn_id]
    [node] = [w["node"] for w in report["workers"] if w["name"] == name]
    [proc] = [w for w in workers if re.search(rf"{re.escape(node)} ready\.", w.log())]
    return proc, name


class TestApiShutdown:
    def test_clients_are_told_to_reconnect_and_resume_elsewhere_losing_nothing(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        leaving, staying = isolated.api(), isolated.api()
        isolated.worker()
        acct = make_account()
        project = make_project(project_dir)
        with WsClient(f"{leaving.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            ws.send(type="message", content=SLOW_200)
            seen = ws.recv_until(lambda m: m["type"] == "text" and m.get("seq", 0) >= 3)
            sigterm(leaving)
            more, code = ws.until_closed(timeout=20)
        assert code == 1012  # service restart: reconnect
        exits_cleanly(leaving)

        before = turn_frames(seen + more)
        # Whatever was written before the close arrived whole and in order.
        assert [f["seq"] for f in before] == list(range(1, len(before) + 1))
        turn_id, last = before[-1]["turn_id"], before[-1]["seq"]

        # As the page does after a drop: reconnect (here: to the other process) and resume;
        # no `start`, the user's last conversation is remembered across processes.
        with WsClient(f"{staying.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.send(type="resume", turn_id=turn_id, after_seq=last)
            rest = turn_frames(ws.until_terminal(timeout=60))
        assert [f["seq"] for f in rest] == list(range(last + 1, last + 1 + len(rest)))
        assert rest[-1] == {**rest[-1], "type": "response_done", "status": "complete"}
        assert text_of(before) + text_of(rest) == WORDS_200  # every word, once
        stored, replies = stored_turn(turn_id)
        assert stored.status == "complete" and stored.attempt == 1
        assert [r.content for r in replies] == [WORDS_200]


def input_side(usage: dict[str, Any]) -> int:
    return int(
        usage["input_tokens"]
        + (usage.get("cache_read_input_tokens") or 0)
        + (usage.get("cache_creation_input_tokens") or 0)
    )


class TestWorkerShutdown:
    def test_a_turn_past_the_grace_period_is_handed_to_another_worker(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        quick = {"ASSISTANT_WORKER_SHUTDOWN_GRACE_S": "1"}
        api = isolated.api(quick)
        workers = [isolated.worker(quick), isolated.worker(quick)]
        acct = make_account()
        project = make_project(project_dir)
        with WsClient(f"{api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            ws.send(type="message", content=SLOW_400)
            frames = first_text(ws)
            leaving, leaving_name = holder(isolated, workers, frames[-1]["turn_id"])
            sigterm(leaving)
            frames += ws.until_terminal(timeout=90)
        exits_cleanly(leaving)

        turn = assert_clean_sequence(frames)
        restarts = [i for i, f in enumerate(turn) if f["type"] == "turn_restarted"]
        assert len(restarts) == 1
        # Before the restart, part of the reply; after it, the whole reply once, from the other.
        assert WORDS_400.startswith(text_of(turn[: restarts[0]]))
        assert text_of(turn[restarts[0] :]) == WORDS_400
        assert turn[-1] == {**turn[-1], "type": "response_done", "status": "complete"}
        stored, replies = stored_turn(turn[0]["turn_id"])
        assert stored.status == "complete" and stored.attempt == 2
        assert stored.worker is not None and stored.worker != leaving_name
        assert [r.content for r in replies] == [WORDS_400]
        # Both attempts' prompts were spent: the reply keeps the last one's, the user's month
        # counts both (the stand-in reports the input side in message_start, cached or not).
        first, second = (input_side(r["usage"]) for r in answered(isolated.model_url, project))
        reply = replies[0]
        assert reply.input_tokens + reply.cache_read_tokens + reply.cache_write_tokens == second
        with session_scope() as session:
            spent = month_usage(session, acct.user_id, current_month())
        assert spent.input_tokens + spent.cache_read_tokens + spent.cache_write_tokens == (
            first + second
        )

        [restart] = status_json(isolated)["restarted_last_hour"]
        assert restart == {
            **restart,
            "turn_id": turn[0]["turn_id"],
            "attempt": 2,
            "reason": "worker shut down",
            "worker": leaving_name,
        }

    def test_within_the_grace_period_the_turn_finishes_where_it_runs_and_no_new_one_starts(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        api = isolated.api()  # the default grace period (30 s) is ample
        leaving = isolated.worker()
        acct = make_account()
        project = make_project(project_dir)
        url = f"{api.ws_url}/api/assistant/ws/{project}"
        with WsClient(url, acct.token) as ws, WsClient(url, acct.token) as ws2:
            ws.start()
            ws.send(type="message", content=SLOW_200)
            frames = first_text(ws)
            [leaving_name] = worker_names(isolated)
            sigterm(leaving)
            wait_for(
                lambda: [w["state"] for w in status_json(isolated)["workers"]] == ["draining"],
                10,
                "the worker to announce it is draining",
            )
            # A new question meanwhile waits for a worker that takes turns.
            ws2.start()
            ws2.send(type="message", content="[[text:5]]")
            waiting = ws2.recv_until(lambda m: m["type"] == "message_accepted")[-1]
            frames += ws.until_terminal(timeout=60)
            exits_cleanly(leaving)
            assert stored_turn(waiting["turn_id"])[0].status == "queued"
            isolated.worker()
            later = ws2.until_terminal(timeout=60)

        turn = assert_clean_sequence(frames)
        assert not [f for f in turn if f["type"] == "turn_restarted"]
        assert text_of(turn) == WORDS_200
        stored, replies = stored_turn(turn[0]["turn_id"])
        assert (stored.status, stored.attempt, stored.worker) == ("complete", 1, leaving_name)
        assert [r.content for r in replies] == [WORDS_200]
        assert text_of(later) == "word1 word2 word3 word4 word5"
        assert stored_turn(waiting["turn_id"])[0].worker != leaving_name


def test_a_rolling_restart_of_every_worker_during_a_chat_loses_no_reply(
    isolated: StackFactory, project_dir: Path
) -> None:
    quick = {"ASSISTANT_WORKER_SHUTDOWN_GRACE_S": "1"}
    api = isolated.api(quick)
    old = [isolated.worker(quick), isolated.worker(quick)]
    acct = make_account()
    project = make_project(project_dir)
    replies: list[list[dict[str, Any]]] = []
    problems: list[BaseException] = []
    restarted = threading.Event()
    conversation: list[int] = []

    def chat() -> None:
        try:
            with WsClient(f"{api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
                conversation.append(ws.start())
                while not restarted.is_set() or len(replies) < 3:
                    replies.append(ws.ask("[[text:100]] [[slow:20]]", timeout=120))
        except BaseException as exc:
            problems.append(exc)

    chatting = threading.Thread(target=chat, name="chat")
    chatting.start()
    try:
        for worker in old:
            isolated.worker(quick)
            sigterm(worker)
            exits_cleanly(worker)
    finally:
        restarted.set()
        chatting.join(timeout=300)
    assert not chatting.is_alive() and not problems, problems

    words = " ".join(f"word{i}" for i in range(1, 101))
    for frames in replies:
        turn = assert_clean_sequence(frames)
        assert turn[-1] == {**turn[-1], "type": "response_done", "status": "complete"}
        restarts = [i for i, f in enumerate(turn) if f["type"] == "turn_restarted"]
        assert text_of(turn[restarts[-1] if restarts else 0 :]) == words
    with session_scope() as session:
        stored = [m for m in messages_of(session, conversation[0]) if m.turn_id is not None]
    assert len(stored) == len(replies)
    assert all(m.status == "complete" and m.content == words for m in stored)
