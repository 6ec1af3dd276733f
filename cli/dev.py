"""`assistant dev`: the whole service in one command, on embedded defaults.

SQLite under .assistant/, an embedded Redis when ASSISTANT_REDIS_URL is unset, the offline demo
model when ANTHROPIC_API_KEY is unset, then the API and one worker as child processes. Local
development runs open (no token) because it only listens on a loopback address; any other host
keeps token authentication on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from shared.config import DEFAULT_DATA_DIR


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _say(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.CYAN, err=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(host: str, port: int) -> None:
    # SIGTERM stops everything as Ctrl-C does, so no child or embedded Redis is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    env = os.environ.copy()
    stack = contextlib.ExitStack()
    data_dir = Path(env.get("ASSISTANT_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env["ASSISTANT_DATA_DIR"] = str(data_dir)

    if not env.get("ASSISTANT_REDIS_URL"):
        from shared.redis_server import RedisServer

        redis = stack.enter_context(RedisServer(data_dir=data_dir / "redis"))
        env["ASSISTANT_REDIS_URL"] = redis.url
        _say(f"embedded Redis at {redis.url} (set ASSISTANT_REDIS_URL to use your own)")

    if not env.get("ANTHROPIC_API_KEY"):
        from shared.demo_model import DemoModelServer

        demo = stack.enter_context(DemoModelServer())
        env["ANTHROPIC_BASE_URL"] = demo.url
        env["ANTHROPIC_API_KEY"] = "offline-demo"
        typer.secho(
            "ANTHROPIC_API_KEY is not set: using the built-in OFFLINE DEMO MODEL "
            f"at {demo.url}.\nIt answers with canned replies that really read your files; "
            "set ANTHROPIC_API_KEY for Claude.",
            fg=typer.colors.YELLOW,
            bold=True,
            err=True,
        )

    if _is_loopback(host):
        env.setdefault("ASSISTANT_AUTH_MODE", "open")
        origins = [f"http://{h}:{port}" for h in ("localhost", "127.0.0.1")]
        env.setdefault("ASSISTANT_ALLOWED_ORIGINS", ",".join(origins))
        if env["ASSISTANT_AUTH_MODE"] == "open":
            _say("auth: open (loopback only); no token needed on this machine")
    else:
        _say("auth: token (not a loopback address); create one with `assistant users add NAME`")

    # The settings of this process must match the children's for the set-up steps below.
    os.environ.update(env)
    from shared.config import get_settings

    get_settings.cache_clear()
    _prepare_database()

    exe = [sys.executable, "-m", "cli"]
    procs = [
        subprocess.Popen([*exe, "worker", "--concurrency", "50"], env=env),
        subprocess.Popen([*exe, "api", "--host", host, "--port", str(port)], env=env),
    ]
    _say(f"project assistant on http://{host}:{port}/  (Ctrl-C stops everything)")
    try:
        _supervise(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        stack.close()


def _prepare_database() -> None:
    from shared import projects
    from shared.db import session_scope
    from shared.migrate import upgrade

    upgrade()
    with session_scope() as session:
        if not projects.list_projects(session):
            # A first run has something to talk about: this very checkout, if it is one.
            here = Path.cwd()
            with contextlib.suppress(Exception):
                projects.add_project(session, here.name[:50] or "project", str(here))
                _say(f"registered {here} as project '{here.name}'")
        names = ", ".join(p.name for p in projects.list_projects(session)) or "none"
    _say(f"projects: {names} (add more with `assistant projects add NAME PATH`)")


def _supervise(procs: list[subprocess.Popen[bytes]]) -> None:
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    failed = [p for p in procs if p.poll() not in (None, 0)]
    if failed:
        _say("a child process exited; stopping")
