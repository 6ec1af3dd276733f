"""The `assistant` command: run the API, a worker, or everything at once; manage the registry."""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from shared import auth, projects
from shared.config import get_settings
from shared.db import session_scope
from shared.errors import AssistantError
from shared.models import User

app = typer.Typer(
    help="Project assistant: chat with Claude about your projects.", no_args_is_help=True
)
projects_app = typer.Typer(help="Register, list and remove projects.", no_args_is_help=True)
users_app = typer.Typer(
    help="Create and list users; their token usage and budgets.", no_args_is_help=True
)
tokens_app = typer.Typer(help="Issue, list and revoke API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
config_app = typer.Typer(help="The service's settings.", no_args_is_help=True)
for sub, name in (
    (projects_app, "projects"),
    (users_app, "users"),
    (tokens_app, "tokens"),
    (db_app, "db"),
    (config_app, "config"),
):
    app.add_typer(sub, name=name)


def _default_schema() -> None:
    """The default SQLite file is created and migrated on first use, so `assistant projects add`
    works before `assistant dev` has ever run. A configured database (ASSISTANT_DATABASE_URL)
    is left to `assistant db upgrade`, as deployments migrate deliberately."""
    if not get_settings().database_url:
        from shared.migrate import upgrade

        upgrade()


for sub in (projects_app, users_app, tokens_app):
    sub.callback()(_default_schema)

F = TypeVar("F", bound=Callable[..., Any])

# On SIGTERM the API waits this long for its connections to close before cancelling them.
API_SHUTDOWN_TIMEOUT_S = 10


class Switch(enum.StrEnum):
    on = "on"
    off = "off"


def friendly(fn: F) -> F:
    """Domain and database errors become one clear line on stderr and exit 1, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AssistantError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from None
        except SQLAlchemyError as exc:
            # E.g. "no such table" before `db upgrade`, or an unreachable server.
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            typer.echo(
                f"error: database: {cause[0] if cause else type(exc).__name__} "
                "(check ASSISTANT_DATABASE_URL; `assistant db upgrade` creates the schema)",
                err=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface for the API")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for the API")] = 8000,
) -> None:
    """Run everything locally: database, Redis (embedded if unset), the API and one worker."""
    from cli.dev import run_dev

    run_dev(host, port)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Run the HTTP/WebSocket API (uvicorn)."""
    import uvicorn

    from shared.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, "api")
    uvicorn.run(
        "api.main:app",
        host=host,
        port=port,
        ws_max_size=ws_hard_limit(settings.max_ws_frame_bytes),
        # Chat frames are small deltas: compressing them costs a compressor per connection
        # (about 40 KB each: 10,000 open conversations went from 641 MB to 1057 MB with it)
        # and saves little on the wire. Clients that offer it simply get plain frames.
        ws_per_message_deflate=False,
        # Our logging (text or JSON) formats uvicorn's lines too.
        log_config=None,
        log_level="info",
        proxy_headers=True,
        # On SIGTERM uvicorn closes every WebSocket with 1012 (service restart) after the
        # frames already written; clients reconnect elsewhere and resume. Bound the wait.
        timeout_graceful_shutdown=API_SHUTDOWN_TIMEOUT_S,
    )


