"""A Messages API stand-in for the benchmark: stamped words at a set rate, as cheaply as possible.

`POST /v1/messages` (streaming) answers with the real SSE wire format the anthropic SDK parses
(message_start, content_block_start, ping, content_block_delta text_delta..., content_block_stop,
message_delta, message_stop): `words` words, the first after `delay_s`, then `rate` per second,
each stamped with its emission time (`benchmarks.stamps.stamp_word`). The schedule is absolute
(word i is due at start + delay + i / rate), so a late wake-up never stretches a reply.

It has to drive hundreds of streams at once on a shared 2-core machine without becoming the
bottleneck it measures, so it is a bare asyncio protocol (uvloop when installed): one timer
callback per word, pre-encoded frame halves, HTTP/1.1 keep-alive with chunked encoding, and no
framework. It is separate from shared/devtools/demo_model (the test-suite's scripted stand-in).

`GET /_stats` answers counters (streams total/open/max, words sent) as JSON.

    python -m benchmarks.standin --port 8766 --words 100 --rate 50 --delay-ms 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, cast

from benchmarks.stamps import stamp_word

_DELTA_HEAD = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"'
)
_DELTA_TAIL = b'"}}\n\n'
_HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\nrequest-id: req_bench\r\n\r\n"
)
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class StandinConfig:
    words: int = 100
    rate: float = 50.0
    delay_s: float = 0.2


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk of the chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _sse(event: str, **fields: Any) -> bytes:
    data = json.dumps({"type": event, **fields}, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


def _opening(model: str, msg_id: str) -> bytes:
    message: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    block = {"type": "text", "text": ""}
    return _chunk(
        _sse("message_start", message=message)
        + _sse("content_block_start", index=0, content_block=block)
        + _sse("ping")
    )


def _closing(words: int) -> bytes:
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    return (
        _chunk(
            _sse("content_block_stop", index=0)
            + _sse("message_delta", delta=delta, usage={"output_tokens": words})
            + _sse("message_stop")
        )
        + b"0\r\n\r\n"
    )


def _simple(status: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    ).encode() + data


class Counters:
    def __init__(self) -> None:
        self.streams_total = 0
        self.streams_open = 0
        self.streams_max = 0
        self.words_sent = 0
        self.bad_requests = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class _Stream:
    """One reply being written: schedules its own next word with loop.call_at."""

    __slots__ = ("conn", "handle", "index", "start")

    def __init__(self, conn: _Connection, start: float) -> None:
        self.conn = conn
        self.start = start
        self.index = 0
        self.handle: asyncio.TimerHandle | None = None

    def schedule(self) -> None:
        cfg = self.conn.config
        due = self.start + cfg.delay_s + self.index / cfg.rate
        self.handle = self.conn.loop.call_at(due, self.emit)

    def emit(self) -> None:
        conn = self.conn
        if conn.transport is None or conn.transport.is_closing():
            return
        word = stamp_word(self.index, time.time_ns() // 1000).encode()
        conn.transport.write(_chunk(_DELTA_HEAD + word + _DELTA_TAIL))
        conn.counters.words_sent += 1
        self.index += 1
        if self.index < conn.config.words:
            self.schedule()
        else:
            conn.transport.write(conn.closing)
            conn.finish_stream()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


class _Connection(asyncio.Protocol):
    def __init__(self, config: StandinConfig, counters: Counters) -> None:
        self.config = config
        self.counters = counters
        self.closing = _closing(config.words)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.stream: _Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        del exc  # a client going away mid-reply is normal: its stream just stops
        self.transport = None
        if self.stream is not None:
            self.stream.cancel()
            self.finish_stream()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # The SDK sends one request at a time per connection (no pipelining).
        while self.stream is None and self._one_request():
            pass

    def _one_request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._fail("431 Request Header Fields Too Large", "headers too large")
            return False
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
        if len(self.buffer) < end + 4 + length:
            return False
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        method, _, rest = lines[0].partition(" ")
        self._handle(method, rest.partition(" ")[0], body)
        return True

    def _handle(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        if method == "GET" and path == "/_stats":
            self.transport.write(_simple("200 OK", self.counters.as_dict()))
            return
        if method != "POST" or not path.startswith("/v1/messages"):
            self.transport.write(_simple("404 Not Found", _error("not_found_error", path)))
            return
        try:
            request = json.loads(body)
            model, messages = request["model"], request["messages"]
            if not request.get("stream") or not messages:
                raise ValueError("this stand-in only streams replies to a non-empty conversation")
        except (ValueError, KeyError, TypeError) as exc:
            self.counters.bad_requests += 1
            self.transport.write(_simple("400 Bad Request", _error("invalid_request_error", exc)))
            return
        counters = self.counters
        counters.streams_total += 1
        counters.streams_open += 1
        counters.streams_max = max(counters.streams_max, counters.streams_open)
        self.transport.write(_HEADERS + _opening(str(model), f"msg_{counters.streams_total}"))
        self.stream = _Stream(self, self.loop.time())
        self.stream.schedule()

    def finish_stream(self) -> None:
        if self.stream is None:
            return
        self.stream = None
        self.counters.streams_open -= 1
        if self.buffer and self.transport is not None:
            self.data_received(b"")

    def _fail(self, status: str, message: str) -> None:
        assert self.transport is not None
        self.transport.write(_simple(status, _error("invalid_request_error", message)))
        self.transport.close()


def _error(kind: str, message: object) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": str(message)}}


async def serve(config: StandinConfig, host: str, port: int, ready: asyncio.Event | None) -> None:
    loop = asyncio.get_running_loop()
    counters = Counters()
    server = await loop.create_server(
        lambda: _Connection(config, counters), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"standin listening on http://{host}:{bound}", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def run(config: StandinConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux
        asyncio.run(serve(config, host, port, None))
    else:
        uvloop.run(serve(config, host, port, None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="words per second")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="first-token delay")
    args = parser.parse_args(argv)
    if args.words < 1 or args.rate <= 0 or args.delay_ms < 0:
        parser.error("--words >= 1, --rate > 0 and --delay-ms >= 0 please")
    config = StandinConfig(words=args.words, rate=args.rate, delay_s=args.delay_ms / 1000)
    try:
        run(config, args.host, args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
