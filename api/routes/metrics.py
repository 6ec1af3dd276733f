"""Prometheus metrics of this API process, not open to the internet by accident.

Served to loopback clients that came straight in (no proxy header: a reverse proxy on the same
host would otherwise make every visitor look local), and to any client presenting
`Authorization: Bearer <ASSISTANT_METRICS_TOKEN>` when that is set. Everyone else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import metrics
from api.deps import RedisDep, SettingsDep, bearer_token
from shared.config import Settings

router = APIRouter(tags=["operations"])

PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
REFUSED = (
    "Metrics are served to loopback clients, or with the bearer token set in "
    "ASSISTANT_METRICS_TOKEN."
)


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_allowed(request: Request, settings: Settings) -> bool:
    token = settings.metrics_token
    presented = bearer_token(request.headers.get("authorization"))
    if token and presented is not None:
        return hmac.compare_digest(presented.encode(), token.encode())
    direct = not any(name in request.headers for name in PROXY_HEADERS)
    return direct and _loopback(request.client.host if request.client else None)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, redis: RedisDep, settings: SettingsDep) -> Response:
    """Prometheus text format: this process's counters and the cluster-wide gauges."""
    if not metrics_allowed(request, settings):
        return JSONResponse({"detail": REFUSED}, status_code=403)
    await metrics.refresh(redis)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
