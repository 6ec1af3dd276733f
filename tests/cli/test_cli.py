"""The installed `assistant` command, run as a real process against a fresh SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect
from sqlmodel import Session

from shared import auth
from shared.db import make_engine
from shared.errors import Unauthorized

ASSISTANT = Path(sys.executable).parent / "assistant"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@dataclass
class Cli:
    url: str
    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str) -> Result:
        proc = subprocess.run(
            [str(ASSISTANT), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str) -> Result:
        res = self(*args)
        assert res.code == 0, f"assistant {' '.join(args)} failed:\n{res.err}"
        assert "Traceback" not in res.err
        return res


def assert_one_line_error(res: Result, *needles: str) -> None:
    assert res.code == 1, res
    assert "Traceback" not in res.err
    assert "Traceback" not in res.out
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("error: "), res.err
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    work = tmp_path / "cwd"
    work.mkdir()
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "PYTEST"))}
    env.update(
        ASSISTANT_DATABASE_URL=url,
        ASSISTANT_DATA_DIR=str(tmp_path / "data"),
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="200",
    )
    return Cli(url, env, work)


@pytest.fixture
def db(cli: Cli) -> Iterator[Engine]:
    """The CLI's database after `assistant db upgrade`, for checking what the commands did."""
    res = cli.ok("db", "upgrade")
    assert "up to date" in res.out
    engine = make_engine(cli.url)
    try:
        yield engine
    finally:
        engine.dispose()


def authenticate(engine: Engine, token: str) -> str:
    with Session(engine) as s:
        user = auth.authenticate(s, token)
        s.commit()
        return user.name


def test_the_installed_command_is_used() -> None:
    assert ASSISTANT.is_file()
    assert os.access(ASSISTANT, os.X_OK)


def test_db_upgrade_creates_the_schema_and_is_repeatable(cli: Cli, db: Engine) -> None:
    tables = set(inspect(db).get_table_names())
    assert {"users", "api_tokens", "projects", "conversations", "messages", "turns"} <= tables
    cli.ok("db", "upgrade")
    assert not (cli.cwd / ".assistant").exists()  # the URL was used, not the default location


def test_commands_before_db_upgrade_fail_cleanly(cli: Cli) -> None:
    assert_one_line_error(cli("projects", "list"), "db upgrade")


def test_projects_add_list_remove(cli: Cli, db: Engine, project_dir: Path) -> None:
    res = cli.ok("projects", "add", "demo", str(project_dir))
    assert "demo" in res.out
    assert str(project_dir.resolve()) in res.out

    listed = cli.ok("projects", "list").lines
    assert listed == [f"demo\t{project_dir.resolve()}"]

    assert_one_line_error(cli("projects", "add", "demo", str(project_dir)), "already")

    cli.ok("projects", "remove", "demo")
    assert cli.ok("projects", "list").out == ""
    assert project_dir.is_dir()
    assert_one_line_error(cli("projects", "remove", "demo"), "not found")
    assert inspect(db).has_table("projects")


@pytest.mark.parametrize(
    ("name", "path", "needle"),
    [
        ("etc", "/etc", "/etc"),
        ("root", "/", "root"),
        ("gone", "/definitely/not/here", "does not exist"),
        ("bad name", ".", "name"),
    ],
)
def test_projects_add_refusals_are_one_line_errors(
    cli: Cli, db: Engine, name: str, path: str, needle: str
) -> None:
    res = cli("projects", "add", name, path)
    assert_one_line_error(res, needle)
    assert res.out == ""
    assert cli.ok("projects", "list").out == ""
    assert inspect(db).has_table("projects")


def test_users_add_prints_a_working_token_last(cli: Cli, db: Engine) -> None:
    res = cli.ok("users", "add", "alice", "--admin")
    token = res.lines[-1].strip()
    assert token.startswith("pa_")
    assert len(token) > 40
    assert authenticate(db, token) == "alice"
    assert cli.ok("users", "list").lines == ["alice\tadmin"]

    res = cli.ok("users", "add", "bob")
    bob = res.lines[-1].strip()
    assert bob.startswith("pa_")
    assert bob != token
    assert authenticate(db, bob) == "bob"
    assert cli.ok("users", "list").lines == ["alice\tadmin", "bob\tuser"]


