"""Celery tasks: thin, ids only. The work is in worker.turn.

Also the worker process's hooks into Celery's life: logging (ours, text or JSON, for Celery's
own lines too), the turn loop started when the worker is ready, each task's log lines tagged
with its turn, and a shutdown that drains the turns instead of dropping them.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from shared.config import get_settings
from shared.logs import configure_logging, turn_scope
from worker.celery_app import celery_app
from worker.loop import close_turn_loop, current_turn_loop, turn_loop
from worker.turn import execute_turn

TASK_NAME = "turn.run"


@celery_app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_turn_task(turn_id: int, attempt: int = 1) -> str:
    """Run attempt `attempt` of turn `turn_id` (a stale or duplicate delivery does nothing)."""
    return turn_loop().run(execute_turn, turn_id, attempt)


@celeryd_init.connect
def _early_logging(**_: object) -> None:
    # Before Celery's own start-up warnings (such as running as root) are written.
    configure_logging(get_settings().log_format, "worker")


@setup_logging.connect
def _setup_logging(loglevel: int | str | None = None, **_: object) -> None:
    # Connected, so Celery leaves the root logger to us: one format for every line.
    configure_logging(get_settings().log_format, "worker", loglevel or "INFO")


@celeryd_after_setup.connect
def _quiet_banner(instance: Any = None, **_: object) -> None:
    # A JSON log is one object per line: no ASCII-art banner (its facts are logged anyway).
    if instance is not None and get_settings().log_format == "json":
        instance.quiet = True


@worker_ready.connect
def _start_turn_loop(sender: Any = None, **_: object) -> None:
    # Clients, heartbeats and the watchdog are up before the first turn arrives.
    loop = turn_loop()
    if loop.presence is not None:
        loop.presence.node = getattr(sender, "hostname", None)


@worker_shutting_down.connect
def _drain(how: str = "Warm", **_: object) -> None:
    # Called in the signal handler: only schedules the drain on the turn loop.
    loop = current_turn_loop()
    if loop is not None:
        loop.begin_drain(get_settings().worker_shutdown_grace_s if how == "Warm" else 0.0)


@worker_shutdown.connect
def _close_turn_loop(**_: object) -> None:
    close_turn_loop()


# Celery's own lines about a task (received in the pool thread, succeeded) carry its turn id;
# the turn's coroutine inherits the tag from the pool thread that submits it.
# Keyed by thread too: a duplicate delivery of one message may run in another thread meanwhile.
_scopes: dict[tuple[str, int], contextlib.ExitStack] = {}


@task_prerun.connect
def _tag_turn(task_id: str = "", task: Any = None, args: Any = None, **_: object) -> None:
    if getattr(task, "name", None) == TASK_NAME and args:
        scope = contextlib.ExitStack()
        scope.enter_context(turn_scope(int(args[0])))
        _scopes[task_id, threading.get_ident()] = scope


@task_postrun.connect
def _untag_turn(task_id: str = "", **_: object) -> None:
    scope = _scopes.pop((task_id, threading.get_ident()), None)
    if scope is not None:
        scope.close()
