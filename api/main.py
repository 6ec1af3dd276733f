"""The FastAPI application: routes, error rendering, and the per-process relay and watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from redis.asyncio import Redis

from api.live_sessions import SESSION_TTL_S, SessionRegistry
from api.relay import Relay
from api.routes import api_router
from shared.config import get_settings
from shared.errors import AssistantError
from shared.watchdog import Watchdog
from worker.celery_app import enqueue_turn

log = logging.getLogger(__name__)


async def _close_sessions(app: FastAPI, message: dict[str, Any]) -> None:
    """A control message from any API process: close this process's matching sessions."""
    if message.get("op") != "close":
        return
    for conn in list(app.state.connections.values()):
        if conn.user_id == message.get("user_id") and conn.project == message.get("project"):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1000, reason="Session closed")


async def _refresh_sessions(app: FastAPI) -> None:
    while True:
        await asyncio.sleep(SESSION_TTL_S / 3)
        for conn in list(app.state.connections.values()):
            if conn.conversation_id is not None:
                with contextlib.suppress(Exception):
                    await app.state.sessions.put(
                        conn.user_id, conn.id, conn.project, conn.conversation_id
                    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    redis = Redis.from_url(
        settings.redis_dsn, socket_connect_timeout=3, socket_timeout=5, health_check_interval=15
    )
    app.state.redis = redis
    app.state.connections = {}
    app.state.sessions = SessionRegistry(redis)

    async def on_control(message: dict[str, Any]) -> None:
        await _close_sessions(app, message)

    app.state.relay = relay = Relay(redis, on_control)
    await relay.start()
    # The API watches for lost turns too, so a client is answered even with no worker left.
    watchdog = Watchdog(redis, settings, enqueue=enqueue_turn, name="api")
    tasks = [
        asyncio.create_task(watchdog.run_forever(), name="watchdog"),
        asyncio.create_task(_refresh_sessions(app), name="session-refresh"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await relay.stop()
        await redis.aclose()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Project assistant",
        summary="Chat with Claude about a registered project; read-only, streamed, persisted.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        # Explicit origins only: credentials with "*" would let any site act as the user.
        allow_origins=settings.allowed_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )

    @app.exception_handler(AssistantError)
    async def assistant_error(_req: Request, exc: AssistantError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_req: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "Internal server error"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(files("api").joinpath("static/index.html").read_text())

    app.include_router(api_router)
    return app


app = create_app()
