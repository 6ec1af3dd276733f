"""The in-process baseline: one process streaming from the model straight to the WebSocket.

What the service replaced: FastAPI on uvicorn (as the real API), the anthropic SDK's
AsyncAnthropic in the same process, no queue, no database, no Redis. It speaks the subset of the
protocol the load generator uses, with the same frames (shared.protocol.Chunk, so JSON encoding
costs the same) and the same model request (system prompt, tools, the conversation so far):

    start   -> conversation_created, the greeting text, response_done
    message -> message_accepted, one text chunk per model delta, response_done (or error)

    python -m benchmarks.baseline_server --port 8100 --project-dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import uvicorn
from anthropic import AsyncAnthropic
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

from shared.config import get_settings
from shared.prompt import system_prompt
from shared.protocol import Chunk, error_chunk, greeting
from shared.tools import TOOL_SCHEMAS

_ids = itertools.count(1)


def create_app(project_dir: Path) -> FastAPI:
    settings = get_settings()
    model: dict[str, AsyncAnthropic] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        model["client"] = AsyncAnthropic(
            timeout=settings.model_timeout_s, max_retries=settings.model_max_retries
        )
        try:
            yield
        finally:
            await model["client"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @app.websocket("/api/assistant/ws/{project}")
    async def chat(websocket: WebSocket, project: str) -> None:
        await websocket.accept()
        history: list[dict[str, Any]] = []
        system = system_prompt(project, project_dir)

        async def send(chunk: Chunk) -> None:
            await websocket.send_text(chunk.dump())

        try:
            while True:
                msg = json.loads(await websocket.receive_text())
                kind = msg.get("type")
                if kind == "start":
                    await send(Chunk(type="conversation_created", conversation_id=next(_ids)))
                    await send(Chunk(type="text", content=greeting(project)))
                    await send(Chunk(type="response_done", status="complete"))
                elif kind == "message":
                    history.append({"role": "user", "content": str(msg.get("content", ""))})
                    reply = await _turn(model["client"], settings.model, system, history, send)
                    history.append({"role": "assistant", "content": reply or "(no reply)"})
                elif kind == "ping":
                    await send(Chunk(type="pong"))
                else:
                    await send(error_chunk(f"Unknown message type: {kind}"))
        except WebSocketDisconnect:
            pass

    return app


async def _turn(
    client: AsyncAnthropic,
    model: str,
    system: str,
    history: list[dict[str, Any]],
    send: Any,
) -> str:
    turn_id = next(_ids)
    seq = itertools.count(1)
    await send(Chunk(type="message_accepted", turn_id=turn_id))
    text: list[str] = []
    try:
        async with client.messages.stream(
            model=model,
            max_tokens=4096,
            system=system,
            messages=cast(Any, history),
            tools=cast(Any, TOOL_SCHEMAS),
        ) as stream:
            async for event in stream:
                if event.type == "text":
                    text.append(event.text)
                    await send(
                        Chunk(type="text", content=event.text, turn_id=turn_id, seq=next(seq))
                    )
    except Exception as exc:
        await send(error_chunk(f"model failed: {exc}", turn_id=turn_id, seq=next(seq)))
        return "".join(text)
    done = Chunk(type="response_done", status="complete", turn_id=turn_id, seq=next(seq))
    await send(done)
    return "".join(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--project-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.project_dir.resolve()),
        host=args.host,
        port=args.port,
        log_level="info",  # as the real API (`assistant api`)
    )


if __name__ == "__main__":
    main()
