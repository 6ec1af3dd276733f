"""One Claude turn: claim it, stream the reply through the tool-use loop, publish, persist, end.

`execute_turn` is the whole life of one attempt of a turn in a worker. The reply is saved while
it streams (by the process's `ProgressWriter`, twice a second), so a crash loses at most the
last instant of text; a stop request cancels the coroutine reading the model stream, which
closes it. However the attempt ends, it ends through `shared.turns.ending`, and
`TurnSuperseded` (another attempt owns the turn now) is caught here, in one place. The one
other way out is a worker shutting down (worker/drain.py): then the stopped attempt is handed
back for another worker to re-run.

The tokens the model reports are summed over the turn's rounds (worker/usage.py) and stored,
priced, with the reply's ending. After a conversation's first reply has ended, a task of its
own asks the title model for the conversation's title (shared/titles.py): the terminal chunk
never waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anthropic
from sqlmodel import Session

from shared.backlog import BACKLOG_TOOL_NAMES, has_backlog, run_backlog_tool
from shared.branches import load_tree
from shared.config import Settings
from shared.errors import AssistantError
from shared.logs import bind_turn, turn_scope
from shared.models import Conversation, Message, StopReason, Turn
from shared.projects import get_project, project_root
from shared.prompt import history_messages, system_prompt
from shared.protocol import Chunk
from shared.references import check_references
from shared.titles import write_title
from shared.tools import TOOL_SCHEMAS, ToolError, ToolLimits, limits_from_settings, run_tool
from shared.turns import ending, state
from shared.turns.ending import Ending, end_turn
from shared.turns.restart import restart_turn
from shared.turns.state import ReplyText, TurnSuperseded
from shared.turns.stream import TurnPublisher, last_logged_seq
from shared.usage import current_month, record_usage
from worker.coalesce import Coalescer
from worker.context import WorkerContext
from worker.errors import (
    CANNOT_START,
    CONTEXT_TOO_LONG,
    REFUSED,
    TOO_LONG,
    describe_error,
    prompt_too_long,
)
from worker.metrics import FIRST_CHUNK, MODEL_ERRORS, TOOL_CALLS, TURN_DURATION
from worker.reply import Reply, Round, TextOut, fold
from worker.request import Toolset, request_params, tool_definitions
from worker.rounds import CONTEXT_EXCEEDED, Dialogue
from worker.supervisor import beat
from worker.usage import TurnUsage

log = logging.getLogger(__name__)

# Appended to a reply that reached the tool-round limit, so it never just stops.
STOPPED_LOOKING = (
    "\n\n*I stopped looking here: this reply reached its limit of {n} rounds of tool calls. "
    "Ask me to continue if you want me to look further.*"
)
# Tools run here, by name: what the metrics label a call with (anything else is "unknown").
TOOL_NAMES = frozenset(str(schema["name"]) for schema in TOOL_SCHEMAS) | frozenset(
    BACKLOG_TOOL_NAMES
)


class CannotStart(Exception):
    """The turn cannot run (its project is gone): it ends with this message."""


class HandBack:
    """How an attempt stops when its worker shuts down: not an ending; the turn is re-run."""

    name = "handed_back"


@dataclass(frozen=True)
class TurnJob:
    """Everything one attempt of a turn needs, loaded when it is claimed."""

    turn_id: int
    attempt: int
    conversation_id: int
    user_id: int
    reply_id: int
    root: Path
    project_name: str
    messages: list[dict[str, Any]]
    last_seq: int
    allow_hardlinks: bool = False
    backlog_writes: bool = False
    web_tools: bool = False


@dataclass(frozen=True)
class ProjectSetup:
    """What a project's turns get besides the conversation: their tools and system prompt."""

    toolset: Toolset = field(default_factory=Toolset)
    system: str = ""


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


def load_turn(
    settings: Settings, turn_id: int, attempt: int, worker: str, session: Session
) -> TurnJob:
    """Claim the turn and load what Claude needs (TurnSuperseded / CannotStart otherwise), on
    the process's group commit: raising rolls the claim back with the rest of the job."""
    state.claim(session, turn_id=turn_id, attempt=attempt, worker=worker)
    turn = session.get(Turn, turn_id)
    assert turn is not None
    conv = session.get(Conversation, turn.conversation_id)
    user_msg = session.get(Message, turn.user_message_id)
    assert conv is not None
    assert user_msg is not None
    try:
        project = get_project(session, conv.project_name)
        root = project_root(project)
    except AssistantError as exc:
        # The claim is rolled back; the ending then fails the still-queued turn.
        raise CannotStart(
            f"{exc.message}: the project '{conv.project_name}' is no longer available"
        ) from None
    reply = state.reset_reply(session, turn)
    assert reply.id is not None
    # Only the question's own branch: its ancestors, never a sibling's replies or questions.
    previous = load_tree(session, turn.conversation_id).ancestors(user_msg)[:-1]
    return TurnJob(
        turn_id=turn_id,
        attempt=attempt,
        conversation_id=turn.conversation_id,
        user_id=turn.user_id,
        reply_id=reply.id,
        root=root,
        project_name=conv.project_name,
        messages=history_messages(previous, user_msg.content, settings.history_budget_chars),
        last_seq=turn.last_seq,
        allow_hardlinks=project.allow_hardlinks,
        backlog_writes=project.backlog_writes,
        web_tools=project.web_tools,
    )


