"""A local server speaking the Anthropic Messages API wire format.

It is the offline demo model of `assistant dev` (no ANTHROPIC_API_KEY set) and the model
stand-in of the test-suite: point the real SDK at it with ``ANTHROPIC_BASE_URL=server.url``.

Behaviour is deterministic and driven by directives in the last user message that has text
(a user message holding tool_result blocks continues the tool loop and is not a new turn):

- ``[[text:N]]``            reply ``word1 ... wordN`` in deltas of one or two words
- ``[[slow:MS]]``           sleep MS ms between deltas (default 0; 15 in the demo behaviour)
- ``[[tool:NAME JSON]]``    call k of the turn uses the k-th tool directive (after a short text);
                            when all were used, the final text quotes each tool_result's first line
- ``[[error:CODE]]``        answer HTTP CODE every time; ``[[error:CODE:K]]`` only while the SDK's
                            ``x-stainless-retry-count`` header is below K (then reply normally)
- ``[[error-midstream]]``   after the first text delta send ``event: error`` (overloaded_error);
                            a non-streaming request gets an HTTP 529 instead
- ``[[stall:S]]``           after the first text delta send nothing for S seconds, then finish
- ``[[barrier:N]]`` or ``[[barrier:N:S]]``  after message_start (streaming; before anything when
                            not streaming) hold until N barrier requests are open at once (or S
                            seconds, default 60), then reply ``barrier reached: N concurrent``
                            (or ``barrier timed out: K concurrent``) ahead of any other text
- ``[[echo]]``              reply ``echo: {"messages":n,"roles":[..],"system":"..","tools":[..]}``

Content directives (text, tool, echo, barrier) combine in the final text in the order barrier,
echo, tool summary, words. Without any content directive the DEMO behaviour runs: read a path
mentioned in the text (or list the files), then summarise the tool result.

Besides ``POST /v1/messages``: ``GET /_requests`` (the last 1000 request bodies with a subset of
their headers, keys redacted), ``DELETE /_requests`` (clear them) and ``GET /_stats`` (counters:
total_requests, statuses, streams_open/_max/_total, in_flight_* for non-streaming, barrier_open).
Retryable errors carry ``retry-after-ms: 1``: the SDK ignores a retry-after of 0 (it then backs
off 0.5 s, 1 s, ...), so this is what makes its retries immediate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

DEMO_DELAY_S = 0.015
MIDSTREAM = "Overloaded (demo model [[error-midstream]])"
DEMO_HEAD = (
    "**Offline demo model**: no `ANTHROPIC_API_KEY` is set, so this answer comes from "
    "the built-in demo model, not from Claude.\n\n"
)
DEMO_HINT = "Mention a file such as `README.md` and I will read it for you."
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
RECORDED_HEADERS = (
    "anthropic-version anthropic-beta content-type idempotency-key user-agent "
    "x-stainless-retry-count x-stainless-read-timeout"
).split()


class InvalidRequest(ValueError):
    """The request cannot be answered: becomes a 400 invalid_request_error."""


# ----------------------------------------------------------------------------- planning (pure)
@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


Block = TextPart | ToolCall


@dataclass(frozen=True)
class ReplyPlan:
    """What to send: content blocks and how (pace, stall, errors, barrier)."""

    blocks: tuple[Block, ...] = ()
    stop_reason: str = "end_turn"
    delay_s: float = 0.0
    stall_s: float = 0.0
    error_status: int | None = None
    error_midstream: bool = False
    barrier: int | None = None
    barrier_timeout_s: float = 60.0


@dataclass
class Directives:
    words: int | None = None
    slow_ms: float | None = None
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: tuple[int, int | None] | None = None
    error_midstream: bool = False
    stall_s: float = 0.0
    barrier: tuple[int, float] | None = None
    echo: bool = False

    @property
    def has_content(self) -> bool:
        return bool(self.words is not None or self.tools or self.echo or self.barrier)


_SIMPLE = re.compile(
    r"\[\[(text|slow|error|stall|barrier):([0-9.:]+)\]\]|\[\[(echo|error-midstream)\]\]"
)
_TOOL = re.compile(r"\[\[tool:([\w-]+)\s*")


def parse_directives(text: str) -> Directives:
    d = Directives()
    for m in _SIMPLE.finditer(text):
        if m.group(3):
            d.echo = d.echo or m.group(3) == "echo"
            d.error_midstream = d.error_midstream or m.group(3) == "error-midstream"
            continue
        name, args = m.group(1), m.group(2).split(":")
        try:
            if name == "text":
                d.words = int(args[0])
            elif name == "slow":
                d.slow_ms = float(args[0])
            elif name == "stall":
                d.stall_s = float(args[0])
            elif name == "error":
                d.error = (int(args[0]), int(args[1]) if len(args) > 1 else None)
            else:
                d.barrier = (int(args[0]), float(args[1]) if len(args) > 1 else 60.0)
        except (ValueError, IndexError) as exc:
            raise InvalidRequest(f"bad directive {m.group(0)!r}") from exc
    for m in _TOOL.finditer(text):
        pos, tool_input = m.end(), cast(Any, {})
        if not text.startswith("]]", pos):
            try:
                tool_input, pos = json.JSONDecoder().raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"bad JSON in tool directive at {m.start()}: {exc}") from exc
        if not isinstance(tool_input, dict) or not text[pos:].lstrip().startswith("]]"):
            raise InvalidRequest(f"tool directive at {m.start()} needs a JSON object and ']]'")
        d.tools.append((m.group(1), tool_input))
    return d


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _text_of(content: Any) -> str:
    return "\n".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def _is_user_text(msg: Mapping[str, Any]) -> bool:
    types = {b.get("type") for b in _blocks(msg.get("content"))}
    return msg.get("role") == "user" and "text" in types and "tool_result" not in types


def _system_text(system: Any) -> str:
    return system if isinstance(system, str) else _text_of(system)


def validate_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: must be 'user' or 'assistant'")
        if not isinstance(msg.get("content"), str | list):
            raise InvalidRequest(f"messages.{i}.content: must be a string or a list of blocks")
    if not isinstance(body.get("system", ""), str | list):
        raise InvalidRequest("system: must be a string or a list of text blocks")
    if not isinstance(body.get("tools", []), list):
        raise InvalidRequest("tools: must be a list")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:160]


def _target(tool_input: Mapping[str, Any]) -> str:
    for key in ("path", "pattern"):
        if isinstance(tool_input.get(key), str):
            return str(tool_input[key])
    return json.dumps(tool_input, sort_keys=True)


_PATHLIKE = re.compile(r"[\w.\-/]*[A-Za-z][\w.\-/]*")


def find_path(text: str) -> str | None:
    """The first token that looks like a file path (README.md, src/app.py), if any."""
    for token in text.split():
        token = token.strip("`'\"()[]{}<>,;:!?").rstrip(".")
        if (
            _PATHLIKE.fullmatch(token)
            and token.lower() not in ("e.g", "i.e")
            and ("/" in token or re.search(r"\.[A-Za-z0-9]+$", token))
        ):
            return token
    return None


_NUMBERED = re.compile(r"\s*(\d+)\| ?(.*)")


def _numbered_lines(content: str, start_line: Any) -> list[tuple[int, str]]:
    """The file lines in a read_file result: "12| text" lines if it has them, else all lines."""
    numbered = [(int(m[1]), m[2]) for ln in content.splitlines() if (m := _NUMBERED.fullmatch(ln))]
    first = start_line if isinstance(start_line, int) else 1
    return numbered or [(first + i, ln) for i, ln in enumerate(content.splitlines())]


def _demo_final(call: ToolCall, content: str, is_error: bool) -> str:
    head, target = DEMO_HEAD, _target(call.input)
    if is_error:
        return (
            head + f"I tried `{call.name}` on `{target}`, but the tool reported an error: "
            f"*{_first_line(content) or 'no details'}*. Maybe check the name and try again?"
        )
    if call.name == "read_file":
        lines = _numbered_lines(content, call.input.get("start_line"))[:3]
        if not lines:
            return head + f"I read `{target}`: the file is empty."
        cite = f"{target}:{lines[0][0]}-{lines[-1][0]}"
        body = "\n".join(text for _, text in lines).replace("```", "'''")
        return (
            head + f"I read `{target}`. Here are its first lines (`{cite}`):\n\n```\n{body}\n"
            "```\n\nSet `ANTHROPIC_API_KEY` to ask the real Claude about it."
        )
    entries = [ln.strip() for ln in content.splitlines() if ln.strip()[:1] not in ("", "[")]
    listing = "\n".join(f"- `{e}`" for e in entries[:10]) or "- *(nothing)*"
    return (
        head + f"I listed the project files (`{target}`): {len(entries)} entries, the first "
        f"{min(len(entries), 10)} are:\n\n{listing}\n\nAsk me about one of them!"
    )


def _tool_id(messages: Any, k: int) -> str:
    digest = hashlib.sha256(f"{json.dumps(messages, sort_keys=True)}|{k}".encode()).hexdigest()
    return f"toolu_demo{digest[:20]}"


@dataclass(frozen=True)
class Turn:
    """The current turn: the last user text and the tool rounds that followed it."""

    text: str
    rounds: int  # assistant messages with tool_use after the text
    results: list[tuple[ToolCall, str, bool]]  # (the call, the result's text, is_error)


def current_turn(messages: list[dict[str, Any]]) -> Turn:
    start = max((i for i, m in enumerate(messages) if _is_user_text(m)), default=-1)
    text = _text_of(messages[start]["content"]) if start >= 0 else ""
    rounds, calls, results = 0, dict[str, ToolCall](), list[tuple[ToolCall, str, bool]]()
    for message in messages[start + 1 :]:
        blocks = _blocks(message["content"])
        rounds += any(b.get("type") == "tool_use" for b in blocks)
        for b in blocks:
            if b.get("type") == "tool_use":
                call_id, name = str(b.get("id")), str(b.get("name"))
                calls[call_id] = ToolCall(call_id, name, dict(b.get("input") or {}))
            elif b.get("type") == "tool_result":
                call = calls.get(str(b.get("tool_use_id")), ToolCall("?", "tool", {}))
                results.append((call, _text_of(b.get("content")), bool(b.get("is_error"))))
    return Turn(text, rounds, results)


def _demo_plan(plan: ReplyPlan, turn: Turn, body: Mapping[str, Any]) -> ReplyPlan:
    names = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    path = find_path(turn.text)
    if turn.rounds == 0 and path and "read_file" in names:
        call, intro = ToolCall("", "read_file", {"path": path}), f"Let me look at `{path}`."
    elif turn.rounds == 0 and "list_files" in names:
        call, intro = ToolCall("", "list_files", {"pattern": "*"}), "Let me list the files."
    elif turn.results:
        return replace(plan, blocks=(TextPart(_demo_final(*turn.results[-1])),))
    else:
        return replace(plan, blocks=(TextPart(DEMO_HEAD + DEMO_HINT),))
    call = replace(call, id=_tool_id(body["messages"], turn.rounds))
    return replace(plan, stop_reason="tool_use", blocks=(TextPart(intro), call))


def _directive_plan(plan: ReplyPlan, d: Directives, turn: Turn, body: Any) -> ReplyPlan:
    if turn.rounds < len(d.tools):
        name, tool_input = d.tools[turn.rounds]
        intro = TextPart(f"Calling `{name}` (step {turn.rounds + 1} of {len(d.tools)}).")
        call = ToolCall(_tool_id(body["messages"], turn.rounds), name, tool_input)
        return replace(plan, stop_reason="tool_use", blocks=(intro, call))
    parts: list[str] = []
    if d.echo:
        summary = {
            "messages": len(body["messages"]),
            "roles": [m["role"] for m in body["messages"]],
            "system": _system_text(body.get("system", ""))[:200],
            "tools": [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)],
        }
        parts.append("echo: " + json.dumps(summary, separators=(",", ":")))
    if d.tools:
        lines = [
            f'- {c.name} {_target(c.input)}{" failed" if err else ""}: "{_first_line(text)}"'
            for c, text, err in turn.results
        ]
        parts.append("Tool results:\n" + ("\n".join(lines) or "- (none received)"))
    if d.words is not None:
        parts.append(" ".join(f"word{i}" for i in range(1, d.words + 1)))
    return replace(plan, blocks=(TextPart("\n\n".join(parts)),) if parts else ())


def plan_reply(body: Any, retry_count: int = 0) -> ReplyPlan:
    """What to answer to one Messages API request body: pure and deterministic.

    `retry_count` is the SDK's `x-stainless-retry-count` header (for `[[error:CODE:K]]`).
    Raises InvalidRequest for a body the real API would refuse.
    """
    validate_request(body)
    turn = current_turn(body["messages"])
    d = parse_directives(turn.text)
    default_delay = 0.0 if d.has_content else DEMO_DELAY_S
    plan = ReplyPlan(
        delay_s=default_delay if d.slow_ms is None else d.slow_ms / 1000,
        stall_s=d.stall_s,
        error_midstream=d.error_midstream,
        barrier=d.barrier[0] if d.barrier else None,
        barrier_timeout_s=d.barrier[1] if d.barrier else 60.0,
    )
    if d.error and (d.error[1] is None or retry_count < d.error[1]):
        return replace(plan, error_status=d.error[0])
    return _directive_plan(plan, d, turn, body) if d.has_content else _demo_plan(plan, turn, body)


def with_prefix_text(blocks: tuple[Block, ...], text: str) -> tuple[Block, ...]:
    if blocks and isinstance(blocks[0], TextPart):
        sep = "\n\n" if blocks[0].text else ""
        return (TextPart(text + sep + blocks[0].text), *blocks[1:])
    return (TextPart(text), *blocks)


def text_chunks(text: str) -> list[str]:
    """Split text into deltas of one or two words (alternating); they join back to `text`."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[len("".join(tokens)) :]
    chunks, i, size = [], 0, 1
    while i < len(tokens):
        chunks.append("".join(tokens[i : i + size]))
        i, size = i + size, 3 - size
    if tail:
        chunks.append(tail)
    return chunks or [""]