def ws_hard_limit(frame_limit: int) -> int:
    """uvicorn's cap on a WebSocket frame: above the API's own limit, so a frame slightly too
    large gets the API's clear error frame on a connection that stays open, while a huge one
    is still cut by uvicorn (close 1009) before it is buffered whole."""
    return max(4 * frame_limit, 1 << 20)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Turns held at once (default ASSISTANT_WORKER_CONCURRENCY)")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="Celery node name")] = None,
    supervise: Annotated[
        bool,
        typer.Option(
            help="Run Celery in a child process and restart it if it exits unexpectedly "
            "(--no-supervise: run it in this process, e.g. under your own supervisor)"
        ),
    ] = True,
    max_restarts: Annotated[
        int, typer.Option(help="Restarts in a row (each run under a minute) before giving up")
    ] = 5,
) -> None:
    """Run a Celery worker that runs turns (restarted if it exits unexpectedly)."""
    if supervise:
        from cli.supervisor import RestartBudget
        from cli.supervisor import supervise as run_supervised

        child = [sys.executable, "-m", "cli", "worker", "--no-supervise"]
        child += [f"--loglevel={loglevel}"]
        child += [f"--concurrency={concurrency}"] if concurrency else []
        child += [f"--hostname={hostname}"] if hostname else []

        say = _supervisor_voice()

        budget = RestartBudget(max_restarts=max_restarts)
        raise typer.Exit(run_supervised(child, budget, say, name="Celery worker"))

    from worker.celery_app import celery_app

    n = concurrency or get_settings().worker_concurrency
    # Threads, not prefork: a turn waits on the network, and the threads only hand their turn
    # to the process's event loop and wait, so hundreds per process cost little. Gossip and
    # mingle exchange state between workers that this service never uses (it revokes nothing
    # and elects nothing); without them a (re)start is a second faster, and a broker
    # reconnect does not trip Celery 5.7's gossip restart over the connection it just dropped.
    argv = ["worker", "--pool=threads", f"--concurrency={n}", f"--loglevel={loglevel}"]
    argv += ["--without-gossip", "--without-mingle"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    celery_app.worker_main(argv)


def _supervisor_voice() -> Callable[[str], None]:
    """How `assistant worker` reports on its Celery child: a cyan line, or with JSON logs a
    log record like every other line of the process."""
    if get_settings().log_format != "json":
        return lambda message: typer.secho(
            f"assistant worker: {message}", fg=typer.colors.CYAN, err=True
        )
    import logging

    from shared.logs import configure_logging

    configure_logging("json", "worker")
    return logging.getLogger("assistant.worker").info


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on")] = 5555,
    address: Annotated[
        str, typer.Option(help="Interface; beyond loopback a login is required")
    ] = "127.0.0.1",
) -> None:
    """Run Flower (Celery monitoring) for the configured broker; more Flower options may follow."""
    from cli.flower import run_flower

    run_flower(port, address, list(ctx.args))


@app.command()
@friendly
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts")] = False,
) -> None:
    """Workers, queue depth, active turns, and turns failed or restarted in the last hour."""
    from cli.status import as_json as render_json
    from cli.status import as_text, collect

    report = collect(get_settings())
    typer.echo(render_json(report) if as_json else as_text(report))
    if report["problems"]:
        raise typer.Exit(1)


@config_app.command("env-example")
def config_env_example() -> None:
    """Print .env.example: every setting with its default and meaning."""
    from cli.envfile import env_example

    typer.echo(env_example(), nl=False)


@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from shared.migrate import upgrade

    upgrade()
    typer.echo("database is up to date")


@projects_app.command("add")
@friendly
def projects_add(
    name: str,
    path: str,
    force: Annotated[
        bool, typer.Option("--force", help="Allow a broad directory (/tmp, a home, ...)")
    ] = False,
) -> None:
    """Register directory PATH as project NAME."""

    with session_scope() as session:
        project = projects.add_project(session, name, path, force=force)
        typer.echo(f"registered {project.name} -> {project.path}")


@projects_app.command("set")
@friendly
def projects_set(
    name: str,
    hardlinks: Annotated[
        Switch | None,
        typer.Option(help="Let the tools read files with several hard links (off by default)"),
    ] = None,
    backlog_writes: Annotated[
        Switch | None,
        typer.Option(
            help="Let the assistant add and skip features in the project's autocoder "
            "backlog, features.db (off by default)"
        ),
    ] = None,
    web: Annotated[
        Switch | None,
        typer.Option(help="Give the assistant Anthropic's web search and fetch tools (off)"),
    ] = None,
) -> None:
    """Change a project's settings."""
    switches = {"hard links": hardlinks, "backlog writes": backlog_writes, "web tools": web}
    if all(v is None for v in switches.values()):
        typer.echo("error: nothing to change (--hardlinks, --backlog-writes or --web)", err=True)
        raise typer.Exit(2)

    def on(value: Switch | None) -> bool | None:
        return None if value is None else value == Switch.on

    with session_scope() as session:
        projects.set_options(
            session, name, hardlinks=on(hardlinks), backlog_writes=on(backlog_writes), web=on(web)
        )
    changed = ", ".join(f"{k} {v.value}" for k, v in switches.items() if v is not None)
    typer.echo(f"{name}: {changed}")


@projects_app.command("list")
@friendly
def projects_list() -> None:
    """List registered projects."""

    with session_scope() as session:
        for p in projects.list_projects(session):
            flags = [
                label
                for label, on in (
                    ("hard links allowed", p.allow_hardlinks),
                    ("backlog writes", p.backlog_writes),
                    ("web tools", p.web_tools),
                )
                if on
            ]
            extra = "".join(f"\t{flag}" for flag in flags)
            typer.echo(f"{p.name}\t{p.path}{extra}")


