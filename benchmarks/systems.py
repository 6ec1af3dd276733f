"""The two systems under test, started as real processes and stopped again.

`Service` is the real stack, started the way the README documents it: an embedded Redis
(shared.devtools.redis_server.RedisServer), the database (a fresh SQLite file, or a fresh
database on a PostgreSQL server), `python -m cli api` and `python -m cli worker` as
subprocesses with settings from their defaults; only the per-user rate and concurrency limits
are raised, since the benchmark's users send more than a person would (and model titles are
off). Users, tokens and the project are created
through shared.auth and shared.projects, as the CLI does.

`Baseline` is benchmarks.baseline_server: one process, no queue, no database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlmodel import Session

from shared import auth, projects
from shared.db import make_engine
from shared.devtools.redis_server import RedisServer
from shared.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
LIMITS_ENV = {
    "ASSISTANT_TURNS_PER_MINUTE": "1000000",
    "ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER": "1000",
    # The baseline writes no titles, and the stand-in only streams: one short request per
    # conversation, after its first reply, that the comparison leaves out.
    "ASSISTANT_TITLE_MODEL": "off",
}
PROJECT = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.log_tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Proc(name, popen, log_path)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def base_env(model_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASSISTANT_", "ANTHROPIC_", "PYTEST"))
    }
    env.update(ANTHROPIC_BASE_URL=model_url, ANTHROPIC_API_KEY="bench", PYTHONUNBUFFERED="1")
    return env


def make_project_dir(tmp: Path) -> Path:
    root = tmp / "project"
    if not root.exists():
        (root / "src").mkdir(parents=True)
        (root / "README.md").write_text("# Bench project\n\nA small project for the benchmark.\n")
        (root / "src" / "app.py").write_text("def main():\n    return 42\n")
    return root


@dataclass
class System:
    """What the load generator needs: where to connect, as whom, and which pids to measure."""

    name: str
    ws_urls: list[str] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)
    roots: dict[str, int] = field(default_factory=dict)

    def ws_url(self, client: int) -> str:
        return self.ws_urls[client % len(self.ws_urls)]

    def token(self, client: int) -> str | None:
        return self.tokens[client % len(self.tokens)] if self.tokens else None

    def stop(self) -> None:
        raise NotImplementedError


class Baseline(System):
    def __init__(self, tmp: Path, model_url: str) -> None:
        super().__init__("baseline")
        port = free_port()
        self.proc = spawn(
            "baseline",
            [
                "-m",
                "benchmarks.baseline_server",
                "--port",
                str(port),
                "--project-dir",
                str(make_project_dir(tmp)),
            ],
            base_env(model_url),
            tmp,
        )
        try:
            wait_until(lambda: self._ready(port), 30, "the baseline server")
        except BaseException:
            self.stop()
            raise
        self.ws_urls = [f"ws://127.0.0.1:{port}/api/assistant/ws/{PROJECT}"]
        self.roots = {"baseline": self.proc.popen.pid}

    def _ready(self, port: int) -> bool:
        self.proc.check_alive()
        return http_ok(f"http://127.0.0.1:{port}/healthz")

    def stop(self) -> None:
        self.proc.stop()


class Service(System):
    """Redis + database + `apis` API processes + `workers` worker processes."""

    def __init__(
        self,
        tmp: Path,
        model_url: str,
        users: int,
        postgres_admin_url: str | None = None,
        apis: int = 1,
        workers: int = 1,
    ) -> None:
        super().__init__("service")
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.redis = RedisServer(data_dir=tmp / f"redis-{uuid.uuid4().hex[:6]}")
        self.admin_url = postgres_admin_url
        self.db_name: str | None = None
        try:
            self.redis.start()
            self.database_url = self._database()
            self.tokens = list(self._accounts(users))
            env = base_env(model_url) | LIMITS_ENV
            env.update(
                ASSISTANT_DATABASE_URL=self.database_url,
                ASSISTANT_REDIS_URL=self.redis.url,
                ASSISTANT_DATA_DIR=str(tmp),
            )
            for i in range(apis):
                self._start_api(i, env)
            for i in range(workers):
                self._start_worker(i, env)
            assert self.redis.pid is not None
            self.roots["redis"] = self.redis.pid
        except BaseException:
            self.stop()
            raise

    def _database(self) -> str:
        if self.admin_url is None:
            url = f"sqlite:///{self.tmp / f'service-{uuid.uuid4().hex[:6]}.db'}"
        else:
            self.db_name = f"assistant_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
            admin.dispose()
            url = self.admin_url.rsplit("/", 1)[0] + f"/{self.db_name}"
        upgrade(url)
        return url

    def _accounts(self, users: int) -> list[str]:
        """One user (and token) per simulated person, and the project they talk about."""
        engine = make_engine(self.database_url)
        tokens = []
        with Session(engine) as session:
            projects.add_project(session, PROJECT, str(make_project_dir(self.tmp)))
            for i in range(users):
                user = auth.create_user(session, f"person{i}")
                tokens.append(auth.issue_token(session, user)[1])
            session.commit()
        engine.dispose()
        return tokens

    def _start_api(self, index: int, env: dict[str, str]) -> None:
        port = free_port()
        proc = spawn(f"api{index}", ["-m", "cli", "api", "--port", str(port)], env, self.tmp)
        self.procs.append(proc)

        def ready() -> bool:
            proc.check_alive()
            return http_ok(f"http://127.0.0.1:{port}/healthz")

        wait_until(ready, 60, f"API {index} to answer /healthz")
        self.ws_urls.append(f"ws://127.0.0.1:{port}/api/assistant/ws/{PROJECT}")
        self.roots[f"api{index}" if index else "api"] = proc.popen.pid

    def _start_worker(self, index: int, env: dict[str, str]) -> None:
        name = f"worker{index}" if index else "worker"
        args = ["-m", "cli", "worker", "--hostname", f"bench{index}-{uuid.uuid4().hex[:4]}@%h"]
        proc = spawn(name, args, env, self.tmp)
        self.procs.append(proc)

        def ready() -> bool:
            proc.check_alive()
            return " ready." in proc.log_path.read_text(errors="replace")

        wait_until(ready, 60, f"worker {index} to be ready")
        self.roots[name] = proc.popen.pid

    def pids(self, prefix: str) -> list[int]:
        return [pid for name, pid in self.roots.items() if name.startswith(prefix)]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.redis.stop()
        if self.db_name is not None and self.admin_url is not None:
            admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with contextlib.suppress(Exception), admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            admin.dispose()


class Standin:
    """benchmarks.standin as its own process, so its CPU is measured apart from everyone's."""

    def __init__(self, tmp: Path, words: int, rate: float, delay_s: float) -> None:
        port = free_port()
        args = ["-m", "benchmarks.standin", "--port", str(port), "--words", str(words)]
        args += ["--rate", str(rate), "--delay-ms", str(delay_s * 1000)]
        self.proc = spawn("standin", args, base_env(""), tmp)
        self.url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            self.proc.check_alive()
            return "listening" in self.proc.log_path.read_text(errors="replace")

        try:
            wait_until(ready, 30, "the model stand-in")
        except BaseException:
            self.proc.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.popen.pid

    def stop(self) -> None:
        self.proc.stop()