def test_tokens_list_and_revoke(cli: Cli, db: Engine) -> None:
    token = cli.ok("users", "add", "alice").lines[-1].strip()
    extra = cli.ok("tokens", "add", "alice", "--name", "laptop").lines[-1].strip()
    assert extra.startswith("pa_")
    assert extra != token
    assert authenticate(db, extra) == "alice"

    listing = cli.ok("tokens", "list").out
    assert token[:10] in listing
    assert extra[:10] in listing
    assert token not in listing
    assert extra not in listing
    assert token[10:20] not in listing
    rows = [line.split("\t") for line in listing.splitlines()]
    assert [(r[1], r[-1]) for r in rows] == [("alice", "active"), ("alice", "active")]
    first_id = next(r[0] for r in rows if r[2].startswith(token[:10]))

    res = cli.ok("tokens", "revoke", first_id)
    assert first_id in res.out
    with pytest.raises(Unauthorized):
        authenticate(db, token)
    assert authenticate(db, extra) == "alice"  # only that one
    states = {r[0]: r[-1] for r in (x.split("\t") for x in cli.ok("tokens", "list").lines)}
    assert states[first_id] == "revoked"
    assert list(states.values()).count("active") == 1

    assert_one_line_error(cli("tokens", "revoke", "9999"), "9999")
    assert_one_line_error(cli("tokens", "add", "nobody"), "nobody")
    assert_one_line_error(cli("tokens", "list", "nobody"), "nobody")


def test_users_add_twice_is_a_clear_error(cli: Cli, db: Engine) -> None:
    first = cli.ok("users", "add", "alice").lines[-1].strip()
    res = cli("users", "add", "alice")
    assert_one_line_error(res, "alice", "already exists")
    assert "pa_" not in res.out
    assert cli.ok("users", "list").lines == ["alice\tuser"]
    assert authenticate(db, first) == "alice"
    assert len(cli.ok("tokens", "list").lines) == 1


def test_users_add_invalid_name(cli: Cli, db: Engine) -> None:
    assert_one_line_error(cli("users", "add", "bad name"))
    assert cli.ok("users", "list").out == ""
    assert inspect(db).has_table("users")


def test_uvicorn_frame_cap_sits_above_the_api_frame_limit() -> None:
    """Else uvicorn cuts a slightly-too-large frame (1009) before the API can answer it."""
    from cli.main import ws_hard_limit

    for limit in (2_000, 256_000, 8_000_000):
        cap = ws_hard_limit(limit)
        assert cap > limit
        assert cap <= max(4 * limit, 1 << 20)  # still a hard cap, not unlimited


def test_default_database_is_created_on_first_use(cli: Cli, tmp_path: Path) -> None:
    # A new user registers a project before ever running `assistant dev` or `db upgrade`.
    env = {k: v for k, v in cli.env.items() if k != "ASSISTANT_DATABASE_URL"}
    first_run = Cli("", env, cli.cwd)
    project = tmp_path / "proj"
    project.mkdir()
    assert "registered demo" in first_run.ok("projects", "add", "demo", str(project)).out
    assert first_run.ok("projects", "list").lines == [f"demo\t{project.resolve()}"]
    assert (tmp_path / "data" / "assistant.db").is_file()


@pytest.mark.usefixtures("db")
def test_projects_add_a_broad_directory_needs_force(cli: Cli) -> None:
    assert_one_line_error(cli("projects", "add", "tmp", "/tmp"), "--force", "top-level")
    assert cli.ok("projects", "list").out == ""
    assert "registered tmp -> /tmp" in cli.ok("projects", "add", "tmp", "/tmp", "--force").out