def json_chunks(value: dict[str, Any]) -> list[str]:
    """The tool input as JSON, split into several `partial_json` fragments."""
    raw = json.dumps(value)
    size = max(1, -(-len(raw) // 4))
    return [raw[i : i + size] for i in range(0, len(raw), size)]


# ----------------------------------------------------------------------------- transport
@dataclass
class _Waiter:
    n: int
    seen: int
    event: asyncio.Event = field(default_factory=asyncio.Event)


class _State:
    def __init__(self) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self.stats: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.barrier_open = 0
        self._waiters: list[_Waiter] = []

    def opened(self, kind: str, barrier: bool) -> None:
        self.stats[f"{kind}_open"] += 1
        self.stats[f"{kind}_total"] += 1
        self.stats[f"{kind}_max"] = max(self.stats[f"{kind}_max"], self.stats[f"{kind}_open"])
        if barrier:
            self._barrier_changed(+1)

    def closed(self, kind: str, barrier: bool) -> None:
        self.stats[f"{kind}_open"] -= 1
        if barrier:
            self._barrier_changed(-1)

    def _barrier_changed(self, delta: int) -> None:
        self.barrier_open += delta
        for w in self._waiters:
            w.seen = max(w.seen, self.barrier_open)
            if w.seen >= w.n:
                w.event.set()

    async def barrier_text(self, n: int, timeout_s: float) -> str:
        """Called by an open barrier request: wait until `n` are open at once."""
        waiter = _Waiter(n, self.barrier_open)
        self._waiters.append(waiter)
        try:
            if waiter.seen < n:
                await asyncio.wait_for(waiter.event.wait(), timeout_s)
            return f"barrier reached: {waiter.seen} concurrent"
        except TimeoutError:
            return f"barrier timed out: {waiter.seen} concurrent"
        finally:
            self._waiters.remove(waiter)


def _error(status: int, message: str) -> JSONResponse:
    headers = {"request-id": "req_demo_error"}
    if status in (408, 409, 429) or status >= 500:  # make the SDK's retries immediate
        headers |= {"retry-after-ms": "1", "retry-after": "0"}
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    return JSONResponse({"type": "error", "error": error}, status, headers=headers)


def _usage(body: Mapping[str, Any], blocks: tuple[Block, ...]) -> tuple[int, int]:
    prompt = json.dumps([body.get("system"), body["messages"], body.get("tools")])
    out = sum(
        len(b.text.split()) if isinstance(b, TextPart) else len(json.dumps(b.input)) // 4
        for b in blocks
    )
    return max(1, len(prompt) // 4), max(1, out)


def _block_json(block: Block, empty: bool = False) -> dict[str, Any]:
    if isinstance(block, TextPart):
        return {"type": "text", "text": "" if empty else block.text}
    return {
        "type": "tool_use",
        "id": block.id,
        "name": block.name,
        "input": {} if empty else block.input,
    }


def _message(
    msg_id: str, body: Mapping[str, Any], blocks: tuple[Block, ...], stop_reason: str | None
) -> dict[str, Any]:
    tokens_in, tokens_out = _usage(body, blocks)
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [_block_json(b) for b in blocks] if stop_reason else [],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out if stop_reason else 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _sse(event: str, **fields: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **fields})}\n\n".encode()


async def _hold(state: _State, plan: ReplyPlan) -> tuple[Block, ...]:
    """Wait at the barrier, if any; the blocks to send (with the barrier's text first)."""
    if plan.barrier is None:
        return plan.blocks
    text = await state.barrier_text(plan.barrier, plan.barrier_timeout_s)
    return with_prefix_text(plan.blocks, text)


def _deltas(block: Block) -> list[dict[str, Any]]:
    if isinstance(block, TextPart):
        return [{"type": "text_delta", "text": t} for t in text_chunks(block.text)]
    fragments = ["", *json_chunks(block.input)]  # the real API starts with an empty one too
    return [{"type": "input_json_delta", "partial_json": p} for p in fragments]


async def _sse_events(
    state: _State, plan: ReplyPlan, body: Mapping[str, Any], msg_id: str
) -> AsyncGenerator[bytes, None]:
    yield _sse("message_start", message=_message(msg_id, body, plan.blocks, None))
    blocks, sent = await _hold(state, plan), 0
    for index, block in enumerate(blocks):
        yield _sse("content_block_start", index=index, content_block=_block_json(block, True))
        if index == 0:
            yield _sse("ping")
        for delta in _deltas(block):
            if sent and plan.delay_s:
                await asyncio.sleep(plan.delay_s)
            yield _sse("content_block_delta", index=index, delta=delta)
            sent += 1
            if sent == 1 and plan.error_midstream:
                yield _sse("error", error={"type": "overloaded_error", "message": MIDSTREAM})
                return
            if sent == 1 and plan.stall_s:
                await asyncio.sleep(plan.stall_s)
        yield _sse("content_block_stop", index=index)
    usage = {"output_tokens": _usage(body, blocks)[1]}
    delta = {"stop_reason": plan.stop_reason, "stop_sequence": None}
    yield _sse("message_delta", delta=delta, usage=usage)
    yield _sse("message_stop")


class _TrackedStream(StreamingResponse):
    """An SSE response whose bookkeeping ends however the stream ends (done or disconnect)."""

    def __init__(self, state: _State, plan: ReplyPlan, body: Mapping[str, Any], msg_id: str):
        self.events = _sse_events(state, plan, body, msg_id)
        self.state, self.barrier = state, plan.barrier is not None
        headers = {"cache-control": "no-cache", "request-id": f"req_{msg_id}"}
        super().__init__(self.events, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.state.opened("streams", self.barrier)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.state.closed("streams", self.barrier)
            await self.events.aclose()


async def _messages(request: Request) -> Response:
    state: _State = request.app.state.demo
    state.stats["total_requests"] += 1
    raw = await request.body()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    headers = {h: request.headers[h] for h in RECORDED_HEADERS if h in request.headers}
    for secret in ("x-api-key", "authorization"):  # recorded, but never in full
        if secret in request.headers:
            scheme, _, key = request.headers[secret].rpartition(" ")
            headers[secret] = f"{scheme} {key[:4]}***".lstrip()
    state.requests.append({"seq": state.stats["total_requests"], "headers": headers, "body": body})
    response = await _answer(state, body, headers.get("x-stainless-retry-count", "0"))
    state.statuses[str(response.status_code)] += 1
    return response


async def _answer(state: _State, body: Any, retry_count: str) -> Response:
    try:
        plan = plan_reply(body, int(retry_count) if retry_count.isdigit() else 0)
    except InvalidRequest as exc:
        return _error(400, str(exc))
    if plan.error_status is not None:
        return _error(plan.error_status, f"demo model: simulated HTTP {plan.error_status}")
    msg_id = f"msg_demo{state.stats['total_requests']:08d}"
    if body.get("stream"):
        return _TrackedStream(state, plan, body, msg_id)
    state.opened("in_flight", plan.barrier is not None)
    try:
        blocks = await _hold(state, plan)
        await asyncio.sleep(plan.stall_s)
    finally:
        state.closed("in_flight", plan.barrier is not None)
    if plan.error_midstream:
        return _error(529, MIDSTREAM)
    return JSONResponse(
        _message(msg_id, body, blocks, plan.stop_reason), headers={"request-id": f"req_{msg_id}"}
    )


async def _requests(request: Request) -> Response:
    state: _State = request.app.state.demo
    if request.method == "DELETE":
        state.requests.clear()
    return JSONResponse(list(state.requests))


async def _stats(request: Request) -> Response:
    state: _State = request.app.state.demo
    counters = {"total_requests": 0, "streams_open": 0, "streams_max": 0, **state.stats}
    return JSONResponse(
        counters
        | {"barrier_open": state.barrier_open, "statuses": dict(state.statuses)}
        | {"recorded": len(state.requests)}
    )


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/messages", _messages, methods=["POST"]),
            Route("/_requests", _requests, methods=["GET", "DELETE"]),
            Route("/_stats", _stats, methods=["GET"]),
        ]
    )
    app.state.demo = _State()
    return app


class DemoModelServer:
    """uvicorn serving `create_app()` in a background thread; `url` is for ANTHROPIC_BASE_URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port, self.url = host, port, ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout_s: float = 10.0) -> DemoModelServer:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        host = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            create_app(),
            log_config=None,  # leave the host process's logging setup alone
            log_level="warning",  # (this does set the level of the `uvicorn.*` loggers)
            loop="asyncio",
            http="h11",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        thread = self._thread = threading.Thread(
            target=asyncio.run, args=(serve(),), name=f"demo-model-{self.port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"demo model server did not start on {self.url}")
            thread.join(0.01)
        return self

    def stop(self) -> None:
        """Drop open connections (clients see a broken stream, as if the model died), then exit."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(_abort_connections, server)
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        self._server = self._thread = self._loop = None

    def __enter__(self) -> DemoModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _abort_connections(server: uvicorn.Server) -> None:
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the offline demo model (Messages API).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    print(f"demo model: ANTHROPIC_BASE_URL=http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
