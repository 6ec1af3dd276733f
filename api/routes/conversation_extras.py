"""Rename and export a conversation (issue 13), beside the conversations router's paths."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from api.deps import CurrentUser, ReadSessionDep, SessionDep
from api.routes.conversations import ConversationId, summary_of
from api.schemas import ConversationSummary
from api.search_schemas import ConversationExport, RenameRequest
from shared import conversations as convs
from shared import export, projects
from shared.models import TitleSource

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
    count = convs.message_count(session, conversation_id)
    session.commit()  # before the response: a search right after it must find the new title
    return summary_of(conv, count)


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
