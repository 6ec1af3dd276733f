"""The load: N people, each holding one conversation of several turns over a WebSocket.

Each simulated person connects (at a random moment within the ramp), starts a new conversation
(conversation_created, greeting text, response_done), then for each turn reads for a random
think time, sends a message and reads the reply to its terminal chunk. From the words' stamps
it records the added time to the first text chunk (receipt minus send minus the stand-in's own
first-token delay), every word's delay (receipt minus emission), and which words arrived.

Only new-conversation starts and message turns are used (a resuming `start` is out of scope).
Randomness comes from one seed, so two systems measured with the same seed get the same load.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from benchmarks.stamps import WordStream, account_words
from benchmarks.systems import System


@dataclass(frozen=True)
class LoadConfig:
    clients: int
    turns: int = 2
    words: int = 100
    first_token_delay_s: float = 0.2
    think_max_s: float = 10.0
    ramp_s: float = 2.0
    seed: int = 1
    reply_timeout_s: float = 60.0
    compression: bool = True


@dataclass
class Reply:
    """One turn as one client saw it."""

    client: int
    turn: int
    failure: str | None = None
    ttfc_ms: float | None = None
    delays_ms: list[float] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    garbled: int = 0
    frames: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class LoadResult:
    replies: list[Reply]
    connect_failures: list[str]
    wall_s: float


def _think_times(cfg: LoadConfig) -> list[tuple[float, list[float]]]:
    """Per client: (connect offset, think time before each turn), from the seed alone."""
    rng = random.Random(cfg.seed)
    return [
        (rng.uniform(0, cfg.ramp_s), [rng.uniform(0, cfg.think_max_s) for _ in range(cfg.turns)])
        for _ in range(cfg.clients)
    ]


def _headers(token: str | None) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {token}"} if token else None


async def open_conversation(
    system: System, client: int, cfg: LoadConfig, open_timeout: float = 60
) -> ClientConnection:
    """Connect and start a new conversation; returns once its greeting's response_done came."""
    ws = await connect(
        system.ws_url(client),
        additional_headers=_headers(system.token(client)),
        compression="deflate" if cfg.compression else None,
        open_timeout=open_timeout,
        ping_interval=None,
        max_size=2**22,
    )
    try:
        await ws.send(json.dumps({"type": "start", "conversation_id": None}))
        async with asyncio.timeout(open_timeout):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "error":
                    raise RuntimeError(f"start refused: {frame.get('content')}")
                if frame["type"] == "response_done":
                    return ws
    except BaseException:
        await ws.close()
        raise


async def ask(ws: ClientConnection, client: int, turn: int, cfg: LoadConfig) -> Reply:
    """Send one message and read its reply to the terminal chunk."""
    reply = Reply(client, turn)
    words = WordStream()
    message = {
        "type": "message",
        "content": f"Question {turn + 1} from person {client}: how does this project work?",
        "client_message_id": uuid.uuid4().hex,
    }
    sent_ns = time.time_ns()
    await ws.send(json.dumps(message))
    try:
        async with asyncio.timeout(cfg.reply_timeout_s):
            while True:
                raw = await ws.recv()
                received_us = time.time_ns() // 1000
                frame: dict[str, Any] = json.loads(raw)
                kind = frame.get("type")
                if kind == "text":
                    reply.frames += 1
                    if reply.ttfc_ms is None:
                        elapsed_ms = (received_us * 1000 - sent_ns) / 1e6
                        reply.ttfc_ms = elapsed_ms - cfg.first_token_delay_s * 1000
                    words.feed(frame.get("content") or "", received_us)
                elif kind == "response_done" and "turn_id" in frame:
                    break
                elif kind == "error":
                    # With a turn_id it ends the turn; without, the message was refused.
                    reply.failure = f"error: {frame.get('content')}"
                    break
    except TimeoutError:
        reply.failure = "timeout"
    words.close()
    account = account_words(words.indices, cfg.words)
    reply.delays_ms = words.delays_ms
    reply.lost, reply.duplicated, reply.reordered = (
        account.lost,
        account.duplicated,
        account.reordered,
    )
    reply.garbled = words.garbled
    return reply


async def _person(
    system: System,
    client: int,
    cfg: LoadConfig,
    plan: tuple[float, list[float]],
    out: list[Reply],
    connect_failures: list[str],
) -> None:
    offset, thinks = plan
    await asyncio.sleep(offset)
    try:
        ws = await open_conversation(system, client, cfg)
    except (OSError, WebSocketException, TimeoutError, RuntimeError, ValueError) as exc:
        connect_failures.append(f"client {client}: {type(exc).__name__}: {exc}")
        out.extend(Reply(client, t, failure="not connected") for t in range(cfg.turns))
        return
    try:
        for turn, think in enumerate(thinks):
            await asyncio.sleep(think)
            try:
                reply = await ask(ws, client, turn, cfg)
            except (OSError, WebSocketException) as exc:
                reply = Reply(client, turn, failure=f"connection lost: {type(exc).__name__}")
            out.append(reply)
            if reply.failure is not None:
                # The connection's state is unknown now: the rest of this person's turns fail.
                out.extend(
                    Reply(client, t, failure="abandoned") for t in range(turn + 1, cfg.turns)
                )
                return
    finally:
        await ws.close()


async def run_load(system: System, cfg: LoadConfig) -> LoadResult:
    plans = _think_times(cfg)
    replies: list[Reply] = []
    connect_failures: list[str] = []
    started = time.monotonic()
    await asyncio.gather(
        *(_person(system, i, cfg, plans[i], replies, connect_failures) for i in range(cfg.clients))
    )
    replies.sort(key=lambda r: (r.client, r.turn))
    return LoadResult(replies, connect_failures, time.monotonic() - started)
