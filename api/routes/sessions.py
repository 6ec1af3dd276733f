"""The caller's assistant sessions at autocoder's paths: their open WebSockets per project
(api.chat.registry), and the conversation a reconnect without `start` would continue."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.chat.last_conversation import forget
from api.chat.registry import ConnectionRegistry
from api.deps import CurrentUser
from api.schemas import SessionInfo, Success
from shared.errors import NotFound
from shared.projects import validate_name

router = APIRouter(prefix="/api/assistant/sessions", tags=["assistant-chat"])
NO_SESSION = "No active session for this project"


def _registry(request: Request) -> ConnectionRegistry:
    registry: ConnectionRegistry = request.app.state.registry
    return registry


@router.get("", response_model=list[str])
async def list_sessions(request: Request, user: CurrentUser) -> list[str]:
    """Projects in which you have an open assistant session."""
    assert user.id is not None
    return sorted({s.project_name for s in await _registry(request).list(user.id)})


@router.get("/{project_name}", response_model=SessionInfo)
async def get_session(project_name: str, request: Request, user: CurrentUser) -> SessionInfo:
    """Your open session in a project (the most recent one if you have several)."""
    validate_name(project_name)
    assert user.id is not None
    mine = [s for s in await _registry(request).list(user.id) if s.project_name == project_name]
    if not mine:
        raise NotFound(NO_SESSION)
    return SessionInfo(
        project_name=project_name, conversation_id=mine[-1].conversation_id, is_active=True
    )


@router.delete("/{project_name}", response_model=Success)
async def close_session(project_name: str, request: Request, user: CurrentUser) -> Success:
    """Close your sessions in a project (running replies go on and are saved)."""
    validate_name(project_name)
    assert user.id is not None
    registry = _registry(request)
    live = any(s.project_name == project_name for s in await registry.list(user.id))
    # The session outlives a disconnect (a reconnect without `start` continues it): closing it
    # also forgets its conversation, as closing the original's session did.
    remembered = await forget(request.app.state.redis, user.id, project_name)
    if not live and not remembered:
        raise NotFound(NO_SESSION)
    if live:
        await registry.close(user.id, project_name)
    return Success(message="Session closed")