@pytest.mark.usefixtures("db")
def test_projects_set_hardlinks(cli: Cli, project_dir: Path) -> None:
    cli.ok("projects", "add", "demo", str(project_dir))
    assert cli.ok("projects", "set", "demo", "--hardlinks", "on").out == "demo: hard links on\n"
    allowed = f"demo\t{project_dir.resolve()}\thard links allowed"
    assert cli.ok("projects", "list").lines == [allowed]
    cli.ok("projects", "set", "demo", "--hardlinks", "off")
    assert cli.ok("projects", "list").lines == [f"demo\t{project_dir.resolve()}"]
    assert_one_line_error(cli("projects", "set", "nope", "--hardlinks", "on"), "not found")
    assert cli("projects", "set", "demo", "--hardlinks", "maybe").code == 2  # usage error


@pytest.mark.usefixtures("db")
def test_projects_set_backlog_writes_and_web(cli: Cli, project_dir: Path) -> None:
    cli.ok("projects", "add", "demo", str(project_dir))
    root = project_dir.resolve()
    out = cli.ok("projects", "set", "demo", "--backlog-writes", "on", "--web", "on").out
    assert out == "demo: backlog writes on, web tools on\n"
    assert cli.ok("projects", "list").lines == [f"demo\t{root}\tbacklog writes\tweb tools"]
    cli.ok("projects", "set", "demo", "--web", "off")
    assert cli.ok("projects", "list").lines == [f"demo\t{root}\tbacklog writes"]
    cli.ok("projects", "set", "demo", "--backlog-writes", "off", "--hardlinks", "on")
    assert cli.ok("projects", "list").lines == [f"demo\t{root}\thard links allowed"]
    nothing = cli("projects", "set", "demo")
    assert nothing.code == 2 and "nothing to change" in nothing.err


# ---- users usage and budgets ----------------------------------------------------------------


def spend(engine: Engine, user: str, tokens: tuple[int, int, int, int], cost: float) -> None:
    """`user` spent `tokens` (input, output, cache read, cache write) this month, as a reply's
    ending records it in the ledger."""
    from shared.usage import Usage, current_month, record_usage

    with Session(engine) as s:
        owner = auth.get_user(s, user)
        assert owner.id is not None
        record_usage(s, user_id=owner.id, month=current_month(), usage=Usage(*tokens, cost))
        s.commit()


def test_users_usage_lists_tokens_cost_and_budget(cli: Cli, db: Engine) -> None:
    from shared.usage import current_month

    cli.ok("users", "add", "alice")
    cli.ok("users", "add", "bob")
    spend(db, "alice", (100, 200, 300, 400), 0.0125)
    spend(db, "alice", (1, 2, 3, 4), 0.5)
    month = current_month()
    assert cli.ok("users", "usage").lines == [
        f"usage in {month} (UTC)",
        "user\ttokens\tcost_usd\tbudget",
        "alice\t1010\t0.5125\tunlimited",
        "bob\t0\t0.0000\tunlimited",
    ]
    assert "set-budget" in cli.ok("users", "--help").out

    assert cli.ok("users", "set-budget", "bob", "5000").lines == ["bob: budget 5000 tokens a month"]
    cli.env["ASSISTANT_USER_MONTHLY_TOKENS"] = "2000"
    lines = cli.ok("users", "usage", "--month", month).lines
    assert lines[2:] == ["alice\t1010\t0.5125\t2000", "bob\t0\t0.0000\t5000"]
    assert cli.ok("users", "set-budget", "bob", "default").lines == [
        "bob: budget the default (2000)"
    ]
    assert cli.ok("users", "set-budget", "alice", "0").lines == ["alice: budget unlimited"]
    lines = cli.ok("users", "usage").lines
    assert lines[2:] == ["alice\t1010\t0.5125\tunlimited", "bob\t0\t0.0000\t2000"]

    # Another month: nothing spent then.
    assert cli.ok("users", "usage", "--month", "2001-01").lines[2] == "alice\t0\t0.0000\tunlimited"


@pytest.mark.usefixtures("db")
def test_users_usage_and_set_budget_errors_are_clear(cli: Cli) -> None:
    cli.ok("users", "add", "alice")
    assert_one_line_error(cli("users", "usage", "--month", "2026-13"), "YYYY-MM")
    assert_one_line_error(cli("users", "set-budget", "nobody", "10"), "nobody")
    res = cli("users", "set-budget", "alice", "lots")
    assert res.code == 2 and "default" in res.err and "Traceback" not in res.err
