"""Per-user limits, and fuzzing of the REST API (schemathesis) and of WebSocket frames."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from shared.conversations import messages_of
from shared.db import session_scope
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.processes import Stack, StackFactory


@pytest.mark.usefixtures("stack")  # its worker runs the turns
def test_rate_limit_refuses_cleanly_and_does_not_starve_another_user(
    stack_factory: StackFactory, project_dir: Path
) -> None:
    api = stack_factory.api({"ASSISTANT_TURNS_PER_MINUTE": "2"})
    project = make_project(project_dir)
    flooder, other = make_account(), make_account()
    url = f"{api.ws_url}/api/assistant/ws/{project}"
    with WsClient(url, flooder.token) as ws:
        conv = ws.start()
        ws.ask("[[text:2]]")
        ws.ask("[[text:2]]")
        ws.send(type="message", content="[[text:2]] third")
        refused = ws.recv_until(lambda m: m["type"] == "error")[-1]
        assert "per minute" in refused["content"] and "turn_id" not in refused
        ws.send(type="ping")
        assert ws.recv_until(lambda m: m["type"] == "pong")  # the connection stays usable
    with session_scope() as session:
        assert "[[text:2]] third" not in [m.content for m in messages_of(session, conv)]
    with WsClient(url, other.token) as ws:
        ws.start()
        assert text_of(ws.ask("[[text:3]]")) == "word1 word2 word3"


@pytest.mark.usefixtures("stack")
def test_concurrent_turns_per_user_are_capped(
    stack_factory: StackFactory, project_dir: Path
) -> None:
    api = stack_factory.api({"ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER": "1"})
    project = make_project(project_dir)
    acct = make_account()
    url = f"{api.ws_url}/api/assistant/ws/{project}"
    with WsClient(url, acct.token) as first, WsClient(url, acct.token) as second:
        first.start()
        second.start()
        first.send(type="message", content="[[text:40]] [[slow:30]]")
        first.recv_until(lambda m: m["type"] == "text" and "seq" in m)
        second.send(type="message", content="[[text:2]]")
        refused = second.recv_until(lambda m: m["type"] == "error")[-1]
        assert "at once" in refused["content"]
        first.until_terminal()
        assert text_of(second.ask("[[text:2]]")) == "word1 word2"  # allowed again


def test_websocket_frame_fuzz_never_breaks_the_server(stack: Stack, project_dir: Path) -> None:
    project = make_project(project_dir)
    acct = make_account()
    rng = random.Random(1234)
    values: list[object] = [
        None,
        True,
        0,
        -1,
        2**63,
        1.5,
        "",
        "x" * 300,
        "\x00",
        "💥",
        [],
        {},
        [1, "a"],
        {"a": 1},
    ]
    types = ["start", "message", "ping", "cancel", "resume", "bogus", "", None, 5]
    fields = ["conversation_id", "content", "turn_id", "after_seq", "client_message_id", "zz"]
    frames = [
        "",
        "{",
        "[]",
        "null",
        "42",
        '"text"',
        "{}",
        '{"type": []}',
        "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    ]
    for _ in range(150):
        msg: dict[str, object] = {"type": rng.choice(types)}
        for name in rng.sample(fields, rng.randint(0, 3)):
            msg[name] = rng.choice(values)
        frames.append(json.dumps(msg))
    with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
        ws.start()
        for frame in frames:
            ws.send_raw(frame)
            ws.send(type="ping")
            got = ws.recv_until(lambda m: m["type"] == "pong", timeout=20)
            for reply in got:
                assert "Traceback" not in json.dumps(reply)
                assert reply.get("content") != "Internal error; please try again", frame
        # Still fully working after the fuzz: cancel any turn the fuzz started, then chat.
        ws.send(type="cancel")
    log = stack.api.log()
    assert "Traceback" not in log


def test_openapi_fuzz_finds_no_server_errors(stack: Stack) -> None:
    admin = make_account(admin=True)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{stack.api.base_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "-H",
            f"Authorization: Bearer {admin.token}",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--request-timeout",
            "10",
            # No example database in the working tree (it would land in the repository).
            "--generation-database",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout.lower()