@projects_app.command("remove")
@friendly
def projects_remove(name: str) -> None:
    """Unregister project NAME (its files are not touched)."""

    with session_scope() as session:
        projects.remove_project(session, name)
    typer.echo(f"removed {name}")


@users_app.command("add")
@friendly
def users_add(
    name: str, admin: Annotated[bool, typer.Option("--admin", help="May manage projects")] = False
) -> None:
    """Create a user; prints a new API token on the last line."""

    with session_scope() as session:
        user = auth.create_user(session, name, is_admin=admin)
        _, secret = auth.issue_token(session, user, name="initial")
    typer.echo(f"created user {name}{' (admin)' if admin else ''}; API token (shown once):")
    typer.echo(secret)


@users_app.command("list")
@friendly
def users_list() -> None:
    """List users."""

    with session_scope() as session:
        for u in session.exec(select(User).order_by(User.name)).all():
            typer.echo(f"{u.name}\t{'admin' if u.is_admin else 'user'}")


@users_app.command("set-budget")
@friendly
def users_set_budget(
    name: str,
    tokens: Annotated[
        str,
        typer.Argument(
            help="Tokens per calendar month (0: unlimited), or `default` for "
            "ASSISTANT_USER_MONTHLY_TOKENS"
        ),
    ],
) -> None:
    """Set user NAME's monthly token budget, overriding ASSISTANT_USER_MONTHLY_TOKENS."""
    from shared.usage import set_budget

    value = tokens.strip().lower()
    if value != "default" and not value.isdigit():
        typer.echo("error: TOKENS is a number of tokens (0: unlimited) or `default`", err=True)
        raise typer.Exit(2)
    budget = None if value == "default" else int(value)
    with session_scope() as session:
        set_budget(session, auth.get_user(session, name), budget)
    if budget is None:
        shown = f"the default ({get_settings().user_monthly_tokens or 'unlimited'})"
    else:
        shown = f"{budget} tokens a month" if budget else "unlimited"
    typer.echo(f"{name}: budget {shown}")


@users_app.command("usage")
@friendly
def users_usage(
    month: Annotated[
        str | None, typer.Option(help="YYYY-MM (UTC); default: the current month")
    ] = None,
) -> None:
    """List every user's tokens, cost and budget in a month."""
    from shared.usage import Usage, all_month_usage, budget_of, current_month, parse_month

    settings = get_settings()
    chosen = parse_month(month) if month else current_month()
    with session_scope() as session:
        spent = all_month_usage(session, chosen)
        users = session.exec(select(User).order_by(User.name)).all()
        typer.echo(f"usage in {chosen} (UTC)")
        typer.echo("user\ttokens\tcost_usd\tbudget")
        for u in users:
            assert u.id is not None
            used = spent.get(u.id, Usage())
            budget = budget_of(settings, u)
            typer.echo(
                f"{u.name}\t{used.tokens}\t{used.cost_usd:.4f}"
                f"\t{budget if budget is not None else 'unlimited'}"
            )


@tokens_app.command("add")
@friendly
def tokens_add(user: str, name: Annotated[str, typer.Option(help="A label")] = "") -> None:
    """Issue a new token for USER; prints it on the last line (it is not stored)."""

    with session_scope() as session:
        _, secret = auth.issue_token(session, auth.get_user(session, user), name=name)
    typer.echo(f"new token for {user} (shown once):")
    typer.echo(secret)


@tokens_app.command("list")
@friendly
def tokens_list(user: Annotated[str | None, typer.Argument()] = None) -> None:
    """List tokens (id, user, prefix, state); never the secrets."""

    with session_scope() as session:
        owner = auth.get_user(session, user) if user else None
        for t in auth.list_tokens(session, owner):
            who = session.get(User, t.user_id)
            state = "revoked" if t.revoked_at else "active"
            typer.echo(f"{t.id}\t{who.name if who else '?'}\t{t.prefix}...\t{t.name}\t{state}")


@tokens_app.command("revoke")
@friendly
def tokens_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID."""

    with session_scope() as session:
        auth.revoke_token(session, token_id)
    typer.echo(f"revoked token {token_id}")
