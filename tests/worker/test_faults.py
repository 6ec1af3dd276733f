"""Fault injection with real processes: worker loss, Redis restarts, cancels, model errors.

Each test asserts what the client received (every seq once, in order, exactly one terminal
chunk) and what the database holds (one assistant message per turn, with the right status).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from shared.conversations import messages_of
from shared.db import session_scope
from shared.devtools.redis_server import RedisServer
from shared.models import Message, Turn
from tests.support.client import WsClient, text_of, turn_frames
from tests.support.data import make_account, make_project
from tests.support.processes import Stack, StackFactory, wait_for

SLOW = "[[text:200]] [[slow:30]]"  # about six seconds of streaming
WORDS_200 = " ".join(f"word{i}" for i in range(1, 201))


def assert_clean_sequence(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    turn = turn_frames(frames)
    seqs = [f["seq"] for f in turn]
    assert seqs == sorted(set(seqs)), f"duplicated or out-of-order seqs: {seqs}"
    terminals = [f for f in turn if f["type"] in ("response_done", "error")]
    assert len(terminals) == 1 and terminals[0] is turn[-1]
    return turn


def stored_turn(turn_id: int) -> tuple[Turn, list[Message]]:
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        assert turn is not None
        replies = list(session.exec(select(Message).where(Message.turn_id == turn_id)).all())
        return turn, replies


def open_chat(api_ws_url: str, project_dir: Path) -> tuple[WsClient, int]:
    acct = make_account()
    project = make_project(project_dir)
    ws = WsClient(f"{api_ws_url}/api/assistant/ws/{project}", acct.token)
    return ws, ws.start()


def first_text(ws: WsClient) -> list[dict[str, Any]]:
    return ws.recv_until(lambda m: m["type"] == "text" and "seq" in m)


class TestWorkerLoss:
    def test_killed_worker_turn_is_rerun_once_without_duplicates(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        ws, _ = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content=SLOW)
            frames = first_text(ws)
            stack.worker.kill9()
            isolated.worker()  # a second worker takes over
            frames += ws.until_terminal(timeout=60)

        turn = assert_clean_sequence(frames)
        restarts = [i for i, f in enumerate(turn) if f["type"] == "turn_restarted"]
        assert len(restarts) == 1
        assert text_of(turn[restarts[0] :]) == WORDS_200  # the re-run's full text
        assert turn[-1] == {**turn[-1], "type": "response_done", "status": "complete"}
        stored, replies = stored_turn(turn[0]["turn_id"])
        assert stored.status == "complete" and stored.attempt == 2
        assert len(replies) == 1 and replies[0].content == WORDS_200

    def test_redelivery_is_bounded_and_ends_in_a_clear_error(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        stack = isolated.stack({"ASSISTANT_MAX_TURN_ATTEMPTS": "1"})
        ws, _ = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content=SLOW)
            frames = first_text(ws)
            turn_id = frames[-1]["turn_id"]
            # The reply is saved while it streams: wait until some of it is in the database.
            wait_for(lambda: stored_turn(turn_id)[1][0].content, 10, "progressive save")
            stack.worker.kill9()
            frames += ws.until_terminal(timeout=30)

        turn = assert_clean_sequence(frames)
        assert turn[-1]["type"] == "error" and "worker" in turn[-1]["content"]
        stored, replies = stored_turn(turn[0]["turn_id"])
        assert stored.status == "failed"
        assert len(replies) == 1 and replies[0].status == "failed"
        # What streamed before the loss was saved progressively, not thrown away.
        assert replies[0].content.startswith("word1")


class TestRedisRestart:
    def test_client_gets_rest_or_clear_error_and_reply_is_stored(
        self, isolated: StackFactory, own_redis: RedisServer, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        ws, _ = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content=SLOW)
            frames = first_text(ws)
            own_redis.restart()
            restarted = time.monotonic()
            frames += ws.until_terminal(timeout=30)
            # Never silence: the terminal frame came within seconds of the restart.
            assert time.monotonic() - restarted < 12

        turn = assert_clean_sequence(frames)
        turn_id = turn[0]["turn_id"]
        if turn[-1]["type"] == "error":
            assert "reload" in turn[-1]["content"]
        else:
            assert text_of(turn) == WORDS_200

        def finished() -> bool:
            return stored_turn(turn_id)[0].status == "complete"

        wait_for(finished, 30, "the turn to complete in the database")
        _, replies = stored_turn(turn_id)
        assert len(replies) == 1 and replies[0].content == WORDS_200


class TestReconnect:
    def test_resume_on_another_api_process_gets_every_later_chunk_once(
        self, stack: Stack, stack_factory: StackFactory, project_dir: Path
    ) -> None:
        other_api = stack_factory.api()
        acct = make_account()
        project = make_project(project_dir)
        with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content=SLOW)
            seen = ws.recv_until(lambda m: m["type"] == "text" and m.get("seq", 0) >= 3)
        turn_id, last = seen[-1]["turn_id"], seen[-1]["seq"]

        with WsClient(f"{other_api.ws_url}/api/assistant/ws/{project}", acct.token) as ws2:
            ws2.send(type="start", conversation_id=conv_id)
            ws2.send(type="resume", turn_id=turn_id, after_seq=last)
            later = ws2.until_terminal(timeout=30)

        chunks = [f for f in turn_frames(later) if f["seq"] > last]
        seqs = [f["seq"] for f in chunks]
        assert seqs == list(range(last + 1, last + 1 + len(seqs)))  # every later one, once
        assert chunks[-1]["type"] == "response_done"
        assert text_of(turn_frames(seen)) + text_of(chunks) == WORDS_200

    def test_disconnect_is_not_a_stop_and_reopening_shows_the_reply(
        self, stack: Stack, project_dir: Path
    ) -> None:
        acct = make_account()
        project = make_project(project_dir)
        url = f"{stack.api.ws_url}/api/assistant/ws/{project}"
        with WsClient(url, acct.token) as ws:
            conv_id = ws.start()
            ws.send(type="message", content=SLOW)
            first = first_text(ws)
        turn_id = first[-1]["turn_id"]
        # Reopen while it still streams: `start` replays the turn so far, then goes live.
        with WsClient(url, acct.token) as ws:
            ws.send(type="start", conversation_id=conv_id)
            frames = ws.until_terminal(timeout=30)
        turn = assert_clean_sequence(frames)
        assert turn[0]["seq"] == 1 and text_of(turn) == WORDS_200
        stored, replies = stored_turn(turn_id)
        assert stored.status == "complete" and replies[0].content == WORDS_200

    def test_closing_right_after_sending_still_runs_the_turn(
        self, stack: Stack, project_dir: Path
    ) -> None:
        ws, conv_id = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content="[[text:5]]")
        # The socket is gone before the API could even acknowledge: the turn runs regardless.

        def replies() -> list[Message]:
            with session_scope() as session:
                return [m for m in messages_of(session, conv_id) if m.turn_id is not None]

        wait_for(
            lambda: [r.status for r in replies()] == ["complete"],
            30,
            "the turn to complete without a client",
        )
        assert replies()[0].content == "word1 word2 word3 word4 word5"

    def test_resume_after_the_turn_ended_replays_the_rest(
        self, stack: Stack, project_dir: Path
    ) -> None:
        ws, _conv = open_chat(stack.api.ws_url, project_dir)
        with ws:
            frames = ws.ask("[[text:30]]")
            turn_id = frames[-1]["turn_id"]
            ws.send(type="resume", turn_id=turn_id, after_seq=1)
            again = ws.until_terminal()
        assert [f["seq"] for f in again] == [f["seq"] for f in turn_frames(frames)][1:]


class TestCancel:
    def test_cancel_mid_stream_stops_within_a_second_and_keeps_partial(
        self, stack: Stack, project_dir: Path
    ) -> None:
        ws, _conv_id = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content="[[text:2000]] [[slow:20]]")
            frames = first_text(ws)
            ws.send(type="cancel")
            frames += ws.until_terminal(timeout=10)
        turn = assert_clean_sequence(frames)
        assert turn[-1]["type"] == "response_done" and turn[-1]["status"] == "cancelled"
        stored, replies = stored_turn(turn[0]["turn_id"])
        assert stored.status == "cancelled"
        assert replies[0].status == "cancelled"
        streamed = text_of(turn)
        assert replies[0].content.startswith(streamed) and len(streamed) > 0
        # Stopped mid-stream, far from the end of the 2000 words (about 30 s of streaming).
        assert len(replies[0].content.split()) < 1000


class TestOneTurnAtATime:
    def test_second_message_while_running_is_refused_and_not_stored(
        self, stack: Stack, project_dir: Path
    ) -> None:
        ws, conv_id = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content="[[text:60]] [[slow:30]]")
            first_text(ws)
            ws.send(type="message", content="interrupting")
            refusal = ws.recv_until(lambda m: m["type"] == "error" and "turn_id" not in m)
            assert "still being generated" in refusal[-1]["content"]
            ws.until_terminal()
        with session_scope() as session:
            contents = [m.content for m in messages_of(session, conv_id)]
        assert "interrupting" not in contents

    def test_same_client_message_id_runs_one_turn(self, stack: Stack, project_dir: Path) -> None:
        ws, conv_id = open_chat(stack.api.ws_url, project_dir)
        with ws:
            ws.send(type="message", content="[[text:5]]", client_message_id="abc-1")
            accepted = ws.recv_until(lambda m: m["type"] == "message_accepted")[-1]
            ws.until_terminal()
            ws.send(type="message", content="[[text:5]]", client_message_id="abc-1")
            again = ws.recv_until(lambda m: m["type"] == "message_accepted")[-1]
            ws.until_terminal()
        assert again["turn_id"] == accepted["turn_id"]
        with session_scope() as session:
            turns = session.exec(select(Turn).where(Turn.conversation_id == conv_id)).all()
            users = [m for m in messages_of(session, conv_id) if m.role == "user"]
        assert len(turns) == 1 and len(users) == 1


class TestModelErrors:
    @pytest.mark.parametrize(
        ("code", "expected"), [("429", "rate-limited"), ("529", "overloaded"), ("500", "failed")]
    )
    def test_api_errors_end_the_turn_with_a_clear_error(
        self, stack: Stack, project_dir: Path, code: str, expected: str
    ) -> None:
        ws, _ = open_chat(stack.api.ws_url, project_dir)
        with ws:
            frames = ws.ask(f"[[error:{code}]]")
        turn = assert_clean_sequence(frames)
        assert turn[-1]["type"] == "error" and expected in turn[-1]["content"]
        stored, replies = stored_turn(turn[0]["turn_id"])
        assert stored.status == "failed" and replies[0].status == "failed"

    def test_error_mid_stream_keeps_the_partial_text(self, stack: Stack, project_dir: Path) -> None:
        ws, _ = open_chat(stack.api.ws_url, project_dir)
        with ws:
            frames = ws.ask("[[text:20]] [[error-midstream]]")
        turn = assert_clean_sequence(frames)
        assert turn[-1]["type"] == "error"
        _, replies = stored_turn(turn[0]["turn_id"])
        assert replies[0].status == "failed" and replies[0].content == text_of(turn)

    def test_stalled_model_stream_times_out_with_an_error(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        stack = isolated.stack(
            {"ASSISTANT_MODEL_TIMEOUT_S": "2", "ASSISTANT_MODEL_MAX_RETRIES": "0"}
        )
        ws, _ = open_chat(stack.api.ws_url, project_dir)
        with ws:
            frames = ws.ask("[[text:10]] [[stall:30]]", timeout=30)
        turn = assert_clean_sequence(frames)
        assert turn[-1]["type"] == "error" and "in time" in turn[-1]["content"]


def test_text_deltas_are_coalesced(stack: Stack, project_dir: Path) -> None:
    ws, _ = open_chat(stack.api.ws_url, project_dir)
    with ws:
        frames = ws.ask("[[text:1500]]")
    texts = [f for f in turn_frames(frames) if f["type"] == "text"]
    assert text_of(texts) == " ".join(f"word{i}" for i in range(1, 1501))
    # The stand-in sends one or two words per delta (~1000 deltas); far fewer chunks arrive.
    assert len(texts) < 100