# A project's tools and system prompt change only when its README, its backlog file or its
# switches do: built at most this often per project, so a turn does not read them again (and
# the prompt cache sees the same bytes).
SETUP_TTL_S = 30.0
_setups: dict[tuple[object, ...], tuple[float, ProjectSetup]] = {}


def project_setup(settings: Settings, job: TurnJob) -> ProjectSetup:
    """The project's toolset and system prompt (reads its files: call it off the event loop)."""
    key = (job.project_name, job.root, job.allow_hardlinks, job.backlog_writes, job.web_tools)
    now = time.monotonic()
    hit = _setups.get(key)
    if hit is not None and now - hit[0] < SETUP_TTL_S:
        return hit[1]
    limits = limits_from_settings(settings, job.allow_hardlinks)
    toolset = project_toolset(
        job.root, limits, backlog_writes=job.backlog_writes, web=job.web_tools
    )
    system = system_prompt(job.project_name, job.root, backlog=toolset.backlog, web=toolset.web)
    setup = ProjectSetup(toolset, system)
    _setups[key] = (now, setup)
    return setup


def project_toolset(root: Path, limits: ToolLimits, *, backlog_writes: bool, web: bool) -> Toolset:
    """The tools a project's turns get: the backlog's where it has autocoder's features.db
    (writes where an administrator allowed them), the web's where enabled."""
    backlog = None
    if has_backlog(root, limits):
        backlog = "write" if backlog_writes else "read"
    return Toolset(backlog=backlog, web=web)


