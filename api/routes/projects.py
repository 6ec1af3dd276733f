"""Registered projects: anyone signed in lists them; administrators add and remove them."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminUser, CurrentUser, ReadSessionDep, SessionDep
from api.schemas import ProjectCreate, ProjectPublic, Success
from shared import projects
from shared.models import Project, iso

router = APIRouter(prefix="/api/projects", tags=["projects"])


def _public(p: Project, show_path: bool) -> ProjectPublic:
    # Server paths tell an attacker where things live: only administrators see them.
    path = p.path if show_path else None
    return ProjectPublic(name=p.name, path=path, created_at=iso(p.created_at))


@router.get("", response_model=list[ProjectPublic])
def list_projects(session: ReadSessionDep, user: CurrentUser) -> list[ProjectPublic]:
    """List the registered projects (`path` is null unless you are an administrator)."""
    return [_public(p, user.is_admin) for p in projects.list_projects(session)]


@router.post("", response_model=ProjectPublic, status_code=201)
def add_project(body: ProjectCreate, session: SessionDep, _admin: AdminUser) -> ProjectPublic:
    """Register a project directory (administrators only)."""
    project = projects.add_project(session, body.name, body.path, force=body.force)
    session.commit()  # before the 201: a project that was not stored must not be reported
    return _public(project, show_path=True)


@router.delete("/{project_name}", response_model=Success)
def remove_project(project_name: str, session: SessionDep, _admin: AdminUser) -> Success:
    """Unregister a project (administrators only); its files are never touched."""
    projects.remove_project(session, project_name)
    session.commit()
    return Success(message="Project removed")
