"""Who may open the assistant WebSocket: origin, project name, credentials, project, in order."""

from __future__ import annotations

from fastapi import WebSocket

from api.deps import bearer_token, current_user
from api.origins import origin_allowed
from shared import projects
from shared.config import Settings
from shared.db import read_scope
from shared.errors import Forbidden

SUBPROTOCOL = "assistant"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


def offered_token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(the token offered as a subprotocol, the subprotocol to select).

    Browsers cannot set headers on a WebSocket; they offer `assistant, bearer.<token>`. The
    token then travels in Sec-WebSocket-Protocol, which servers do not log (a query string
    would end up in access logs)."""
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


def credential(ws: WebSocket, token: str | None) -> str | None:
    return bearer_token(ws.headers.get("authorization")) or token


def authorize(ws: WebSocket, settings: Settings, project_name: str, token: str | None) -> int:
    """Check origin, project name, credentials and project, in that order; the user id."""
    origin = ws.headers.get("origin")
    if origin is not None and not origin_allowed(
        origin,
        ws.scope,
        ws.headers.get("host"),
        settings.allowed_origins,
        loopback_only=settings.auth_mode == "open",
    ):
        raise Forbidden("Origin not allowed")
    projects.validate_name(project_name)
    user = current_user(settings, credential(ws, token))
    with read_scope() as session:
        projects.project_root(projects.get_project(session, project_name))
    assert user.id is not None
    return user.id
