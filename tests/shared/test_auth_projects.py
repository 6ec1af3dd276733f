"""Users and API tokens, and the project registry's rules for names and paths."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from shared import auth, projects
from shared.config import get_settings
from shared.db import make_engine
from shared.errors import (
    Conflict,
    InvalidInput,
    InvalidProjectName,
    NotFound,
    ProjectNotFound,
    Unauthorized,
)
from shared.migrate import upgrade
from shared.models import ApiToken, Project, User


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'db' / 'assistant.db'}"
    (tmp_path / "db").mkdir()
    upgrade(url)
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


def _issue(engine: Engine, name: str = "alice", admin: bool = False) -> tuple[int, str]:
    with Session(engine) as s:
        user = auth.create_user(s, name, is_admin=admin)
        row, secret = auth.issue_token(s, user, name="laptop")
        assert row.id is not None
        token_id = row.id
        s.commit()
    return token_id, secret


def _authenticate(engine: Engine, token: str | None) -> str:
    with Session(engine) as s:
        user = auth.authenticate(s, token)
        s.commit()
        return user.name


# ---- tokens ---------------------------------------------------------------------------------


def test_issued_token_authenticates(engine: Engine) -> None:
    _, secret = _issue(engine, admin=True)
    assert secret.startswith(auth.TOKEN_PREFIX)
    assert len(secret) > 40
    assert _authenticate(engine, secret) == "alice"
    with Session(engine) as s:
        row = s.exec(select(ApiToken)).one()
        assert row.last_used_at is not None
        user = s.exec(select(User).where(User.name == "alice")).one()
        assert user.is_admin


def test_only_the_sha256_of_the_token_is_stored(engine: Engine, tmp_path: Path) -> None:
    _, secret = _issue(engine)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with Session(engine) as s:
        row = s.exec(select(ApiToken)).one()
        assert row.token_hash == digest
        assert row.prefix == secret[:10]
        stored = [str(v) for v in s.connection().execute(text("SELECT * FROM api_tokens")).one()]
    assert digest in stored
    assert not any(secret in v for v in stored)
    assert not any(secret[10:20] in v for v in stored)
    # Nor anywhere in the database files (main file, WAL and shared memory).
    engine.dispose()
    blobs = b"".join(p.read_bytes() for p in (tmp_path / "db").iterdir())
    assert digest.encode() in blobs  # the search does see what is stored
    assert secret.encode() not in blobs
    assert secret[10:].encode() not in blobs


def test_revoked_token_is_refused(engine: Engine) -> None:
    token_id, secret = _issue(engine)
    _, other = _issue(engine, "bob")
    assert _authenticate(engine, secret) == "alice"
    with Session(engine) as s:
        revoked_at = auth.revoke_token(s, token_id).revoked_at
        s.commit()
    assert revoked_at is not None
    with pytest.raises(Unauthorized):
        _authenticate(engine, secret)
    assert _authenticate(engine, other) == "bob"  # only that token
    with Session(engine) as s:
        assert auth.revoke_token(s, token_id).revoked_at == revoked_at  # idempotent
        with pytest.raises(NotFound):
            auth.revoke_token(s, token_id + 100)


@pytest.mark.parametrize("bad", [None, "", "pa_", "pa_not-a-real-token", "Bearer x", "x" * 5000])
def test_bad_tokens_are_refused(engine: Engine, bad: str | None) -> None:
    _issue(engine)
    with pytest.raises(Unauthorized):
        _authenticate(engine, bad)


def test_a_near_miss_token_is_refused(engine: Engine) -> None:
    _, secret = _issue(engine)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for token in (flipped, secret[:-1], secret + "x", secret.upper(), f" {secret}"):
        with pytest.raises(Unauthorized):
            _authenticate(engine, token)


def test_list_tokens_shows_the_prefix_never_the_secret(engine: Engine) -> None:
    _, a1 = _issue(engine, "alice")
    _, b1 = _issue(engine, "bob")
    with Session(engine) as s:
        alice = auth.get_user(s, "alice")
        _, a2 = auth.issue_token(s, alice)
        s.commit()
        every = auth.list_tokens(s)
        mine = auth.list_tokens(s, alice)
    assert len({a1, a2, b1}) == 3
    assert [t.prefix for t in every] == [a1[:10], b1[:10], a2[:10]]
    assert [t.prefix for t in mine] == [a1[:10], a2[:10]]
    for t in every:
        dumped = repr(t.model_dump())
        assert t.prefix.startswith("pa_")
        for secret in (a1, a2, b1):
            assert secret not in dumped


def test_user_names_are_validated_and_unique(session: Session) -> None:
    auth.create_user(session, "alice")
    with pytest.raises(Conflict):
        auth.create_user(session, "alice")
    for bad in ("", "a b", "x" * 65, "alice/..", "al\nice"):
        with pytest.raises(InvalidInput):
            auth.create_user(session, bad)
    assert auth.ensure_user(session, "alice").name == "alice"
    with pytest.raises(NotFound):
        auth.get_user(session, "nobody")


# ---- projects -------------------------------------------------------------------------------


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home" / "alice"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "keys").mkdir()
    (home / ".aws").mkdir()
    (home / "code" / "app").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "work" / "proj"
    root.mkdir(parents=True)
    (root / "README.md").write_text("hi\n")
    return root


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/ssl", "/usr", "/usr/lib", "/proc"])
def test_system_locations_are_refused(session: Session, path: str) -> None:
    if not Path(path).is_dir():
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(InvalidInput):
        projects.add_project(session, "sys", path)
    assert projects.list_projects(session) == []


def test_home_secret_locations_are_refused(session: Session, fake_home: Path) -> None:
    for path in (fake_home / ".ssh", fake_home / ".ssh" / "keys", fake_home / ".aws", fake_home):
        with pytest.raises(InvalidInput):
            projects.add_project(session, "secret", str(path))
    with pytest.raises(InvalidInput):
        projects.add_project(session, "tilde", "~/.ssh")
    # A project inside the home directory is fine.
    project = projects.add_project(session, "app", str(fake_home / "code" / "app"))
    assert project.path == str((fake_home / "code" / "app").resolve())


def test_a_directory_containing_the_home_secrets_is_refused(
    session: Session, fake_home: Path
) -> None:
    """Registering a parent of ~ would expose ~/.ssh and friends to the tools."""
    for path in (fake_home.parent, fake_home.parent.parent):
        with pytest.raises(InvalidInput):
            projects.add_project(session, "parent", str(path))


def test_a_symlink_to_a_forbidden_location_is_refused(
    session: Session, tmp_path: Path, fake_home: Path
) -> None:
    (tmp_path / "innocent").symlink_to("/etc")
    (tmp_path / "keys").symlink_to(fake_home / ".ssh")
    for link in ("innocent", "keys"):
        with pytest.raises(InvalidInput):
            projects.add_project(session, link, str(tmp_path / link))


def test_missing_paths_files_and_junk_are_refused(session: Session, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for raw in (
        str(tmp_path / "missing"),
        str(tmp_path / "file.txt"),
        "",
        "a\x00b",
        str(tmp_path / "loop"),
        "~nosuchuser-7f3a/x",
        "~\x97\U000fbf54\x1d",
        f"{tmp_path}/\ud800",
        "\udbaf",
        "/" + "a" * 5000,
    ):
        with pytest.raises(InvalidInput):
            projects.add_project(session, "p", raw)
    assert projects.list_projects(session) == []


@pytest.mark.parametrize(
    "name", ["", "a b", "../x", "x/y", "x" * 51, "café", "p;rm", "p\n", ".", ".."]
)
def test_invalid_names_are_refused(session: Session, proj: Path, name: str) -> None:
    with pytest.raises(InvalidProjectName):
        projects.add_project(session, name, str(proj))
    with pytest.raises(InvalidProjectName):
        projects.get_project(session, name)


def test_a_project_dir_is_registered_listed_and_removed(
    session: Session, proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = projects.add_project(session, "demo_1-x", str(proj))
    assert project.path == str(proj.resolve())
    # Relative paths are taken from the working directory and stored resolved.
    monkeypatch.chdir(tmp_path / "work")
    other = projects.add_project(session, "b" * 50, "proj/../proj")
    assert other.path == str(proj.resolve())
    session.commit()

    assert [p.name for p in projects.list_projects(session)] == ["b" * 50, "demo_1-x"]
    assert projects.get_project(session, "demo_1-x").path == str(proj.resolve())
    assert projects.project_root(projects.get_project(session, "demo_1-x")) == proj.resolve()

    projects.remove_project(session, "demo_1-x")
    session.commit()
    with pytest.raises(ProjectNotFound):
        projects.get_project(session, "demo_1-x")
    with pytest.raises(ProjectNotFound):
        projects.remove_project(session, "demo_1-x")
    assert proj.is_dir()  # the files are not touched


def test_duplicate_names_conflict(session: Session, proj: Path, tmp_path: Path) -> None:
    projects.add_project(session, "demo", str(proj))
    session.commit()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(Conflict):
        projects.add_project(session, "demo", str(elsewhere))
    session.rollback()
    assert [(p.name, p.path) for p in session.exec(select(Project)).all()] == [
        ("demo", str(proj.resolve()))
    ]


def test_project_root_of_a_vanished_directory_is_not_found(session: Session, proj: Path) -> None:
    project = projects.add_project(session, "demo", str(proj))
    (proj / "README.md").unlink()
    os.rmdir(proj)
    with pytest.raises(ProjectNotFound):
        projects.project_root(project)


def test_broad_directories_need_force_and_say_why(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "srv" / "assistant-data"
    data.mkdir(parents=True)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data))
    get_settings.cache_clear()
    try:
        broad = {
            "/tmp": "top-level directory",
            str(projects.SERVICE_ROOT): "own checkout",
            str(tmp_path / "srv"): "data directory",
        }
        for path, why in broad.items():
            with pytest.raises(InvalidInput, match="--force") as info:
                projects.add_project(session, "broad", path)
            assert why in info.value.message
        for i, path in enumerate(broad):
            assert projects.add_project(session, f"forced{i}", path, force=True).path
    finally:
        get_settings.cache_clear()


def test_force_does_not_open_system_or_home_secret_locations(
    session: Session, fake_home: Path
) -> None:
    for path in ("/", "/etc", str(fake_home), str(fake_home / ".ssh"), str(fake_home.parent)):
        with pytest.raises(InvalidInput):
            projects.add_project(session, "nope", path, force=True)
    assert projects.list_projects(session) == []


def test_hard_links_are_allowed_per_project(session: Session, proj: Path) -> None:
    project = projects.add_project(session, "app", str(proj))
    assert project.allow_hardlinks is False
    assert projects.set_hardlinks(session, "app", True).allow_hardlinks is True
    with pytest.raises(ProjectNotFound):
        projects.set_hardlinks(session, "other", True)
