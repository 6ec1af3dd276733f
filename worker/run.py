"""One attempt's streaming work (`TurnRun`): the model rounds through the tool-use loop, the
chunks they publish, progress saves, and how the attempt ends (an `Ending`, or `HandBack` when
its worker shuts down). The tokens the model reports are summed over the rounds
(worker/usage.py) and handed to the ending, priced."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import replace
from typing import Any

import anthropic

from shared.backlog import BACKLOG_TOOL_NAMES, run_backlog_tool
from shared.models import StopReason
from shared.protocol import Chunk
from shared.references import check_references
from shared.tools import TOOL_SCHEMAS, ToolError, limits_from_settings, run_tool
from shared.turns import ending
from shared.turns.ending import Ending
from shared.turns.state import ReplyText, TurnSuperseded
from shared.turns.stream import TurnPublisher
from worker.coalesce import Coalescer
from worker.context import WorkerContext
from worker.errors import (
    CONTEXT_TOO_LONG,
    REFUSED,
    TOO_LONG,
    describe_error,
    prompt_too_long,
)
from worker.job import ProjectSetup, TurnJob
from worker.metrics import FIRST_CHUNK, MODEL_ERRORS, TOOL_CALLS
from worker.reply import Reply, Round, TextOut, fold
from worker.request import request_params, tool_definitions
from worker.rounds import CONTEXT_EXCEEDED, Dialogue
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


class HandBack:
    """How an attempt stops when its worker shuts down: not an ending; the turn is re-run."""

    name = "handed_back"


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
