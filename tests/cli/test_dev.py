"""`assistant dev` as a new user runs it: one command, embedded defaults, the offline demo model."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.client import WsClient, text_of
from tests.support.processes import free_port, wait_for


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def pids(self, child: str) -> list[int]:
        """The processes of one kind it started so far: its `api` or `worker` children, or
        the `Celery` processes its workers started."""
        pattern = r"Celery worker started" if child == "Celery" else rf"^{child} started"
        return [int(p) for p in re.findall(rf"{pattern} \(pid (\d+)\)", self.log(), re.M)]


@contextmanager
def assistant_dev(tmp_path: Path, project: Path) -> Iterator[Dev]:
    """`assistant dev` on a free port, run from `project`, stopped with Ctrl-C (SIGINT)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ASSISTANT_", "ANTHROPIC_", "PYTEST"))
    }
    env["ASSISTANT_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        # Run from the project directory: a first run registers it as the first project.
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "assistant"), "dev", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    dev = Dev(proc, port, log_path)
    try:
        wait_for(dev.healthy, 60, "assistant dev to serve /healthz")
        yield dev
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_all_gone(dev: Dev) -> None:
    """Everything it started is gone: nothing answers on its ports, no child is left."""
    try:
        httpx.get(f"http://127.0.0.1:{dev.port}/healthz", timeout=1)
        raise AssertionError("the API is still running after Ctrl-C")
    except httpx.HTTPError:
        pass
    found = re.search(r"embedded Redis at redis://127\.0\.0\.1:(\d+)", dev.log())
    assert found is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(found[1]))) != 0, "embedded Redis left running"
    pids = dev.pids("api") + dev.pids("worker") + dev.pids("Celery")
    assert pids and not [pid for pid in pids if running(pid)], "a child process left running"


def ask(port: int, question: str) -> list[dict[str, Any]]:
    with WsClient(f"ws://127.0.0.1:{port}/api/assistant/ws/demo") as ws:
        ws.start()
        return ws.ask(question, timeout=60)


def test_dev_runs_everything_and_answers_with_a_tool_call(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    project.mkdir()
    (project / "notes.txt").write_text("The launch code is 1234.\nSecond line.\n")
    with assistant_dev(tmp_path, project) as dev:
        # Open on loopback: no token needed.
        names = [p["name"] for p in httpx.get(f"http://127.0.0.1:{dev.port}/api/projects").json()]
        assert names == ["demo"]
        frames = ask(dev.port, "What is in notes.txt?")
        assert {
            "type": "tool_call",
            "tool": "Read",
            "input": {"file_path": "notes.txt"},
        }.items() <= next(f for f in frames if f["type"] == "tool_call").items()
        assert "The launch code is 1234." in text_of(frames)
        assert frames[-1]["type"] == "response_done"
    output = dev.log()
    assert "OFFLINE DEMO MODEL" in output
    assert "embedded Redis" in output
    assert_all_gone(dev)


def test_dev_restarts_what_dies_and_still_stops_everything(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    project.mkdir()
    (project / "notes.txt").write_text("Some notes.\n")
    with assistant_dev(tmp_path, project) as dev:
        [api] = dev.pids("api")
        os.kill(api, signal.SIGKILL)
        wait_for(lambda: len(dev.pids("api")) == 2 and dev.healthy(), 30, "the API back")

        [worker] = dev.pids("worker")
        os.kill(worker, signal.SIGKILL)  # its Celery process dies with it
        wait_for(lambda: len(dev.pids("worker")) == 2, 30, "a new worker")
        wait_for(lambda: dev.log().count(" ready.") == 2, 30, "the new worker's Celery ready")
        assert not running(api) and not running(worker)

        frames = ask(dev.port, "[[text:3]]")
        assert frames[-1]["type"] == "response_done" and text_of(frames) == "word1 word2 word3"
        assert dev.proc.poll() is None
    assert "api exited (killed by SIGKILL); restarting it" in dev.log()
    assert dev.proc.returncode == 0
    assert_all_gone(dev)
