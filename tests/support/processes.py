"""Start and stop the service's real processes (API, Celery worker) for the tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

# Short liveness timings so worker-loss tests finish in seconds, not minutes.
FAST_ENV = {
    "ASSISTANT_HEARTBEAT_INTERVAL_S": "0.5",
    "ASSISTANT_HEARTBEAT_TTL_S": "3",
    "ASSISTANT_WATCHDOG_INTERVAL_S": "0.5",
    "ASSISTANT_MODEL_MAX_RETRIES": "1",
    "ASSISTANT_MODEL_TIMEOUT_S": "20",
    "ASSISTANT_TURNS_PER_MINUTE": "10000",
    "ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER": "10000",
    # Titles stay the first 50 characters, which many tests check; tests of model-written
    # titles start processes with a title model (tests/api/test_titles.py).
    "ASSISTANT_TITLE_MODEL": "off",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """A process's memory as the kernel reports it (VmRSS now, VmHWM its peak), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def celery_pids(worker: Proc) -> list[int]:
    """The Celery processes an `assistant worker` has started so far, in order (from its log)."""
    return [int(pid) for pid in re.findall(r"Celery worker started \(pid (\d+)\)", worker.log())]


@dataclass
class Api(Proc):
    port: int = 0
    extra: dict[str, str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class Stack:
    api: Api
    worker: Proc


@dataclass
class StackFactory:
    tmp: Path
    database_url: str
    redis_url: str
    model_url: str
    procs: list[Proc] = field(default_factory=list)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(FAST_ENV)
        env.update(
            ASSISTANT_DATABASE_URL=self.database_url,
            ASSISTANT_REDIS_URL=self.redis_url,
            ANTHROPIC_BASE_URL=self.model_url,
            ANTHROPIC_API_KEY="test-key",
            ASSISTANT_AUTH_MODE="token",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra or {})
        return env

    def _spawn(
        self, args: list[str], name: str, extra: dict[str, str] | None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.tmp / f"{name}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                cwd=REPO,
                env=self.env(extra),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return popen, log_path

    def spawn(self, args: list[str], name: str, extra: dict[str, str] | None = None) -> Proc:
        """Any `assistant` command as a process the factory stops (e.g. flower)."""
        popen, log_path = self._spawn(args, name, extra)
        proc = Proc(popen, log_path)
        self.procs.append(proc)
        return proc

    def api(self, extra: dict[str, str] | None = None, port: int | None = None) -> Api:
        """An API process; on `port` when given (e.g. one already named in allowed origins)."""
        port = port or free_port()
        popen, log_path = self._spawn(["api", "--port", str(port)], "api", extra)
        api = Api(popen, log_path, port, extra)
        self.procs.append(api)

        def healthy() -> bool:
            if not api.alive():
                raise RuntimeError(f"API exited:\n{api.log()[-3000:]}")
            try:
                return httpx.get(f"{api.base_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, "the API to answer /healthz")
        return api

    def restart_api(self, api: Api) -> Api:
        """A new API process on `api`'s port with its settings; `api` is stopped first
        (SIGTERM, as a deployment restarts it) unless the caller already did."""
        api.stop()
        return self.api(api.extra, port=api.port)

    def worker(
        self,
        extra: dict[str, str] | None = None,
        concurrency: int = 200,
        args: list[str] | None = None,
    ) -> Proc:
        name = f"w{uuid.uuid4().hex[:6]}"
        popen, log_path = self._spawn(
            ["worker", "--concurrency", str(concurrency), "--hostname", f"{name}@test"]
            + (args or []),
            "worker",
            extra,
        )
        worker = Proc(popen, log_path)
        self.procs.append(worker)

        def ready() -> bool:
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.log()[-3000:]}")
            return " ready." in worker.log()

        wait_for(ready, 40, "the Celery worker to be ready")
        return worker

    def stack(self, extra: dict[str, str] | None = None) -> Stack:
        return Stack(self.api(extra), self.worker(extra))

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()
