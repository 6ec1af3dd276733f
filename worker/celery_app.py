"""The Celery application: Redis broker, and the settings that make turns survive worker loss."""

from __future__ import annotations

from celery import Celery

from shared.config import get_settings
from worker.broker_transport import transport_for


def make_celery() -> Celery:
    settings = get_settings()
    broker = settings.redis_dsn
    app = Celery("assistant", broker=broker, include=["worker.tasks"])
    app.conf.update(
        # Ids only in messages; JSON so Flower and any client can read them.
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A turn is acknowledged only when it has finished, so a lost worker's turn is not
        # silently dropped by the broker...
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # ...but redelivery is not how we notice a lost worker: with the Redis broker an unacked
        # message returns only after the visibility timeout. It is set above the longest turn
        # so a slow, healthy turn is never delivered twice; the heartbeat watchdog re-runs or
        # fails a vanished worker's turn within seconds, and a late redelivery finds the turn's
        # attempt number moved on and does nothing (bounded: max_turn_attempts).
        broker_transport_options={"visibility_timeout": int(settings.turn_time_limit_s) + 600},
        # One message reserved per pool slot: turns are long, so no greedy prefetching.
        worker_prefetch_multiplier=1,
        # A broker reconnect (Redis restart) must not cancel running turns: they finish, are
        # persisted, and publish to Redis again once it is back.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        # kombu's Redis transport with the fix that keeps a worker alive through a Redis
        # restart with turns in flight (see worker/broker_transport.py for the root cause).
        broker_transport=transport_for(broker),
        # Task events cost a Redis publish per task state on both sides (the API's enqueue took
        # twice as long with the sent event). Flower switches the workers' events on itself
        # while it runs; ASSISTANT_CELERY_EVENTS=true keeps them always on.
        worker_send_task_events=settings.celery_events,
        task_send_sent_event=settings.celery_events,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery()


def enqueue_turn(turn_id: int, attempt: int = 1) -> None:
    """Dispatch a turn by id (never its content); called after the commit that created it."""
    celery_app.send_task("turn.run", args=[turn_id, attempt])
