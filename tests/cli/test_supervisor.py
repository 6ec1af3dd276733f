"""`assistant worker` supervises its Celery worker: what dies unasked comes back, stops still stop.

The processes are the real ones (`python -m cli worker`, which runs Celery in a child process);
faults are real signals to the Celery child, as the kernel's OOM killer or an operator sends.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cli.supervisor import GAVE_UP_STATUS, RestartBudget
from tests.support.client import WsClient, text_of
from tests.support.data import make_account, make_project
from tests.support.processes import Proc, StackFactory, celery_pids, wait_for

SLOW = "[[text:200]] [[slow:30]]"  # about six seconds of streaming
WORDS_200 = " ".join(f"word{i}" for i in range(1, 201))


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ready_count(worker: Proc) -> int:
    return worker.log().count(" ready.")


def answers(ws_url: str, project: str, token: str) -> str:
    """A new conversation on a new socket; the reply to a short question."""
    with WsClient(f"{ws_url}/api/assistant/ws/{project}", token) as ws:
        ws.start()
        frames = ws.ask("[[text:3]]", timeout=20)
    assert frames[-1]["type"] == "response_done", frames
    return text_of(frames)


class TestRestartBudget:
    def test_backoff_doubles_up_to_the_cap_then_gives_up(self) -> None:
        budget = RestartBudget(max_restarts=4, backoff_s=1, max_backoff_s=5, stable_after_s=60)
        delays = [budget.next_delay(ran_for_s=1) for _ in range(5)]
        assert delays == [1, 2, 4, 5, None]

    def test_a_stable_run_starts_the_count_afresh(self) -> None:
        budget = RestartBudget(max_restarts=2, backoff_s=1, stable_after_s=60)
        assert [budget.next_delay(1), budget.next_delay(1)] == [1, 2]
        assert budget.next_delay(ran_for_s=61) == 1  # not None: that run was healthy


class TestWorkerSupervision:
    def test_killed_celery_is_restarted_and_takes_new_turns(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        acct, project = make_account(), make_project(project_dir)
        [first] = celery_pids(stack.worker)

        os.kill(first, signal.SIGKILL)  # e.g. the OOM killer
        wait_for(lambda: ready_count(stack.worker) == 2, 30, "a restarted Celery to be ready")

        assert stack.worker.alive()
        [_, second] = celery_pids(stack.worker)
        assert second != first and running(second) and not running(first)
        assert "exited unexpectedly (killed by SIGKILL); restarting" in stack.worker.log()
        assert answers(stack.api.ws_url, project, acct.token) == "word1 word2 word3"

    def test_gives_up_with_a_nonzero_status_after_too_many_restarts(
        self, isolated: StackFactory
    ) -> None:
        worker = isolated.worker(args=["--max-restarts", "1"])
        os.kill(celery_pids(worker)[-1], signal.SIGKILL)
        wait_for(lambda: ready_count(worker) == 2, 30, "a restarted Celery to be ready")
        os.kill(celery_pids(worker)[-1], signal.SIGKILL)

        assert worker.popen.wait(timeout=20) == GAVE_UP_STATUS
        assert "2 times in a row; giving up" in worker.log()
        assert len(celery_pids(worker)) == 2

    def test_sigterm_reaches_celery_whose_warm_shutdown_finishes_the_turn(
        self, isolated: StackFactory, project_dir: Path
    ) -> None:
        stack = isolated.stack()
        acct, project = make_account(), make_project(project_dir)
        [celery] = celery_pids(stack.worker)
        with WsClient(f"{stack.api.ws_url}/api/assistant/ws/{project}", acct.token) as ws:
            ws.start()
            ws.send(type="message", content=SLOW)
            frames = ws.recv_until(lambda m: m["type"] == "text" and "seq" in m)
            stack.worker.popen.send_signal(signal.SIGTERM)
            frames += ws.until_terminal(timeout=30)

        # Warm shutdown: the running turn finished before the worker left, nothing restarted.
        assert frames[-1]["type"] == "response_done" and text_of(frames) == WORDS_200
        assert stack.worker.popen.wait(timeout=20) == 0
        assert not running(celery)
        assert celery_pids(stack.worker) == [celery]
        assert "exited unexpectedly" not in stack.worker.log()

    @pytest.mark.skipif(not os.uname().sysname == "Linux", reason="parent-death signal")
    def test_killing_the_supervisor_takes_celery_with_it(self, isolated: StackFactory) -> None:
        worker = isolated.worker()
        [celery] = celery_pids(worker)
        worker.kill9()
        wait_for(lambda: not running(celery), 10, "Celery to die with its supervisor")