class TurnRun:
    """One attempt's streaming work: the model rounds, their chunks, and progress saves."""

    def __init__(
        self,
        ctx: WorkerContext,
        job: TurnJob,
        setup: ProjectSetup,
        stop: asyncio.Event,
        after_seq: int,
    ) -> None:
        self.ctx = ctx
        self.job = job
        self.setup = setup
        self.stop = stop
        self.turn_id = job.turn_id
        self.attempt = job.attempt
        self.reply = Reply()
        self.usage = TurnUsage()
        self._dirty = False
        self._claimed_at = time.monotonic()
        self._first_chunk = True
        # Set by the progress writer when a save finds another attempt owning the turn.
        self.superseded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        s = ctx.settings
        self.publisher = TurnPublisher(ctx.redis, s, job.turn_id, after_seq)
        self.coalescer = Coalescer(self._emit_text, s.coalesce_ms / 1000, s.coalesce_max_chars)
        self.limits = limits_from_settings(s, job.allow_hardlinks)
        self.tools = tool_definitions(setup.toolset, s)
        self.stop_reason: str = StopReason.end_turn

    async def run(self) -> Ending | HandBack:
        """Stream until the reply is done, stopped, failed or out of time; how to end it (or,
        when the worker is shutting down, that it is to be handed back)."""
        converse = asyncio.create_task(self._converse())
        stopped = asyncio.create_task(self.stop.wait())
        tasks = (converse, stopped)
        self.ctx.progress.track(self)
        try:
            done, _ = await asyncio.wait(
                (*tasks, self.superseded),
                timeout=self.ctx.settings.turn_time_limit_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            self.ctx.progress.untrack(self)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.superseded in done:
            self.superseded.result()  # raises TurnSuperseded
        error = converse.exception() if converse in done else None
        if isinstance(error, TurnSuperseded):
            raise error
        try:
            await self.coalescer.flush()  # what was said before the end goes out before it
        finally:
            await self.coalescer.aclose()
        text = self.reply_text()
        if converse in done:
            if error is not None:
                return ending.failed(text, describe_error(error, self.job.turn_id))
            if self.stop_reason == StopReason.refusal:
                return ending.refused(text, REFUSED)
            if self.stop_reason == CONTEXT_EXCEEDED:
                MODEL_ERRORS.labels("context_too_long").inc()
                return ending.failed(text, CONTEXT_TOO_LONG)
            return ending.completed(await self._finished(text))
        if stopped in done:
            return HandBack() if self.ctx.handing_back else ending.stopped(text)
        return ending.failed(text, TOO_LONG)

    async def _converse(self) -> None:
        """The model rounds of the turn; `self.stop_reason` says how the reply ended."""
        dialogue = Dialogue(self.ctx.settings, self.job.messages)
        for round_no in itertools.count(1):
            rnd = Round(continues=dialogue.continues)
            params = request_params(
                self.ctx.settings,
                self.setup.system,
                dialogue.messages,
                self.tools,
                last_round=dialogue.last_round,
            )
            try:
                stream = await self.ctx.anthropic.messages.create(**params, stream=True)
            except anthropic.BadRequestError as exc:
                if not prompt_too_long(exc):
                    raise
                log.info("turn %s: prompt too long; %s", self.job.turn_id, exc.message)
                step = dialogue.refused_as_too_long()
                if step.kind == "end":
                    self.stop_reason = step.stop_reason
                    return
                continue
            async with stream:
                async for event in stream:
                    if event.type == "message_start":
                        self.usage.observe(event)
                        self._log_usage(round_no, event.message.usage)
                    elif event.type == "message_delta":
                        self.usage.observe(event)
                    for out in fold(self.reply, rnd, event):
                        self._dirty = True
                        if isinstance(out, TextOut):
                            await self.coalescer.add(out.text)
                        else:
                            await self.coalescer.flush()
                            await self._publish(
                                Chunk(type="tool_call", tool=out.tool, input=out.input)
                            )
            step = dialogue.after(rnd)
            if step.kind == "tools":
                dialogue.add_tool_results([await self._tool(b) for b in step.tool_uses])
            elif step.kind == "end":
                self.stop_reason = step.stop_reason
                if step.stop_reason == StopReason.max_tool_rounds:
                    await self._say(STOPPED_LOOKING.format(n=self.ctx.settings.max_tool_rounds))
                return

    def reply_text(self) -> ReplyText:
        """The reply as it ends, with the usage of all its rounds, priced by its model."""
        model = self.usage.model or self.ctx.settings.model
        return ReplyText(
            self.job.reply_id,
            self.reply.text,
            list(self.reply.tool_calls),
            usage=self.usage.total().priced(self.ctx.settings, model),
            model=model,
        )

    def _log_usage(self, round_no: int, usage: Any) -> None:
        """Prompt-cache reads and writes of each round (the turn's sum is stored with it)."""
        log.info(
            "turn %s round %s: input %s, cache read %s, cache write %s",
            self.job.turn_id,
            round_no,
            usage.input_tokens,
            usage.cache_read_input_tokens or 0,
            usage.cache_creation_input_tokens or 0,
        )

    async def _say(self, text: str) -> None:
        """Text of our own, added to the reply like the model's."""
        self.reply.text += text
        self._dirty = True
        await self.coalescer.add(text)

    async def _finished(self, text: ReplyText) -> ReplyText:
        """The completed reply with its stop reason and its checked file references."""
        try:
            refs = await asyncio.to_thread(
                check_references, self.job.root, text.content, self.limits
            )
        except Exception:
            # Checking references is a courtesy: it must never cost the reply.
            log.warning("turn %s: references not checked", self.job.turn_id, exc_info=True)
            refs = []
        return replace(text, references=refs, stop_reason=self.stop_reason)

    async def _emit_text(self, text: str) -> None:
        await self._publish(Chunk(type="text", content=text))

    async def _publish(self, chunk: Chunk) -> None:
        await self.publisher.publish(chunk)
        if self._first_chunk:
            self._first_chunk = False
            FIRST_CHUNK.observe(time.monotonic() - self._claimed_at)

    async def _tool(self, block: dict[str, Any]) -> dict[str, Any]:
        # The model names the tool: an unknown name must not become a new metric label.
        tool = block["name"] if block["name"] in TOOL_NAMES else "unknown"
        try:
            if block["name"] in BACKLOG_TOOL_NAMES and self.setup.toolset.backlog is not None:
                output = await asyncio.to_thread(
                    run_backlog_tool,
                    self.job.root,
                    block["name"],
                    block["input"],
                    writes=self.setup.toolset.backlog == "write",
                    limits=self.limits,
                )
            else:
                output = await asyncio.to_thread(
                    run_tool, self.job.root, block["name"], block["input"], self.limits
                )
            is_error = False
        except ToolError as exc:
            output, is_error = f"Error: {exc}", True
        except Exception:
            TOOL_CALLS.labels(tool, "crashed").inc()
            raise
        TOOL_CALLS.labels(tool, "error" if is_error else "ok").inc()
        return {
            "type": "tool_result",
            "tool_use_id": block["id"],
            "content": output,
            "is_error": is_error,
        }

    def take_progress(self) -> tuple[ReplyText, int] | None:
        if not self._dirty:
            return None
        self._dirty = False
        text = ReplyText(self.job.reply_id, self.reply.text, list(self.reply.tool_calls))
        return text, self.publisher.sent_seq

    def progress_not_saved(self) -> None:
        self._dirty = True
