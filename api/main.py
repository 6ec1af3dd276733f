"""The FastAPI application: routes, error rendering, and the per-process relay and watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api.body_limit import BodyLimit
from api.chat.registry import ConnectionRegistry, close_local, keep_registered
from api.metrics import WEBSOCKETS_OPEN
from api.relay import Relay
from api.routes import api_router
from api.web import SecurityHeaders, install_web
from shared.config import get_settings
from shared.errors import AssistantError
from shared.group_commit import GroupCommit
from shared.redis_client import create_redis
from shared.turns.watchdog import Watchdog
from worker.celery_app import enqueue_turn

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    redis = create_redis(settings)
    app.state.redis = redis
    app.state.connections = {}  # this process's open WebSockets, by connection id
    WEBSOCKETS_OPEN.set_function(lambda: len(app.state.connections))
    app.state.registry = registry = ConnectionRegistry(redis)
    # This process's writes on the chat path, committed together (shared/group_commit.py).
    app.state.db = db = GroupCommit("api-db-writer")

    async def on_control(message: dict[str, Any]) -> None:
        await close_local(app.state.connections, message)

    app.state.relay = relay = Relay(redis, on_control)
    await relay.start()
    # The API watches for lost turns too, so a client is answered even with no worker left.
    watchdog = Watchdog(redis, settings, enqueue=enqueue_turn, name="api", db=db)
    tasks = [
        asyncio.create_task(watchdog.run_forever(), name="watchdog"),
        asyncio.create_task(
            keep_registered(registry, app.state.connections), name="keep-registered"
        ),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await relay.stop()
        await redis.aclose()
        db.close()


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
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    # Added last, so outermost: bodies are bounded before CORS, authentication and parsing.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)

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

    install_web(app)
    app.add_middleware(SecurityHeaders)
    app.include_router(api_router)
    return app


app = create_app()
