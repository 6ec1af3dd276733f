"""Logs follow one turn across processes: its ids on every line about it, never its text."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

from shared.logs import JsonFormatter, TextFormatter, TurnContextFilter, bind_turn, turn_scope
from tests.support.client import WsClient
from tests.support.data import make_account, make_project
from tests.support.processes import Proc, StackFactory, wait_for


def json_lines(proc: Proc) -> list[dict[str, Any]]:
    """Every line of the process's output that is a log record (all of them, but Celery's
    one-line shutdown notice on stdout)."""
    records = []
    for line in proc.log().splitlines():
        if not line.strip() or line.startswith("worker: Warm shutdown"):
            continue
        records.append(json.loads(line))  # fails the test on any line that is not JSON
    return records


def chat_once(
    factory: StackFactory, project_dir: Path, secret: str
) -> tuple[Proc, Proc, dict[str, Any]]:
    stack = factory.stack({"ASSISTANT_LOG_FORMAT": "json"})
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        conv_id = ws.start()
        frames = ws.ask(f'{secret} [[tool:Read {{"file_path": "README.md"}}]] [[text:5]]')
    ids = {"turn_id": frames[-1]["turn_id"], "conversation_id": conv_id, "user_id": acct.user_id}
    return stack.api, stack.worker, {**ids, "token": acct.token}


def test_json_lines_of_one_turn_from_api_and_worker_share_its_ids(
    isolated: StackFactory, project_dir: Path
) -> None:
    secret = f"secret-body-{uuid.uuid4().hex}"
    api, worker, ids = chat_once(isolated, project_dir, secret)

    def tagged(proc: Proc) -> list[dict[str, Any]]:
        return [r for r in json_lines(proc) if r.get("turn_id") == ids["turn_id"]]

    # The ending, then Celery's own line about the task (written after the task returned).
    wait_for(lambda: any("succeeded" in r["message"] for r in tagged(worker)), 10, "the task")
    api_lines, worker_lines = tagged(api), tagged(worker)
    assert api_lines and worker_lines
    for record in api_lines + worker_lines:
        assert record["conversation_id"] == ids["conversation_id"], record
        assert record["user_id"] == ids["user_id"], record
    assert {r["process"] for r in api_lines} == {"api"}
    assert {r["process"] for r in worker_lines} == {"worker"}
    messages = [r["message"] for r in worker_lines]
    assert any("claimed" in m for m in messages) and any("ended (completed)" in m for m in messages)
    # Celery's own line about the task carries the turn too.
    assert any(r["logger"].startswith("celery") for r in worker_lines)
    # Never the message body, the reply or the token at the default level.
    for proc in (api, worker):
        assert secret not in proc.log()
        assert "word1 word2" not in proc.log()
        assert ids["token"] not in proc.log()


def test_text_lines_carry_the_turn_as_greppable_tags(
    isolated: StackFactory, project_dir: Path
) -> None:
    stack = isolated.stack()
    acct = make_account()
    project = make_project(project_dir)
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        turn_id = ws.ask("[[text:3]]")[-1]["turn_id"]
    tag = f"turn_id={turn_id} "

    def grep(proc: Proc) -> list[str]:
        return [line for line in proc.log().splitlines() if tag in line + " "]

    wait_for(lambda: any("ended" in line for line in grep(stack.worker)), 10, "the ending")
    assert any("queued" in line for line in grep(stack.api))
    assert all(f"user_id={acct.user_id}" in line for line in grep(stack.worker))


class TestFormatters:
    def record(self, formatter: logging.Formatter, msg: str = "hello %s") -> str:
        rec = logging.LogRecord("x.y", logging.INFO, __file__, 1, msg, ("there",), None)
        TurnContextFilter().filter(rec)
        return formatter.format(rec)

    def test_ids_only_inside_the_turn_scope(self) -> None:
        fmt = JsonFormatter("api")
        assert "turn_id" not in json.loads(self.record(fmt))
        turn = 10_000 + uuid.uuid4().int % 10**9  # not known to this process yet
        with turn_scope(turn, 3):
            bind_turn(user_id=9)
            inside = json.loads(self.record(fmt))
            with turn_scope(turn + 1):  # another turn: nothing of the first carries over
                other = json.loads(self.record(fmt))
            # The same turn elsewhere (e.g. Celery's pool thread, which knows only the turn):
            # what this process learnt about it is filled in.
            with turn_scope(turn):
                same = json.loads(self.record(fmt))
        after = json.loads(self.record(fmt))
        assert inside == {
            **inside,
            "message": "hello there",
            "level": "INFO",
            "logger": "x.y",
            "process": "api",
            "turn_id": turn,
            "conversation_id": 3,
            "user_id": 9,
        }
        assert other["turn_id"] == turn + 1
        assert "conversation_id" not in other and "user_id" not in other
        assert (same["turn_id"], same["conversation_id"], same["user_id"]) == (turn, 3, 9)
        assert "turn_id" not in after

    def test_text_tags_and_tracebacks(self) -> None:
        with turn_scope(42, 7, 3):
            line = self.record(TextFormatter())
        assert line.endswith("INFO x.y: hello there turn_id=42 conversation_id=7 user_id=3")
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        entry = json.loads(JsonFormatter("worker").format(rec))
        assert entry["message"] == "failed" and "ValueError: boom" in entry["exc"]
