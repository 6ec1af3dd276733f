"""The assistant WebSocket: autocoder's protocol, plus resume, cancel, auth and isolation.

The handler is thin: it validates, persists through shared/, enqueues by id, and follows the
turn's chunks from the relay. Reading client frames and streaming a turn are separate tasks,
so a `ping` is answered at once even while a reply streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketState

from api.deps import bearer_token, resolve_user
from api.follow import GONE, TurnFollower
from api.limits import check_concurrent_turns, check_turn_allowed
from api.turns import cancel_turn, enqueue_or_fail
from shared import conversations as convs
from shared import projects
from shared.config import Settings, get_settings
from shared.db import session_scope
from shared.errors import AssistantError, Forbidden, NotFound, Unauthorized
from shared.models import Turn, TurnStatus
from shared.protocol import (
    CLIENT_TYPES,
    GREETING,
    CancelMsg,
    Chunk,
    PingMsg,
    ResumeMsg,
    StartMsg,
    UserMsg,
    client_msg_adapter,
    error_chunk,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/assistant", tags=["assistant-chat"])

SUBPROTOCOL = "assistant"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
NO_SESSION = "No active session. Send 'start' first."


@dataclass
class Conn:
    ws: WebSocket
    settings: Settings
    project: str
    user_id: int = 0
    conversation_id: int | None = None
    id: str = field(default_factory=lambda: f"{time.time_ns()}-{uuid.uuid4().hex[:8]}")
    follower: asyncio.Task[None] | None = None
    following: int | None = None
    # Checked again for every new turn, so a revoked token stops working on open sockets too.
    credential: str | None = None
    generation: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Highest seq sent per turn on this connection: switching followers never repeats one.
    sent_seq: dict[int, int] = field(default_factory=dict)

    async def send(self, chunk: Chunk) -> None:
        async with self.send_lock:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.send_text(chunk.dump())
                if chunk.turn_id is not None and chunk.seq is not None:
                    self.sent_seq[chunk.turn_id] = chunk.seq

    async def send_for(self, generation: int, chunk: Chunk) -> None:
        """Send on behalf of a follower; a replaced (stale) follower can never send again."""
        if generation == self.generation:
            await self.send(chunk)

    async def error(self, content: str) -> None:
        await self.send(error_chunk(content))


def _token_from_subprotocols(ws: WebSocket) -> tuple[str | None, str | None]:
    """Browsers cannot set headers on a WebSocket; they offer `assistant, bearer.<token>`.

    The token then travels in Sec-WebSocket-Protocol, which servers do not log (a query
    string would end up in access logs)."""
    offered = ws.scope.get("subprotocols") or []
    token = next(
        (
            p[len(TOKEN_SUBPROTOCOL_PREFIX) :]
            for p in offered
            if p.startswith(TOKEN_SUBPROTOCOL_PREFIX)
        ),
        None,
    )
    return token, SUBPROTOCOL if SUBPROTOCOL in offered else None


def _credential(ws: WebSocket, token: str | None) -> str | None:
    return bearer_token(ws.headers.get("authorization")) or token


def _authorize(ws: WebSocket, settings: Settings, project_name: str, token: str | None) -> int:
    """Check origin, project name, credentials and project, in that order; the user id."""
    origin = ws.headers.get("origin")
    if origin is not None and origin not in settings.allowed_origins:
        raise Forbidden("Origin not allowed")
    projects.validate_name(project_name)
    with session_scope() as session:
        user = resolve_user(session, settings, _credential(ws, token))
        projects.project_root(projects.get_project(session, project_name))
        assert user.id is not None
        return user.id


@router.websocket("/ws/{project_name}")
async def assistant_ws(websocket: WebSocket, project_name: str) -> None:
    settings = get_settings()
    token, subprotocol = _token_from_subprotocols(websocket)
    # Accept first, then refuse with an error and a close code: browsers cannot read the
    # reason of a refused handshake.
    await websocket.accept(subprotocol=subprotocol)
    conn = Conn(websocket, settings, project_name, credential=_credential(websocket, token))
    try:
        conn.user_id = await run_in_threadpool(_authorize, websocket, settings, project_name, token)
    except AssistantError as exc:
        await conn.error(exc.message)
        await websocket.close(code=exc.ws_close_code or 1008, reason=exc.message[:100])
        return
    app = websocket.app
    app.state.connections[conn.id] = conn
    try:
        await _serve(conn)
    except WebSocketDisconnect:
        pass
    finally:
        app.state.connections.pop(conn.id, None)
        if conn.follower is not None:
            # A disconnect is not a stop: only our forwarding ends; the turn runs on.
            conn.follower.cancel()
        with contextlib.suppress(Exception):
            await app.state.sessions.remove(conn.user_id, conn.id)


async def _serve(conn: Conn) -> None:
    while True:
        message = await conn.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("text")
        if raw is None:
            await conn.error("Binary frames are not supported: send JSON text frames")
            continue
        if len(raw.encode()) > conn.settings.max_ws_frame_bytes:
            await conn.error(f"Message too large (limit {conn.settings.max_ws_frame_bytes} bytes)")
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            await conn.error("Invalid JSON")
            continue
        if not isinstance(data, dict):
            await conn.error("Invalid message: expected a JSON object with a 'type'")
            continue
        msg_type = data.get("type")
        try:
            msg = client_msg_adapter.validate_python(data)
        except ValidationError as exc:
            if msg_type not in CLIENT_TYPES:
                await conn.error(f"Unknown message type: {msg_type}")
            else:
                await conn.error(f"Invalid '{msg_type}' message: {_first_problem(exc)}")
            continue
        try:
            await _handle(conn, msg)
        except AssistantError as exc:
            await conn.error(exc.message)
        except WebSocketDisconnect:
            raise
        except Exception:
            log.exception("websocket %s: %s failed", conn.id, msg_type)
            await conn.error("Internal error; please try again")


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if p not in CLIENT_TYPES)
    return f"{where}: {err['msg']}" if where else str(err["msg"])


async def _handle(conn: Conn, msg: object) -> None:
    if isinstance(msg, PingMsg):
        await conn.send(Chunk(type="pong"))
    elif isinstance(msg, StartMsg):
        await _start(conn, msg.conversation_id)
    elif isinstance(msg, ResumeMsg):
        if msg.turn_id is not None:
            await _resume_turn(conn, msg.turn_id, msg.after_seq)
        elif msg.conversation_id is not None:
            await _start(conn, msg.conversation_id)
        else:
            await conn.error("Missing or invalid conversation_id or turn_id for resume")
    elif isinstance(msg, UserMsg):
        await _message(conn, msg)
    elif isinstance(msg, CancelMsg):
        if conn.conversation_id is None:
            await conn.error(NO_SESSION)
            return
        await cancel_turn(conn.ws.app.state.redis, conn.settings, conn.conversation_id, msg.turn_id)


def _open_conversation(conn: Conn, conversation_id: int | None) -> tuple[int, int | None]:
    """(conversation id, its active turn id); a new conversation gets the stored greeting."""
    with session_scope() as session:
        if conversation_id is None:
            conv = convs.create_conversation(session, conn.project, conn.user_id)
            convs.add_greeting(session, conv)
            assert conv.id is not None
            return conv.id, None
        conv = convs.get_conversation(session, conversation_id, conn.project, conn.user_id)
        active = convs.active_turn(session, conversation_id)
        return conversation_id, active.id if active else None


async def _start(conn: Conn, conversation_id: int | None) -> None:
    new = conversation_id is None
    conv_id, active = await run_in_threadpool(_open_conversation, conn, conversation_id)
    conn.conversation_id = conv_id
    await conn.ws.app.state.sessions.put(conn.user_id, conn.id, conn.project, conv_id)
    await conn.send(Chunk(type="conversation_created", conversation_id=conv_id))
    if new:
        await conn.send(Chunk(type="text", content=GREETING))
        await conn.send(Chunk(type="response_done", status="complete"))
    elif active is not None:
        # Reopened while a reply is still being written: replay it so far, then live.
        _follow(conn, active, 0)


def _load_turn(conn: Conn, turn_id: int) -> Turn:
    with session_scope() as session:
        turn = session.get(Turn, turn_id)
        if turn is None or turn.user_id != conn.user_id:
            raise NotFound("Turn not found")
        # The turn must belong to this project too (the conversation check covers the user).
        convs.get_conversation(session, turn.conversation_id, conn.project, conn.user_id)
        return turn


async def _resume_turn(conn: Conn, turn_id: int, after_seq: int) -> None:
    if conn.conversation_id is None:
        await conn.error(NO_SESSION)
        return
    turn = await run_in_threadpool(_load_turn, conn, turn_id)
    if turn.conversation_id != conn.conversation_id:
        raise NotFound("Turn not found in this conversation")
    _follow(conn, turn_id, after_seq)


def _begin_turn(conn: Conn, content: str, client_message_id: str | None) -> tuple[int, bool, int]:
    """(turn id, created now, the attempt to dispatch if it still waits for a worker, else 0)."""
    assert conn.conversation_id is not None
    with session_scope() as session:
        if resolve_user(session, conn.settings, conn.credential).id != conn.user_id:
            raise Unauthorized("Invalid or revoked token")
        conv = convs.get_conversation(session, conn.conversation_id, conn.project, conn.user_id)
        assert conv.id is not None
        if convs.turn_by_client_id(session, conv.id, client_message_id) is None:
            check_concurrent_turns(session, conn.settings, conn.user_id)
        new = convs.start_turn(session, conv, content, client_message_id)
        assert new.turn.id is not None
        waiting = new.turn.status == TurnStatus.queued
        return new.turn.id, new.created, new.turn.attempt if waiting else 0


async def _message(conn: Conn, msg: UserMsg) -> None:
    if conn.conversation_id is None:
        await conn.error(NO_SESSION)
        return
    content = msg.content.strip()
    if not content:
        await conn.error("Empty message")
        return
    limit = conn.settings.max_message_chars
    if len(content) > limit:
        await conn.error(f"Message too long ({len(content)} characters; the limit is {limit})")
        return
    await check_turn_allowed(conn.ws.app.state.redis, conn.settings, conn.user_id)
    turn_id, created, attempt = await run_in_threadpool(
        _begin_turn, conn, content, msg.client_message_id
    )
    try:
        await conn.send(
            Chunk(
                type="message_accepted",
                turn_id=turn_id,
                conversation_id=conn.conversation_id,
                client_message_id=msg.client_message_id,
            )
        )
        follower = _follow(conn, turn_id, 0)
        if created:
            # Not needed for correctness (the replay log covers a late subscriber), but it
            # keeps the first chunks on the cheap live path.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(follower.subscribed.wait(), 5)
    finally:
        # Stored means it runs, even if the client vanished a moment ago. A repeated message
        # whose turn is still waiting is dispatched again: a duplicate delivery is harmless
        # (the claim admits one), a lost one would leave the turn waiting for nothing.
        if attempt:
            await enqueue_or_fail(conn.ws.app.state.redis, conn.settings, turn_id, attempt)


def _follow(conn: Conn, turn_id: int, after_seq: int) -> TurnFollower:
    """Stream turn `turn_id` to this connection in the background, replacing any other."""
    if conn.follower is not None and not conn.follower.done():
        if conn.following == turn_id:
            # Switching followers of the same live turn (start, then resume): no repeats.
            after_seq = max(after_seq, conn.sent_seq.get(turn_id, 0))
        conn.follower.cancel()
    conn.following = turn_id
    conn.generation += 1
    generation = conn.generation

    async def send(chunk: Chunk) -> None:
        await conn.send_for(generation, chunk)

    app = conn.ws.app
    follower = TurnFollower(app.state.relay, app.state.redis, turn_id, after_seq, send)

    async def run() -> None:
        try:
            await follower.run()
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away; the turn goes on without it
        except Exception:
            # Never leave the client waiting without a terminal chunk.
            log.exception("websocket %s: following turn %s failed", conn.id, turn_id)
            with contextlib.suppress(Exception):
                await send(error_chunk(GONE, turn_id=turn_id))

    conn.follower = asyncio.create_task(run(), name=f"follow-{conn.id}-{turn_id}")
    return follower
