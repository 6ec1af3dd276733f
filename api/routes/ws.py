"""The assistant WebSocket: autocoder's protocol, plus resume, cancel, auth and isolation.

The route accepts, authorizes, then reads frames and hands each valid command to
`api.chat.commands`. Reading frames and streaming a turn are separate tasks, so a `ping` is
answered at once even while a reply streams; bad input gets an `error` and the connection
stays usable.
"""

from __future__ import annotations

import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.body_limit import MAX_JSON_DEPTH, json_too_deep
from api.chat import handshake
from api.chat.commands import handle
from api.chat.connection import Connection
from shared.config import get_settings
from shared.errors import AssistantError, Unauthorized
from shared.protocol import CLIENT_TYPES, client_msg_adapter

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/assistant", tags=["assistant-chat"])


@router.websocket("/ws/{project_name}")
async def assistant_ws(websocket: WebSocket, project_name: str) -> None:
    settings = get_settings()
    token, subprotocol = handshake.offered_token(websocket)
    # Accept first, then refuse with an error and a close code: browsers cannot read the
    # reason of a refused handshake.
    await websocket.accept(subprotocol=subprotocol)
    conn = Connection(
        websocket, settings, project_name, credential=handshake.credential(websocket, token)
    )
    try:
        conn.user_id = await run_in_threadpool(
            handshake.authorize, websocket, settings, project_name, token
        )
    except AssistantError as exc:
        await conn.error(exc.message)
        await websocket.close(code=exc.ws_close_code or 1008, reason=exc.message[:100])
        return
    state = websocket.app.state
    state.connections[conn.id] = conn
    try:
        await _serve(conn)
    except WebSocketDisconnect:
        pass
    finally:
        state.connections.pop(conn.id, None)
        conn.stop_following()
        with contextlib.suppress(Exception):
            await state.registry.remove(conn.user_id, conn.id)


async def _serve(conn: Connection) -> None:
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
        if json_too_deep(raw):  # json.loads would raise RecursionError, not ValueError
            await conn.error(f"Invalid JSON: nested too deeply (limit {MAX_JSON_DEPTH} levels)")
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
            await handle(conn, msg)
        except Unauthorized as exc:
            # The token was revoked since the socket opened: nothing more on this socket.
            await conn.error(exc.message)
            await conn.ws.close(code=4001, reason=exc.message[:100])
            return
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
