"""The transport half of the demo model: the Starlette app, its state and the SSE encoding.

`create_app()` answers `POST /v1/messages` with what `planning.plan_reply` decides, plus the
`/_requests` and `/_stats` inspection routes; `DemoModelServer` runs it in a background thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from shared.devtools.demo_model.blocks import (
    Block,
    InvalidRequest,
    ReplyPlan,
)
from shared.devtools.demo_model.cache import PromptCache
from shared.devtools.demo_model.planning import (
    plan_reply,
    with_prefix_text,
)
from shared.devtools.demo_model.titles import is_title_request, title_plan
from shared.devtools.demo_model.wire import (
    block_json,
    deltas,
    message,
    output_tokens,
    server_tool_use,
    sse,
)

MIDSTREAM = "Overloaded (demo model [[error-midstream]])"
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
        self.cache = PromptCache()

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


async def _hold(state: _State, plan: ReplyPlan) -> tuple[Block, ...]:
    """Wait at the barrier, if any; the blocks to send (with the barrier's text first)."""
    if plan.barrier is None:
        return plan.blocks
    text = await state.barrier_text(plan.barrier, plan.barrier_timeout_s)
    return with_prefix_text(plan.blocks, text)


async def _sse_events(
    state: _State, plan: ReplyPlan, body: Mapping[str, Any], msg_id: str, usage: dict[str, Any]
) -> AsyncGenerator[bytes, None]:
    """The response as SSE events. The output tokens reported in message_delta are added to
    `usage` (the request's recorded entry), so a test sees everything a turn was told."""
    yield sse("message_start", message=message(msg_id, body, plan.blocks, None, usage))
    blocks, sent = await _hold(state, plan), 0
    for index, block in enumerate(blocks):
        yield sse("content_block_start", index=index, content_block=block_json(block, True))
        if index == 0:
            yield sse("ping")
        for delta in deltas(block):
            if sent and plan.delay_s:
                await asyncio.sleep(plan.delay_s)
            yield sse("content_block_delta", index=index, delta=delta)
            sent += 1
            if sent == 1 and plan.error_midstream:
                yield sse("error", error={"type": "overloaded_error", "message": MIDSTREAM})
                return
            if sent == 1 and plan.stall_s:
                await asyncio.sleep(plan.stall_s)
        yield sse("content_block_stop", index=index)
    ending: dict[str, Any] = {"stop_reason": plan.stop_reason, "stop_sequence": None}
    if plan.stop_details is not None:
        ending["stop_details"] = plan.stop_details
    end_usage: dict[str, Any] = {"output_tokens": output_tokens(blocks)}
    usage["output_tokens"] = end_usage["output_tokens"]
    if (server := server_tool_use(blocks)) is not None:
        end_usage["server_tool_use"] = server
    yield sse("message_delta", delta=ending, usage=end_usage)
    yield sse("message_stop")


class _TrackedStream(StreamingResponse):
    """An SSE response whose bookkeeping ends however the stream ends (done or disconnect)."""

    def __init__(
        self,
        state: _State,
        plan: ReplyPlan,
        body: Mapping[str, Any],
        msg_id: str,
        usage: dict[str, Any],
    ):
        self.events = _sse_events(state, plan, body, msg_id, usage)
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
    entry = {"seq": state.stats["total_requests"], "headers": headers, "body": body}
    state.requests.append(entry)
    response = await _answer(state, body, headers.get("x-stainless-retry-count", "0"), entry)
    state.statuses[str(response.status_code)] += 1
    return response


async def _answer(state: _State, body: Any, retry_count: str, entry: dict[str, Any]) -> Response:
    try:
        retries = int(retry_count) if retry_count.isdigit() else 0
        plan = title_plan(body) if is_title_request(body) else plan_reply(body, retries)
        if plan.error_status is not None:
            return _error(plan.error_status, f"demo model: simulated HTTP {plan.error_status}")
        # Only a request that is answered reads and writes the prompt cache.
        usage = state.cache.account(body)
    except InvalidRequest as exc:
        return _error(400, str(exc))
    entry["usage"] = usage  # what message_start reports, for tests and benchmarks
    msg_id = f"msg_demo{state.stats['total_requests']:08d}"
    if body.get("stream"):
        return _TrackedStream(state, plan, body, msg_id, usage)
    state.opened("in_flight", plan.barrier is not None)
    try:
        blocks = await _hold(state, plan)
        await asyncio.sleep(plan.stall_s)
    finally:
        state.closed("in_flight", plan.barrier is not None)
    if plan.error_midstream:
        return _error(529, MIDSTREAM)
    answer = message(msg_id, body, blocks, plan.stop_reason, usage)
    usage["output_tokens"] = answer["usage"]["output_tokens"]
    return JSONResponse(answer, headers={"request-id": f"req_{msg_id}"})


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
    parser = argparse.ArgumentParser(
        prog="python -m shared.devtools.demo_model",
        description="Run the offline demo model (Messages API).",
    )
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
