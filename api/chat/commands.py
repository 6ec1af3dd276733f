"""The chat commands a WebSocket client sends: start, message, regenerate, resume, cancel (and
ping).

Each validates, persists through `api.chat.store`, enqueues by id, and follows the turn's
chunks from the relay; none of them waits for a reply to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from starlette.concurrency import run_in_threadpool

from api.chat import last_conversation, store
from api.chat.connection import Connection
from api.limits import check_turn_allowed
from api.turns import cancel_turn, enqueue_or_fail
from shared.conversations import AT_END
from shared.errors import NotFound
from shared.group_commit import GroupCommit
from shared.logs import turn_scope
from shared.protocol import (
    CancelMsg,
    Chunk,
    ClientMsg,
    PingMsg,
    RegenerateMsg,
    ResumeMsg,
    StartMsg,
    UserMsg,
    greeting,
)

log = logging.getLogger(__name__)

NO_SESSION = "No active session. Send 'start' first."


async def handle(conn: Connection, msg: ClientMsg) -> None:
    if isinstance(msg, StartMsg | ResumeMsg | CancelMsg):
        # `message` and `regenerate` re-check in their own transaction (store.begin_turn).
        await run_in_threadpool(
            store.recheck_credential, conn.settings, conn.credential, conn.user_id
        )
    if isinstance(msg, PingMsg):
        await conn.send(Chunk(type="pong"))
    elif isinstance(msg, StartMsg):
        await start(conn, msg.conversation_id)
    elif isinstance(msg, ResumeMsg):
        if msg.turn_id is not None:
            await resume_turn(conn, msg.turn_id, msg.after_seq)
        elif msg.conversation_id is not None:
            await start(conn, msg.conversation_id)
        else:
            await conn.error("Missing or invalid conversation_id or turn_id for resume")
    elif isinstance(msg, UserMsg):
        await message(conn, msg)
    elif isinstance(msg, RegenerateMsg):
        await regenerate(conn, msg)
    elif isinstance(msg, CancelMsg):
        conv_id = await current_conversation(conn)
        await cancel_turn(conn.ws.app.state.redis, conn.settings, _db(conn), conv_id, msg.turn_id)


def _db(conn: Connection) -> GroupCommit:
    db: GroupCommit = conn.ws.app.state.db
    return db


async def start(conn: Connection, conversation_id: int | None) -> None:
    if conversation_id is None:
        opened = await _db(conn).write(
            partial(store.create_conversation, conn.user_id, conn.project)
        )
    else:
        opened = await run_in_threadpool(
            store.reopen_conversation, conn.user_id, conn.project, conversation_id
        )
    conv_id = opened.conversation_id
    await _bind(conn, conv_id)
    # A later connection of this user that sends no `start` continues this conversation.
    await last_conversation.remember(conn.ws.app.state.redis, conn.user_id, conn.project, conv_id)
    if conversation_id is None:
        await conn.send(Chunk(type="conversation_created", conversation_id=conv_id))
        await conn.send(Chunk(type="text", content=greeting(conn.project)))
        await conn.send(Chunk(type="response_done", status="complete"))
    elif opened.active_turn_id is not None:
        # Reopened while a reply is still being written: replay it so far, then live, ending
        # with its own terminal chunk.
        await conn.send(Chunk(type="conversation_created", conversation_id=conv_id))
        conn.follow(opened.active_turn_id, 0)
    else:
        # As the original answered: `response_done` alone (the history goes to the model with
        # the next message). autocoder's client keeps its input disabled until it arrives.
        await conn.send(Chunk(type="response_done", status="complete"))


async def _bind(conn: Connection, conversation_id: int) -> None:
    conn.conversation_id = conversation_id
    await conn.ws.app.state.registry.put(conn.user_id, conn.id, conn.project, conversation_id)


async def current_conversation(conn: Connection) -> int:
    """The conversation this connection acts on: its own `start`'s or, on a connection that
    sent none (autocoder's client reconnects without one), that of this user's last `start`
    in this project, from any API process."""
    redis = conn.ws.app.state.redis
    if conn.conversation_id is not None:
        await last_conversation.keep(redis, conn.user_id, conn.project)
        return conn.conversation_id
    remembered = await last_conversation.recall(redis, conn.user_id, conn.project)
    if remembered is None or not await run_in_threadpool(
        store.owns_conversation, conn.user_id, conn.project, remembered
    ):
        raise NotFound(NO_SESSION)
    await _bind(conn, remembered)
    return remembered


async def resume_turn(conn: Connection, turn_id: int, after_seq: int) -> None:
    conv_id = await current_conversation(conn)
    turn = await run_in_threadpool(store.load_turn, conn.user_id, conn.project, turn_id)
    if turn.conversation_id != conv_id:
        raise NotFound("Turn not found in this conversation")
    conn.follow(turn_id, after_seq)


async def message(conn: Connection, msg: UserMsg) -> None:
    conv_id = await current_conversation(conn)
    content = msg.content.strip()
    if not content:
        await conn.error("Empty message")
        return
    limit = conn.settings.max_message_chars
    if len(content) > limit:
        await conn.error(f"Message too long ({len(content)} characters; the limit is {limit})")
        return
    # Absent: after the end of the path shown; an explicit null: from the start.
    explicit = "parent_id" in msg.model_fields_set
    ask = store.Ask(content, msg.parent_id if explicit else AT_END)
    await begin(conn, conv_id, ask, msg.client_message_id)


async def regenerate(conn: Connection, msg: RegenerateMsg) -> None:
    conv_id = await current_conversation(conn)
    await begin(conn, conv_id, store.Regenerate(msg.message_id), msg.client_message_id)


async def begin(
    conn: Connection,
    conv_id: int,
    request: store.Ask | store.Regenerate,
    client_message_id: str | None,
) -> None:
    """Start a turn (a question, or a reply answered again) and follow it: the same checks,
    acceptance and streaming for both."""
    redis = conn.ws.app.state.redis
    await check_turn_allowed(redis, conn.settings, conn.user_id)
    begun = await _db(conn).write(
        partial(
            store.begin_turn,
            conn.settings,
            conn.credential,
            conn.user_id,
            conn.project,
            conv_id,
            request,
            client_message_id,
        )
    )
    # Lines about this turn, here and in its follower, carry its ids (shared/logs.py).
    with turn_scope(begun.turn_id, conv_id, conn.user_id):
        log.info("turn %s: %s", begun.turn_id, "queued" if begun.created else "asked again")
        try:
            await conn.send(
                Chunk(
                    type="message_accepted",
                    turn_id=begun.turn_id,
                    conversation_id=conv_id,
                    client_message_id=client_message_id,
                    user_message_id=begun.user_message_id,
                    parent_id=begun.parent_id,
                )
            )
            follower = conn.follow(begun.turn_id, 0, new_turn=begun.created)
            if begun.created:
                # Not needed for correctness (the replay log covers a late subscriber), but it
                # keeps the first chunks on the cheap live path.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(follower.subscribed.wait(), 5)
        finally:
            # Stored means it runs, even if the client vanished a moment ago. A repeated
            # message whose turn is still waiting is dispatched again: a duplicate delivery is
            # harmless (the claim admits one), a lost one would leave the turn waiting.
            if begun.dispatch_attempt:
                await enqueue_or_fail(
                    redis, conn.settings, _db(conn), begun.turn_id, begun.dispatch_attempt
                )
