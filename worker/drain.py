"""A worker shutting down (SIGTERM) loses no turn and never runs one twice at once.

Celery's warm shutdown stops taking messages and waits for the running tasks; each task waits
for its turn on this process's loop. `drain` marks the process as draining (a turn that still
arrives is passed on unclaimed, and readiness stops counting this worker), lets the running
turns finish for `worker_shutdown_grace_s`, then sets the stop signal of the rest with
`handing_back` on: each attempt stops publishing, and `worker/turn.py` re-queues its turn as
the next attempt (`state.hand_back`), announced as `turn_restarted`, for another worker.
"""

from __future__ import annotations

import asyncio
import logging
import time

from worker.context import WorkerContext
from worker.presence import Presence

log = logging.getLogger(__name__)

POLL_S = 0.1


async def drain(ctx: WorkerContext, presence: Presence | None, grace_s: float) -> None:
    if ctx.draining:
        grace_s = 0.0  # asked again (a second signal, a cold shutdown): no more waiting
    ctx.draining = True
    log.info("shutting down: no new turns; %s running, %.0f s to finish", len(ctx.active), grace_s)
    if presence is not None:
        try:
            await presence.announce()  # readiness stops counting this worker now
        except Exception:
            log.warning("could not announce the shutdown", exc_info=True)
    deadline = time.monotonic() + grace_s
    while ctx.active and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    ctx.handing_back = True
    if ctx.active:
        log.warning("grace period over: handing back %s turn(s)", len(ctx.active))
    for stop in list(ctx.active.values()):
        stop.set()
