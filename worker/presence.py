"""This worker process, announced in Redis while it lives (read by /readyz and `assistant
status`, see shared/workers.py), with the turns it holds and whether it is shutting down."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from shared.metrics import redis_error
from shared.redis_client import REDIS_ERRORS
from shared.workers import WorkerInfo, announce, withdraw
from worker.context import WorkerContext

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, ctx: WorkerContext, metrics_port: int | None) -> None:
        self.ctx = ctx
        self.metrics_port = metrics_port
        self.started_at = time.time()
        self.node: str | None = None  # the Celery node name, once the worker is ready

    def info(self) -> WorkerInfo:
        ctx = self.ctx
        return WorkerInfo(
            name=ctx.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            turns=len(ctx.active),
            draining=ctx.draining,
            started_at=self.started_at,
            metrics_port=self.metrics_port,
            metrics_address=ctx.settings.worker_metrics_address if self.metrics_port else None,
            node=self.node,
        )

    async def announce(self) -> None:
        await announce(self.ctx.redis, self.info(), self.ctx.settings.heartbeat_ttl_s)

    async def run_forever(self) -> None:
        """Refresh the announcement every heartbeat interval, whatever Redis does meanwhile."""
        while True:
            try:
                await self.announce()
            except REDIS_ERRORS as exc:
                redis_error("presence")
                log.warning("presence: Redis unavailable (%s); retrying", exc)
            except Exception:
                log.exception("presence: announcement failed")
            await asyncio.sleep(self.ctx.settings.heartbeat_interval_s)

    async def withdraw(self) -> None:
        try:
            await withdraw(self.ctx.redis, self.ctx.name)
        except REDIS_ERRORS:
            log.warning("presence: could not withdraw (it expires by itself)")
