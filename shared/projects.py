"""The project registry: names, paths, and the rules for which paths may be registered."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
from pathlib import Path

from sqlmodel import Session, col, select

from shared.errors import Conflict, InvalidInput, InvalidProjectName, ProjectNotFound
from shared.models import Project

PROJECT_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,50}$")

# Directories that hold the system or secrets: never a project, nor anything inside them.
_SYSTEM_DIRS = (
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys",
    "/root", "/var", "/run", "/snap", "/opt/local/etc",
)  # fmt: skip
_HOME_SECRET_DIRS = (".ssh", ".aws", ".gnupg", ".kube", ".docker", ".config/gcloud", ".azure")
# This service's own checkout (its code, and by default its data directory with the database).
SERVICE_ROOT = Path(__file__).resolve().parents[1]


def validate_name(name: str) -> str:
    if not PROJECT_NAME_RE.fullmatch(name):
        raise InvalidProjectName()
    return name


def _forbidden_roots() -> list[Path]:
    home = Path(os.path.expanduser("~")).resolve()
    roots = [Path(p) for p in _SYSTEM_DIRS]
    roots += [home / d for d in _HOME_SECRET_DIRS]
    return roots


def broad_reason(real: Path) -> str | None:
    """Why registering `real` would expose more than one project, if it would.

    Broad means: a top-level directory (`/tmp`, `/home`, `/srv`, ...), a user's home directory,
    or a directory that contains this service's own checkout or its data directory."""
    if real.parent == Path("/"):
        return f"{real} is a top-level directory"
    if real in _home_dirs():
        return f"{real} is a user's home directory"
    from shared.config import get_settings

    for inner, what in (
        (SERVICE_ROOT, "this service's own checkout"),
        (get_settings().data_dir.resolve(), "this service's data directory"),
    ):
        if inner.is_relative_to(real):
            return f"{real} contains {what}"
    return None


def _home_dirs() -> set[Path]:
    homes = set()
    for entry in pwd.getpwall():
        with contextlib.suppress(OSError, RuntimeError):
            homes.add(Path(entry.pw_dir).resolve())
    return homes


def check_project_path(raw: str, force: bool = False) -> Path:
    """Resolve a path a user wants to register, refusing system and secret locations, and
    broad directories unless `force` is given."""
    if not raw or "\x00" in raw:
        raise InvalidInput("Project path is empty or invalid")
    try:
        os.fsencode(raw)  # a lone surrogate cannot name a file (UnicodeEncodeError in stat)
    except UnicodeError:
        raise InvalidInput("Project path is empty or invalid") from None
    try:
        # expanduser raises RuntimeError for "~nosuchuser"; resolve for a symlink loop.
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInput("Project path does not exist") from None
    if not real.is_dir():
        raise InvalidInput("Project path is not a directory")
    home = Path(os.path.expanduser("~")).resolve()
    # The root, the home directory, or anything containing it (its ~/.ssh would come along).
    if real == Path("/") or home.is_relative_to(real):
        raise InvalidInput("Refusing to register the filesystem root or a home directory")
    for root in _forbidden_roots():
        if real == root or real.is_relative_to(root):
            raise InvalidInput(f"Refusing to register a system or secret location ({root})")
    reason = broad_reason(real)
    if reason is not None and not force:
        raise InvalidInput(
            f"Refusing to register a broad directory: {reason}, so the assistant could read "
            "far more than one project. Register a project directory inside it, or repeat "
            'with --force (REST: "force": true) if you really mean it'
        )
    return real


def get_project(session: Session, name: str) -> Project:
    validate_name(name)
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None:
        raise ProjectNotFound()
    return project


def project_root(project: Project) -> Path:
    """The project's real path, or ProjectNotFound when its directory has gone away."""
    path = Path(project.path)
    if not path.is_dir():
        raise ProjectNotFound("Project directory not found")
    return path.resolve()


def list_projects(session: Session) -> list[Project]:
    return list(session.exec(select(Project).order_by(col(Project.name))).all())


def add_project(session: Session, name: str, raw_path: str, force: bool = False) -> Project:
    validate_name(name)
    path = check_project_path(raw_path, force)
    if session.exec(select(Project).where(Project.name == name)).first() is not None:
        raise Conflict(f"Project '{name}' is already registered")
    project = Project(name=name, path=str(path))
    session.add(project)
    session.flush()
    return project


def set_hardlinks(session: Session, name: str, allow: bool) -> Project:
    """Let the tools read files with several hard links in this project (or stop them)."""
    return set_options(session, name, hardlinks=allow)


def set_options(
    session: Session,
    name: str,
    *,
    hardlinks: bool | None = None,
    backlog_writes: bool | None = None,
    web: bool | None = None,
) -> Project:
    """Change a project's switches; None leaves one as it is."""
    project = get_project(session, name)
    if hardlinks is not None:
        project.allow_hardlinks = hardlinks
    if backlog_writes is not None:
        project.backlog_writes = backlog_writes
    if web is not None:
        project.web_tools = web
    session.add(project)
    return project


def remove_project(session: Session, name: str) -> None:
    project = get_project(session, name)
    session.delete(project)
