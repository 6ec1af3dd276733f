"""One Claude turn: claim it, stream the reply through the tool-use loop, publish, persist, end.

`execute_turn` is the whole life of one attempt of a turn in a worker. The reply is saved while
it streams (by the process's `ProgressWriter`, twice a second), so a crash loses at most the
last instant of text; a stop request cancels the coroutine reading the model stream, which
closes it. However the attempt ends, it ends through `shared.turns.ending`, and
`TurnSuperseded` (another attempt owns the turn now) is caught here, in one place. The one
other way out is a worker shutting down (worker/drain.py): then the stopped attempt is handed
back for another worker to re-run.

The streaming itself is `worker.run.TurnRun`; what the claim loads is `worker.job`. After a
conversation's first reply has ended, a task of its own asks the title model for the
conversation's title (shared/titles.py): the terminal chunk never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

from shared.logs import bind_turn, turn_scope
from shared.titles import write_title
from shared.turns import ending
from shared.turns.ending import Ending, end_turn
from shared.turns.restart import restart_turn
from shared.turns.state import TurnSuperseded
from shared.turns.stream import last_logged_seq
from shared.usage import current_month, record_usage
from worker.context import WorkerContext
from worker.errors import (
    CANNOT_START,
)
from worker.job import CannotStart, TurnJob, load_turn, project_setup
from worker.metrics import TURN_DURATION
from worker.run import HandBack, TurnRun
from worker.supervisor import beat

log = logging.getLogger(__name__)


async def execute_turn(ctx: WorkerContext, turn_id: int, attempt: int) -> str:
    """Run attempt `attempt` of turn `turn_id` to its end; how it ended, for the task's log."""
    with turn_scope(turn_id):
        if ctx.draining:
            # Shutting down: not claimed, so another worker can take this very attempt.
            await asyncio.to_thread(ctx.enqueue, turn_id, attempt)
            log.info("turn %s attempt %s: worker shutting down; passed on", turn_id, attempt)
            return "passed_on"
        started = time.monotonic()
        try:
            how = await _execute(ctx, turn_id, attempt)
        except TurnSuperseded as exc:
            # A duplicate or late delivery, or the watchdog re-ran or ended the turn meanwhile.
            log.info("turn %s attempt %s: superseded (%s); stopping", turn_id, attempt, exc)
            how = "superseded"
        TURN_DURATION.labels(how).observe(time.monotonic() - started)
        return how


async def _execute(ctx: WorkerContext, turn_id: int, attempt: int) -> str:
    try:
        job = await ctx.db.write(partial(load_turn, ctx.settings, turn_id, attempt, ctx.name))
        bind_turn(job.conversation_id, job.user_id)
        log.info("turn %s attempt %s: claimed", turn_id, attempt)
    except (TurnSuperseded, asyncio.CancelledError):
        raise
    except Exception as exc:
        if isinstance(exc, CannotStart):
            message = str(exc)
        else:
            # The claim rolled back with the failed transaction: end the turn so nobody waits.
            log.exception("turn %s: could not load", turn_id)
            message = CANNOT_START
        await _end(ctx, ending.could_not_start(message), turn_id, attempt, 0)
        return "could_not_start"
    stop = asyncio.Event()
    ctx.active[turn_id] = stop
    if ctx.handing_back:
        stop.set()  # claimed as the grace period ran out: straight back to the queue
    try:
        await beat(ctx, [turn_id])
        # Outside the database transaction: reading the project's files (README, features.db).
        setup = await asyncio.to_thread(project_setup, ctx.settings, job)
        # Continue after whatever the log holds already (an earlier attempt's chunks).
        after_seq = max(job.last_seq, await last_logged_seq(ctx.redis, turn_id))
        run = TurnRun(ctx, job, setup, stop, after_seq)
        outcome = await run.run()
        if isinstance(outcome, HandBack):
            await _hand_back(ctx, turn_id, attempt, run.publisher.seq)
            # The next attempt writes the reply again, but these tokens were spent: the user's
            # month counts them (the reply row keeps the last attempt's).
            spent = run.reply_text().usage
            if spent is not None:
                await ctx.db.write(
                    partial(record_usage, user_id=job.user_id, month=current_month(), usage=spent)
                )
        else:
            await _end(ctx, outcome, turn_id, attempt, run.publisher.seq)
            if outcome.name == "completed" and _may_need_title(ctx, job):
                _start_title(ctx, job, run.reply.text)
        return outcome.name
    finally:
        # Only our own entry: a later attempt of this turn may be running in this process.
        if ctx.active.get(turn_id) is stop:
            del ctx.active[turn_id]


# Title tasks in flight: held here so they are not garbage-collected before they finish.
_titles: set[asyncio.Task[None]] = set()


def _may_need_title(ctx: WorkerContext, job: TurnJob) -> bool:
    """Only a conversation's first question is sent without history: any other turn is not
    its first reply and needs no title, known without asking the database (`write_title`
    checks the rest: the first complete reply, a title still automatic)."""
    return ctx.settings.titles_on and len(job.messages) == 1


def _start_title(ctx: WorkerContext, job: TurnJob, answer: str) -> None:
    """Title the conversation after its first reply, off the reply's path: the terminal chunk
    is already out, and the turn's attempt returns without waiting for this."""
    task = asyncio.create_task(
        write_title(
            ctx.anthropic,
            ctx.settings,
            ctx.db,
            conversation_id=job.conversation_id,
            turn_id=job.turn_id,
            answer=answer,
        ),
        name=f"title-{job.turn_id}",
    )
    _titles.add(task)
    task.add_done_callback(_titles.discard)


async def _hand_back(ctx: WorkerContext, turn_id: int, attempt: int, seq: int) -> None:
    """This attempt has stopped publishing: re-queue the turn as the next attempt."""
    if not await restart_turn(
        ctx.redis,
        ctx.settings,
        ctx.enqueue,
        turn_id=turn_id,
        attempt=attempt,
        reason="shutdown",
        after_seq=seq,
        worker=ctx.name,
        db=ctx.db,
    ):
        raise TurnSuperseded(f"turn {turn_id} attempt {attempt} was moved on by another actor")


async def _end(ctx: WorkerContext, how: Ending, turn_id: int, attempt: int, seq: int) -> None:
    if not await end_turn(
        ctx.redis, ctx.settings, how, turn_id=turn_id, attempt=attempt, after_seq=seq, db=ctx.db
    ):
        raise TurnSuperseded(f"turn {turn_id} attempt {attempt} was ended by another actor")
