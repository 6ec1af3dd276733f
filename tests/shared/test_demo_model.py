"""The demo model server, driven by the real `anthropic` SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from shared.devtools.demo_model import (
    DEMO_DELAY_S,
    DemoModelServer,
    InvalidRequest,
    find_path,
    json_chunks,
    parse_directives,
    plan_reply,
    text_chunks,
)

MODEL = "claude-demo"
TOOLS: list[Any] = [
    {
        "name": name,
        "description": f"the {name} tool",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
    for name in ("Read", "Glob", "Grep")
]


@pytest.fixture
def server() -> Iterator[DemoModelServer]:
    with DemoModelServer() as srv:
        yield srv


@pytest.fixture
def client(server: DemoModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=0) as c:
        yield c


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        threading.Event().wait(0.02)


def stats(server: DemoModelServer) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/_stats").json())


def recorded(server: DemoModelServer) -> list[dict[str, Any]]:
    return list(httpx.get(f"{server.url}/_requests").json())


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def tool_results(message: Any, contents: dict[str, str], is_error: bool = False) -> dict[str, Any]:
    blocks = [
        {
            "type": "tool_result",
            "tool_use_id": b.id,
            "content": contents[b.name],
            "is_error": is_error,
        }
        for b in message.content
        if b.type == "tool_use"
    ]
    return {"role": "user", "content": blocks}


def assistant(message: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [b.model_dump(exclude_none=True) for b in message.content],
    }


# ----------------------------------------------------------------------------- planning, pure
def test_parse_directives_combines() -> None:
    d = parse_directives(
        'go [[text:5]] [[slow:20]] [[tool:Read {"file_path": "a]].md"}]] [[tool:Glob]] '
        "[[error:529:2]] [[stall:1.5]] [[barrier:7:0.5]] [[echo]] [[error-midstream]]"
    )
    assert (d.words, d.slow_ms, d.stall_s, d.error, d.barrier) == (5, 20, 1.5, (529, 2), (7, 0.5))
    assert d.tools == [("Read", {"file_path": "a]].md"}), ("Glob", {})]
    assert d.echo
    assert d.error_midstream
    assert not parse_directives("plain question about README.md").has_content


def test_bad_tool_directive_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="tool directive"):
        parse_directives("[[tool:Read {not json}]]")


def test_text_chunks_are_one_or_two_words_and_join_back() -> None:
    text = "alpha beta\n\ngamma  delta epsilon zeta "
    chunks = text_chunks(text)
    assert "".join(chunks) == text
    assert [len(c.split()) for c in chunks[:5]] == [1, 2, 1, 2, 0]
    fragments = json_chunks({"path": "README.md"})
    assert len(fragments) >= 3
    assert json.loads("".join(fragments)) == {"path": "README.md"}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("what is in README.md?", "README.md"),
        ("explain `src/app.py`, please", "src/app.py"),
        ("look at docs/ then", "docs/"),
        ("hello there, e.g. how are you", None),
        ("version 3.11 and https://example.com/x", None),
    ],
)
def test_find_path(text: str, path: str | None) -> None:
    assert find_path(text) == path


def test_plan_is_deterministic_and_counts_tool_rounds() -> None:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 50}
    body["messages"] = user("[[tool:a {}]] [[tool:b {}]]")
    first = plan_reply(body)
    assert first == plan_reply(body)
    assert first.stop_reason == "tool_use"
    assert [getattr(b, "name", None) for b in first.blocks] == [None, "a"]
    call = first.blocks[1]
    body["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]
    second = plan_reply(body)
    assert getattr(second.blocks[1], "name", None) == "b"
    assert getattr(second.blocks[1], "id", None) != getattr(call, "id", None)


# ----------------------------------------------------------------------------- streaming text
def test_text_streams_words_in_order(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=user("[[text:9]]")) as s:
        deltas = list(s.text_stream)
        final = s.get_final_message()
    expected = " ".join(f"word{i}" for i in range(1, 10))
    assert "".join(deltas) == expected
    assert len(deltas) == 6
    assert all(1 <= len(d.split()) <= 2 for d in deltas)
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text"
    assert final.content[0].text == expected
    assert final.usage.output_tokens == 9


def test_raw_wire_format(server: DemoModelServer) -> None:
    body = {"model": MODEL, "max_tokens": 10, "stream": True, "messages": user("[[text:3]]")}
    response = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "anything"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\n\n") if f]
    names = []
    for frame in frames:
        event_line, data_line = frame.split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        names.append(name)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = json.loads(frames[0].split("\ndata: ")[1])["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert {"id", "model", "role", "usage"} <= start.keys()


def test_raw_sdk_events_in_order(client: anthropic.Anthropic) -> None:
    events = list(
        client.messages.create(model=MODEL, max_tokens=10, messages=user("[[text:4]]"), stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_non_streaming_create_returns_whole_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=10, messages=user("[[text:3]]"))
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text == "word1 word2 word3"


def test_slow_spaces_the_deltas(client: anthropic.Anthropic) -> None:
    started = time.monotonic()
    with client.messages.stream(
        model=MODEL, max_tokens=10, messages=user("[[text:8]] [[slow:60]]")
    ) as s:
        assert s.get_final_text() == " ".join(f"word{i}" for i in range(1, 9))
    assert time.monotonic() - started >= 5 * 0.06  # 6 deltas, 5 gaps


# ----------------------------------------------------------------------------- tools
def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    messages = user('Read it [[tool:Read {"file_path": "README.md", "offset": 2}]]')
    with client.messages.stream(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS) as s:
        input_json_events = [e for e in s if e.type == "input_json"]
        first = s.get_final_message()
    assert first.stop_reason == "tool_use"
    assert len(input_json_events) >= 3
    tool_use = first.content[-1]
    assert tool_use.type == "tool_use"
    assert tool_use.name == "Read"
    assert tool_use.input == {"file_path": "README.md", "offset": 2}

    messages += [assistant(first), tool_results(first, {"Read": "# My Project\nmore"})]
    final = client.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text"
    assert 'Read README.md: "# My Project"' in final.content[0].text


def test_three_step_tool_loop(client: anthropic.Anthropic) -> None:
    messages = user(
        '[[tool:Glob {"pattern": "*.py"}]] [[tool:Read {"file_path": "a.py"}]] '
        '[[tool:Grep {"pattern": "TODO"}]]'
    )
    outputs = {"Glob": "a.py\nb.py", "Read": "import os", "Grep": "a.py:3: TODO"}
    calls = []
    for _ in range(5):
        with client.messages.stream(
            model=MODEL, max_tokens=100, messages=messages, tools=TOOLS
        ) as s:
            reply = s.get_final_message()
        if reply.stop_reason != "tool_use":
            break
        calls += [(b.name, b.input) for b in reply.content if b.type == "tool_use"]
        messages += [assistant(reply), tool_results(reply, outputs)]
    assert calls == [
        ("Glob", {"pattern": "*.py"}),
        ("Read", {"file_path": "a.py"}),
        ("Grep", {"pattern": "TODO"}),
    ]
    assert reply.content[0].type == "text"
    text = reply.content[0].text
    assert 'Glob *.py: "a.py"' in text
    assert 'Read a.py: "import os"' in text
    assert 'Grep TODO: "a.py:3: TODO"' in text


def test_tool_error_result_is_reported(client: anthropic.Anthropic) -> None:
    messages = user('[[tool:Read {"file_path": "nope.txt"}]]')
    first = client.messages.create(model=MODEL, max_tokens=50, messages=messages, tools=TOOLS)
    messages += [assistant(first), tool_results(first, {"Read": "No such file"}, True)]
    final = client.messages.create(model=MODEL, max_tokens=50, messages=messages, tools=TOOLS)
    assert final.content[0].type == "text"
    assert 'Read nope.txt failed: "No such file"' in final.content[0].text


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("code", "error_class", "attempts"),
    [
        (429, anthropic.RateLimitError, 3),
        (529, anthropic.OverloadedError, 3),
        (500, anthropic.InternalServerError, 3),
        (400, anthropic.BadRequestError, 1),
    ],
)
def test_http_errors_after_sdk_retries(
    server: DemoModelServer, code: int, error_class: type[Exception], attempts: int
) -> None:
    with anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=2) as c:
        with pytest.raises(error_class) as info:
            with c.messages.stream(
                model=MODEL, max_tokens=10, messages=user(f"[[error:{code}]]")
            ) as s:
                s.get_final_text()
    assert isinstance(info.value, anthropic.APIStatusError)
    assert info.value.status_code == code
    assert stats(server)["total_requests"] == attempts
    assert stats(server)["statuses"] == {str(code): attempts}
    retry_counts = [r["headers"]["x-stainless-retry-count"] for r in recorded(server)]
    assert retry_counts == [str(i) for i in range(attempts)]


def test_transient_error_then_success(server: DemoModelServer) -> None:
    with anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=3) as c:
        message = c.messages.create(
            model=MODEL, max_tokens=10, messages=user("[[error:529:2]] [[text:2]]")
        )
    assert message.content[0].type == "text"
    assert message.content[0].text == "word1 word2"
    assert stats(server)["statuses"] == {"529": 2, "200": 1}


def test_error_midstream_raises_during_iteration(client: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(
            model=MODEL, max_tokens=10, messages=user("[[error-midstream]] [[text:20]]")
        ) as s:
            received.extend(s.text_stream)
    assert received == ["word1"]
    assert info.value.type == "overloaded_error"
    assert info.value.status_code == 200  # the HTTP status had been sent: a plain APIStatusError


def test_invalid_requests_get_400(server: DemoModelServer, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=[])
    assert info.value.type == "invalid_request_error"
    assert "messages" in str(info.value.api_message)
    raw = httpx.post(f"{server.url}/v1/messages", content=b"not json")
    assert raw.status_code == 400
    assert raw.json()["type"] == "error"
    assert raw.json()["error"]["type"] == "invalid_request_error"


def test_stall_trips_the_read_timeout_then_finishes(server: DemoModelServer) -> None:
    messages = user("[[stall:1]] [[text:4]]")
    with anthropic.Anthropic(api_key="t", base_url=server.url, max_retries=0, timeout=0.3) as c:
        # The headers arrived in time: the SDK does not wrap a timeout during iteration.
        with pytest.raises(httpx2.ReadTimeout):
            with c.messages.stream(model=MODEL, max_tokens=10, messages=messages) as s:
                s.get_final_text()
    with anthropic.Anthropic(api_key="t", base_url=server.url, max_retries=0, timeout=5) as c:
        started = time.monotonic()
        with c.messages.stream(model=MODEL, max_tokens=10, messages=messages) as s:
            assert s.get_final_text() == "word1 word2 word3 word4"
        assert time.monotonic() - started >= 1


def test_closed_stream_is_no_longer_counted_open(
    server: DemoModelServer, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=10, messages=user("[[text:500]] [[slow:50]]")
    ) as s:
        next(iter(s.text_stream))
        assert stats(server)["streams_open"] == 1
    wait_until(lambda: stats(server)["streams_open"] == 0)
    assert stats(server)["streams_max"] == 1


# ----------------------------------------------------------------------------- barrier, echo
def test_barrier_holds_twenty_concurrent_streams(server: DemoModelServer) -> None:
    async def one(c: anthropic.AsyncAnthropic, i: int) -> str:
        async with c.messages.stream(
            model=MODEL, max_tokens=10, messages=user(f"#{i} [[barrier:20]]")
        ) as s:
            return await s.get_final_text()

    async def run() -> list[str]:
        async with anthropic.AsyncAnthropic(api_key="t", base_url=server.url, max_retries=0) as c:
            return await asyncio.gather(*(one(c, i) for i in range(20)))

    assert asyncio.run(run()) == ["barrier reached: 20 concurrent"] * 20
    assert stats(server)["streams_max"] == 20
    assert stats(server)["barrier_open"] == 0


def test_barrier_times_out(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=10, messages=user("[[barrier:3:0.2]] [[text:1]]")
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "barrier timed out: 1 concurrent\n\nword1"


def test_echo_reports_history(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "again [[echo]]"}]},
    ]
    with client.messages.stream(
        model=MODEL,
        max_tokens=10,
        messages=messages,
        tools=TOOLS,
        system=[{"type": "text", "text": "You are helpful. " * 20}],
    ) as s:
        text = s.get_final_text()
    assert text.startswith("echo: ")
    summary = json.loads(text.removeprefix("echo: "))
    assert summary["messages"] == 3
    assert summary["roles"] == ["user", "assistant", "user"]
    assert summary["system"] == ("You are helpful. " * 20)[:200]
    assert summary["tools"] == ["Read", "Glob", "Grep"]


def test_say64_replies_the_given_text_verbatim(client: anthropic.Anthropic) -> None:
    said = "# Title\n\n- one\n- two\n\n<script>alert(1)</script> `x` ünï\n"
    encoded = base64.urlsafe_b64encode(said.encode()).decode()
    message = f"show this [[say64:{encoded}]]"
    with client.messages.stream(model=MODEL, max_tokens=10, messages=user(message)) as s:
        deltas = list(s.text_stream)
    assert "".join(deltas) == said
    assert len(deltas) > 3  # streamed in pieces, like any reply
    with pytest.raises(InvalidRequest, match="base64"):
        parse_directives("[[say64:abc]]")  # not padded: not base64


def test_recorded_requests_contain_the_system_prompt(
    server: DemoModelServer, client: anthropic.Anthropic
) -> None:
    client.messages.create(
        model=MODEL, max_tokens=10, system="SYSTEM-PROMPT-123", messages=user("[[text:1]]")
    )
    [entry] = recorded(server)
    assert entry["body"]["system"] == "SYSTEM-PROMPT-123"
    assert entry["body"]["messages"] == user("[[text:1]]")
    assert entry["headers"]["authorization"] == "Bearer test***"
    assert httpx.delete(f"{server.url}/_requests").json() == []
    assert recorded(server) == []


# ----------------------------------------------------------------------------- demo behaviour
@pytest.mark.parametrize(
    "output",
    [  # the format of shared/tools Read result, and plain text
        "File: src/app.py (lines 1-4 of 4)\n1| import x\n2| def a():\n3|   b\n4| c",
        "import x\ndef a():\n  b\nc",
    ],
)
def test_demo_reads_a_mentioned_path(client: anthropic.Anthropic, output: str) -> None:
    messages = user("What does src/app.py do?")
    started = time.monotonic()
    with client.messages.stream(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS) as s:
        first = s.get_final_message()
    assert time.monotonic() - started >= 5 * DEMO_DELAY_S  # the demo streams at a visible pace
    calls = [(b.name, b.input) for b in first.content if b.type == "tool_use"]
    assert calls == [("Read", {"file_path": "src/app.py"})]
    messages += [assistant(first), tool_results(first, {"Read": output})]
    with client.messages.stream(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS) as s:
        text = s.get_final_text()
    assert "offline demo model" in text.lower()
    assert "ANTHROPIC_API_KEY" in text
    assert "src/app.py:1-3" in text
    assert "```\nimport x\ndef a():\n  b\n```" in text


def test_demo_lists_files_without_a_path(client: anthropic.Anthropic) -> None:
    messages = user("hello, what is this project?")
    first = client.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)
    calls = [(b.name, b.input) for b in first.content if b.type == "tool_use"]
    assert calls == [("Glob", {"pattern": "*"})]
    listing = "\n".join(f"file{i}.txt" for i in range(15))
    messages += [assistant(first), tool_results(first, {"Glob": listing})]
    final = client.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)
    assert final.content[0].type == "text"
    text = final.content[0].text
    assert "15 entries" in text
    assert "`file9.txt`" in text
    assert "file10.txt" not in text


def test_demo_reports_a_tool_error_politely(client: anthropic.Anthropic) -> None:
    messages = user("show me missing.md")
    first = client.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)
    messages += [assistant(first), tool_results(first, {"Read": "File not found"}, True)]
    final = client.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)
    assert final.content[0].type == "text"
    assert "reported an error: *File not found*" in final.content[0].text


# ----------------------------------------------------------------------------- lifecycle
@pytest.fixture
def server_errors() -> Iterator[list[logging.LogRecord]]:
    """ERROR records that uvicorn logs (an app crash, a cancelled response, ...)."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    records: list[logging.LogRecord] = []
    handler = Collect(logging.ERROR)
    logging.getLogger("uvicorn.error").addHandler(handler)
    yield records
    logging.getLogger("uvicorn.error").removeHandler(handler)


def test_stop_drops_open_streams_and_returns_promptly(
    server_errors: list[logging.LogRecord],
) -> None:
    srv = DemoModelServer().start()
    stopper = threading.Thread(target=srv.stop)
    with anthropic.Anthropic(api_key="t", base_url=srv.url, max_retries=0) as c:
        with c.messages.stream(model=MODEL, max_tokens=10, messages=user("[[stall:60]]")) as s:
            next(iter(s.text_stream))
            started = time.monotonic()
            stopper.start()
            # A broken stream is not wrapped by the SDK: the transport's own error comes out.
            with pytest.raises(httpx2.RemoteProtocolError):
                s.get_final_text()
    stopper.join(10)
    assert not stopper.is_alive()
    assert time.monotonic() - started < 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.url}/_stats")
    srv.stop()  # idempotent
    assert [r.getMessage() for r in server_errors] == []  # connections dropped, nothing crashed


def test_module_runs_in_the_foreground() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.devtools.demo_model", "--port", str(port)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def up() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/_stats").status_code == 200
            except httpx.ConnectError:
                return False

        wait_until(up)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}" in output
