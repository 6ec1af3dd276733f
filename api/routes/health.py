"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import RedisDep, SessionDep
from api.schemas import Health
from shared.channels import REDIS_ERRORS

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(session: SessionDep, redis: RedisDep) -> JSONResponse:
    """Report whether the database and Redis answer; 503 when either does not."""
    try:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        database = "ok"
    except Exception:
        database = "unavailable"
    try:
        await redis.ping()
        redis_state = "ok"
    except REDIS_ERRORS:
        redis_state = "unavailable"
    ok = database == "ok" and redis_state == "ok"
    body = Health(status="ok" if ok else "degraded", database=database, redis=redis_state)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
