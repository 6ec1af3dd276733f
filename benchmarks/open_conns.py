"""Many open conversations at once (the issue's 10,000 check): what they cost in memory.

Opens `--open` WebSockets (each connected and started: conversation_created, greeting,
response_done), keeps a few of them streaming replies back to back for `--hold` seconds while
the rest sit idle, and reports the system's memory before, with all open, and at its peak.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from typing import Any

from websockets.asyncio.client import ClientConnection

from benchmarks.loadgen import LoadConfig, Reply, ask, open_conversation
from benchmarks.procstats import ProcessGroup
from benchmarks.report import MB
from benchmarks.systems import Standin, System

OPENING_AT_ONCE = 200


def hold_open(system: System, args: argparse.Namespace, standin: Standin) -> dict[str, Any]:
    del standin  # the stand-in's URL is already in the system's environment
    from benchmarks.load import run_async

    try:
        return run_async(_hold(system, args))
    finally:
        system.stop()


async def _hold(system: System, args: argparse.Namespace) -> dict[str, Any]:
    cfg = LoadConfig(
        clients=args.open,
        turns=1,
        words=args.words,
        first_token_delay_s=args.delay_ms / 1000,
        reply_timeout_s=args.reply_timeout,
        compression=not args.no_compression,
    )
    group = ProcessGroup(system.roots)
    await asyncio.sleep(1.0)
    group.begin()
    before = group.sample()
    conns: list[tuple[int, ClientConnection]] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(OPENING_AT_ONCE)

    async def open_one(i: int) -> None:
        async with gate:
            try:
                conns.append((i, await open_conversation(system, i, cfg, open_timeout=180)))
            except Exception as exc:
                failures.append(f"client {i}: {type(exc).__name__}: {exc}")

    async def keep_streaming(i: int, ws: ClientConnection, until: float) -> list[Reply]:
        replies: list[Reply] = []
        while time.monotonic() < until:
            reply = await ask(ws, i, len(replies), cfg)
            replies.append(reply)
            if reply.failure is not None:
                break
        return replies

    async with group.sampling(1.0):
        started = time.monotonic()
        await asyncio.gather(*(open_one(i) for i in range(args.open)))
        open_s = time.monotonic() - started
        open_bytes = group.sample()
        until = time.monotonic() + args.hold
        streams = await asyncio.gather(
            *(keep_streaming(i, ws, until) for i, ws in conns[: args.streaming])
        )
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        stats = group.end()
    replies = [r for rs in streams for r in rs]

    async def close(ws: ClientConnection) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await ws.close()

    await asyncio.gather(*(close(ws) for _, ws in conns))
    opened = len(conns)
    return {
        "system": system.name,
        "open": opened,
        "failed_to_open": len(failures),
        "first_failure": failures[0] if failures else None,
        "streaming": min(args.streaming, opened),
        "open_s": open_s,
        "mb_before": before / MB,
        "mb_open": open_bytes / MB,
        "peak_mb": stats.peak_rss / MB,
        "peak_mb_by_process": {k: v / MB for k, v in stats.peak_rss_by_name.items()},
        "per_conversation_kb": (open_bytes - before) / 1024 / opened if opened else math.nan,
        "replies_ok": sum(1 for r in replies if r.ok),
        "replies_failed": sum(1 for r in replies if not r.ok),
        "words_lost": sum(r.lost + r.duplicated + r.reordered for r in replies),
        "cpu_s": stats.cpu_s,
    }
