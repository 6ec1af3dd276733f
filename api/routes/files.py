"""Read-only file viewer: the lines of a project file, as the assistant's own tools see them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import CurrentUser, ReadSessionDep, SettingsDep
from api.file_view import read_lines
from shared import projects
from shared.errors import InvalidInput

router = APIRouter(prefix="/api/assistant/files", tags=["files"])

LineNumber = Annotated[int, Query(ge=1, le=2**31)]


class FileLine(BaseModel):
    n: int
    text: str


class FileLinesPublic(BaseModel):
    path: str
    start: int
    end: int
    total: int | None
    lines: list[FileLine]


@router.get("/{project_name}", response_model=FileLinesPublic)
def read_file_lines(
    project_name: str,
    session: ReadSessionDep,
    settings: SettingsDep,
    _user: CurrentUser,
    path: Annotated[str, Query(min_length=1, max_length=1024)],
    start: LineNumber = 1,
    end: LineNumber | None = None,
) -> FileLinesPublic:
    """Lines start..end of a project file; refuses what the assistant's tools refuse."""
    if end is not None and end < start:
        raise InvalidInput("end must be >= start")
    got = read_lines(projects.get_project(session, project_name), path, start, end, settings)
    return FileLinesPublic(
        path=got.path,
        start=got.start,
        end=got.end,
        total=got.total,
        lines=[FileLine(n=n, text=text) for n, text in got.lines],
    )
