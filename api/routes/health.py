"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import RedisDep
from api.schemas import Health
from shared.channels import REDIS_ERRORS
from shared.db import session_scope

router = APIRouter(tags=["health"])


def _database_answers() -> bool:
    try:
        with session_scope() as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        return True
    except Exception:
        return False


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(redis: RedisDep) -> JSONResponse:
    """Report whether the database and Redis answer; 503 when either does not."""
    # In a thread: an unreachable database must not stall the event loop (and every
    # WebSocket with it) for the length of a connect timeout.
    database = "ok" if await run_in_threadpool(_database_answers) else "unavailable"
    try:
        await redis.ping()
        redis_state = "ok"
    except REDIS_ERRORS:
        redis_state = "unavailable"
    ok = database == "ok" and redis_state == "ok"
    body = Health(status="ok" if ok else "degraded", database=database, redis=redis_state)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
