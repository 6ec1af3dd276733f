"""How much the stand-in itself costs: K streams held open against it, nothing else.

A bare HTTP client (no SDK, so the client costs little) keeps K streaming requests running
back to back for a while and reads the words' stamps; the report is the stand-in's CPU (share
of one core), the words it delivered per second, and their delay as this client saw them (the
stand-in's own timer jitter plus this client's, an upper bound of what it adds to any system).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks.procstats import cpu_seconds
from benchmarks.stamps import percentile
from benchmarks.systems import Standin

_WORD = re.compile(rb'"text":"w(\d+)@([0-9a-f]+) "')
_BODY = json.dumps(
    {
        "model": "bench",
        "max_tokens": 4096,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
).encode()


async def _stream_forever(host: str, port: int, until: float, delays: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY
    words = 0
    try:
        while time.monotonic() < until:
            writer.write(request)
            tail = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    return words
                now_us = time.time_ns() // 1000
                for match in _WORD.finditer(tail + data):
                    if match.end() > len(tail):  # a word that ended in the tail was counted
                        delays.append((now_us - int(match[2], 16)) / 1000)
                        words += 1
                if b"0\r\n\r\n" in data[-7:]:
                    break
                tail = data[-64:]
    finally:
        writer.close()
    return words


async def check(standin: Standin, streams: int, seconds: float) -> dict[str, Any]:
    url = urlsplit(standin.url)
    assert url.hostname is not None
    assert url.port is not None
    delays: list[float] = []
    cpu_before, started = cpu_seconds(standin.pid), time.monotonic()
    counts = await asyncio.gather(
        *(
            _stream_forever(url.hostname, url.port, started + seconds, delays)
            for _ in range(streams)
        )
    )
    wall = time.monotonic() - started
    cpu = cpu_seconds(standin.pid) - cpu_before
    return {
        "streams": streams,
        "seconds": wall,
        "words_per_s": sum(counts) / wall,
        "standin_cpu_util": cpu / wall,
        "word_p50_ms": percentile(delays, 50),
        "word_p99_ms": percentile(delays, 99),
    }


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['streams']} streams for {r['seconds']:.0f} s: {r['words_per_s']:.0f} words/s, "
        f"the stand-in used {100 * r['standin_cpu_util']:.0f}% of one core; word delay seen by "
        f"a bare client p50 {r['word_p50_ms']:.1f} ms, p99 {r['word_p99_ms']:.1f} ms"
    )
