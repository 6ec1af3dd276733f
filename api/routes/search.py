"""Full-text search over the caller's own conversations (titles and messages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, ReadSessionDep
from api.search_schemas import SearchResponse, SearchResult
from shared import projects
from shared.search import search as run_search

router = APIRouter(prefix="/api/assistant/search", tags=["assistant-search"])

MAX_QUERY_CHARS = 500


@router.get("", response_model=SearchResponse)
def search(
    session: ReadSessionDep,
    user: CurrentUser,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)],
    project: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> SearchResponse:
    """Search your conversations' titles and messages, best match first, with snippets."""
    assert user.id is not None
    if project is not None:
        projects.validate_name(project)  # 400 for a malformed name, as the other routes
    hits = run_search(session, user_id=user.id, query=q, project_name=project, limit=limit)
    return SearchResponse(query=q, results=[SearchResult.of(h) for h in hits])
