"""Rename and export a conversation (issue 13), beside the conversations router's paths."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func
from sqlmodel import col, select

from api.deps import CurrentUser, ReadSessionDep, SessionDep
from api.routes.conversations import ConversationId
from api.schemas import ConversationSummary, iso
from api.search_schemas import ConversationExport, RenameRequest
from shared import conversations as convs
from shared import export, projects
from shared.models import Message, TitleSource

router = APIRouter(prefix="/api/assistant/conversations", tags=["assistant-chat"])


@router.patch("/{project_name}/{conversation_id}", response_model=ConversationSummary)
def rename_conversation(
    project_name: str,
    conversation_id: ConversationId,
    body: RenameRequest,
    session: SessionDep,
    user: CurrentUser,
) -> ConversationSummary:
    """Rename a conversation; a title you give is never replaced by a model's."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.get_conversation(session, conversation_id, project_name, user.id)
    conv.title = body.title
    conv.title_source = TitleSource.user
    session.add(conv)
    count = session.exec(
        select(func.count(col(Message.id))).where(Message.conversation_id == conversation_id)
    ).one()
    session.commit()  # before the response: a search right after it must find the new title
    return ConversationSummary(
        id=conversation_id,
        project_name=conv.project_name,
        title=conv.title,
        created_at=iso(conv.created_at),
        updated_at=iso(conv.updated_at),
        message_count=int(count),
    )


_MARKDOWN = {
    "description": "The active path as Markdown (a download)",
    "content": {"text/markdown": {"schema": {"type": "string"}}},
}


@router.get(
    "/{project_name}/{conversation_id}/export",
    response_model=ConversationExport,
    responses={200: _MARKDOWN},
)
def export_conversation(
    project_name: str,
    conversation_id: ConversationId,
    session: ReadSessionDep,
    user: CurrentUser,
    fmt: Annotated[Literal["markdown", "json"], Query(alias="format")] = "markdown",
) -> Response:
    """Download a conversation: Markdown of the path shown, or JSON of every branch."""
    projects.get_project(session, project_name)
    assert user.id is not None
    conv = convs.get_conversation(session, conversation_id, project_name, user.id)
    snap = export.snapshot(session, conv)
    if fmt == "json":
        name = export.filename(conv, "json")
        body = ConversationExport.model_validate(export.to_json(snap))
        return JSONResponse(body.model_dump(mode="json"), headers=_attachment(name))
    return Response(
        export.to_markdown(snap),
        media_type="text/markdown; charset=utf-8",
        headers=_attachment(export.filename(conv, "md")),
    )


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}
