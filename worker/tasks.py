"""Celery tasks: thin, ids only. The work is in worker.turn."""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown

from worker.celery_app import celery_app
from worker.runtime import Runtime


@celery_app.task(name="turn.run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_turn(turn_id: int, attempt: int = 1) -> str:
    """Run attempt `attempt` of turn `turn_id` (a stale or duplicate delivery does nothing)."""
    return Runtime.get().run_turn(turn_id, attempt)


@worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    if Runtime._instance is not None:
        Runtime._instance.shutdown()


@worker_ready.connect
def _start_runtime(**_: object) -> None:
    # Start the loop, clients, heartbeats and the watchdog before the first turn arrives.
    Runtime.get()
