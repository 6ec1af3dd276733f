"""`assistant dev`: the whole service in one command, on embedded defaults.

SQLite under .assistant/, an embedded Redis when ASSISTANT_REDIS_URL is unset, the offline demo
model when ANTHROPIC_API_KEY is unset, then the API and one worker as child processes. A child
that dies is restarted (with backoff; when one keeps dying, everything stops with status 1), so
a crash does not leave a half-working service. Local development runs open (no token) because
it only listens on a loopback address; any other host keeps token authentication on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from cli.supervisor import RestartBudget, describe_exit
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
        from shared.devtools.redis_server import RedisServer

        redis = stack.enter_context(RedisServer(data_dir=data_dir / "redis"))
        env["ASSISTANT_REDIS_URL"] = redis.url
        _say(f"embedded Redis at {redis.url} (set ASSISTANT_REDIS_URL to use your own)")

    if not env.get("ANTHROPIC_API_KEY"):
        from shared.devtools.demo_model import DemoModelServer

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
    children = [
        _Child("worker", [*exe, "worker", "--concurrency", "50"]),
        _Child("api", [*exe, "api", "--host", host, "--port", str(port)]),
    ]
    # From here on a stop signal only sets a flag: raising KeyboardInterrupt in the middle of
    # starting a child could leave it running without our knowing its pid.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    status = 0
    try:
        for child in children:
            child.start(env)
        _say(f"project assistant on http://{host}:{port}/  (Ctrl-C stops everything)")
        status = _supervise(children, env, stop)
    finally:
        _stop_all(children)
        stack.close()
    if status:
        raise typer.Exit(status)


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
                # The checkout is a broad directory (it holds the service itself and its data
                # directory), registered on purpose as the local demo project.
                projects.add_project(session, here.name[:50] or "project", str(here), force=True)
                _say(f"registered {here} as project '{here.name}'")
        names = ", ".join(p.name for p in projects.list_projects(session)) or "none"
    _say(f"projects: {names} (add more with `assistant projects add NAME PATH`)")


@dataclass
class _Child:
    """One process `assistant dev` keeps running, restarted (within a budget) when it dies."""

    name: str
    argv: list[str]
    budget: RestartBudget = field(default_factory=RestartBudget)
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(self.argv, env=env)
        self.started = time.monotonic()
        self.restart_at = None
        _say(f"{self.name} started (pid {self.proc.pid})")


def _supervise(children: list[_Child], env: dict[str, str], stop: threading.Event) -> int:
    """Restart what dies until we are stopped (0) or a child keeps dying (1)."""
    while not stop.wait(0.5):
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start(env)
                continue
            code = child.proc.poll() if child.proc is not None else None
            if code is None:
                continue
            delay = child.budget.next_delay(now - child.started)
            if delay is None:
                _say(f"{child.name} keeps exiting ({describe_exit(code)}); stopping everything")
                return 1
            _say(f"{child.name} exited ({describe_exit(code)}); restarting it in {delay:g}s")
            child.restart_at = now + delay
    return 0


def _stop_all(children: list[_Child]) -> None:
    procs = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
