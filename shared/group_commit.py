"""A process's database writes, committed together: group commit on one writer thread.

Every turn writes at its start (the API stores the question; the worker claims it), twice a
second while it streams, and at its end. SQLite has one write lock for every process, and any
database pays a commit per transaction. Measured with the load benchmark, a hundred turns each
queueing for a thread and then for the lock made first chunks wait seconds for writes that take
milliseconds (docs/benchmark-findings.md). So a process sends its writes here: one thread runs
whatever is pending in one transaction, each job in a savepoint of its own (a job that fails is
rolled back alone and gets its exception back), and commits once for all of them. When the
process is idle a job runs at once; under load, jobs that arrived meanwhile share a commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlmodel import Session

from shared.db import session_scope

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Session], T]

MAX_BATCH = 256


@dataclass
class _Pending:
    job: Job[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupCommit:
    def __init__(self, name: str = "db-writer", max_batch: int = MAX_BATCH) -> None:
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def write(self, job: Job[T]) -> T:
        """Run `job(session)` in the next batch's transaction; its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            for pending, outcome in zip(batch, _commit(batch), strict=True):
                pending.loop.call_soon_threadsafe(_settle, pending.future, outcome)


def _commit(batch: list[_Pending]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    try:
        with session_scope() as session:
            for pending in batch:
                try:
                    with session.begin_nested():
                        outcomes.append((True, pending.job(session)))
                except Exception as exc:
                    outcomes.append((False, exc))
    except Exception as exc:
        # The commit itself failed: nothing of this batch was stored.
        log.warning("a batch of %d database writes failed: %s", len(batch), exc)
        return [(False, exc)] * len(batch)
    return outcomes


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # the waiter was cancelled; its write happened (or not) all the same
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Writes(Protocol):
    """Where a caller's database writes go: a GroupCommit, or DirectWrites."""

    async def write(self, job: Job[T]) -> T: ...


class DirectWrites:
    """Each write in its own transaction on a worker thread (tests, the CLI, rare writes)."""

    async def write(self, job: Job[T]) -> T:
        return await asyncio.to_thread(_in_own_transaction, job)


def _in_own_transaction(job: Job[T]) -> T:
    with session_scope() as session:
        return job(session)
