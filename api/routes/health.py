"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can serve a turn)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import RedisDep
from api.schemas import Health, Readiness
from shared.db import read_scope
from shared.metrics import redis_error
from shared.redis_client import REDIS_ERRORS
from shared.workers import alive_workers

router = APIRouter(tags=["health"])


def _database_answers() -> bool:
    try:
        with read_scope() as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        return True
    except Exception:
        return False


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process serves requests (no dependency is checked, so a Redis or database
    outage never gets a healthy API process restarted)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(redis: RedisDep) -> JSONResponse:
    """Readiness: the database and Redis answer and a worker that takes turns was seen
    recently; else 503, naming what is missing."""
    missing = []
    # In a thread: an unreachable database must not stall the event loop (and every
    # WebSocket with it) for the length of a connect timeout.
    database = "ok" if await run_in_threadpool(_database_answers) else "unavailable"
    if database != "ok":
        missing.append("database")
    workers = 0
    try:
        await redis.ping()
        redis_state = "ok"
        workers = sum(not w.draining for w in await alive_workers(redis))
    except REDIS_ERRORS:
        redis_error("readiness")
        redis_state = "unavailable"
        missing.append("redis")
    if workers == 0:
        missing.append("workers")
    body = Readiness(
        status="not ready" if missing else "ready",
        database=database,
        redis=redis_state,
        workers=workers,
        missing=missing,
    )
    return JSONResponse(body.model_dump(), status_code=503 if missing else 200)
