"""One Claude turn: stream the reply, run read-only tools in a loop, publish and persist.

The reply is saved while it streams (every `PERSIST_INTERVAL_S`), so a crash loses at most the
last instant of text. Stop is cooperative: the supervisor sets the turn's cancel event, and the
model stream is closed by cancelling the coroutine that reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anthropic
import httpx2

from shared import turn_state
from shared.channels import SeqConflict, TurnPublisher, last_logged_seq
from shared.config import Settings
from shared.conversations import messages_of
from shared.db import session_scope
from shared.errors import AssistantError
from shared.models import Conversation, Message, Turn, TurnStatus
from shared.projects import get_project, project_root
from shared.prompt import history_messages, system_prompt
from shared.protocol import Chunk, error_chunk
from shared.tools import TOOL_SCHEMAS, ToolError, ToolLimits, run_tool
from worker.coalesce import Coalescer

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)

PERSIST_INTERVAL_S = 0.5


class StaleTurn(Exception):
    """Another attempt owns this turn now (the watchdog moved it on): stop quietly."""


@dataclass
class TurnContext:
    turn_id: int
    attempt: int
    reply_id: int
    root: Path
    system: str
    messages: list[dict[str, Any]]
    last_seq: int


@dataclass
class ReplyState:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    dirty: bool = False


def load_turn(turn_id: int, attempt: int, worker: str, settings: Settings) -> TurnContext | str:
    """Claim the turn and load what Claude needs; a string is the reason to fail it instead."""
    with session_scope() as session:
        if not turn_state.claim(session, turn_id, attempt, worker):
            raise StaleTurn()
        turn = session.get(Turn, turn_id)
        assert turn is not None
        conv = session.get(Conversation, turn.conversation_id)
        user_msg = session.get(Message, turn.user_message_id)
        reply = turn_state.reset_reply(session, turn)
        assert conv is not None
        assert user_msg is not None
        assert reply.id is not None
        try:
            root = project_root(get_project(session, conv.project_name))
        except AssistantError as exc:
            return f"{exc.message}: the project '{conv.project_name}' is no longer available"
        cutoff = user_msg.id or 0
        previous = [m for m in messages_of(session, conv.id or 0) if (m.id or 0) < cutoff]
        return TurnContext(
            turn_id=turn_id,
            attempt=attempt,
            reply_id=reply.id,
            root=root,
            system=system_prompt(conv.project_name, root),
            messages=history_messages(previous, user_msg.content, settings.history_budget_chars),
            last_seq=turn.last_seq,
        )


async def run_turn(rt: Runtime, turn_id: int, attempt: int) -> str:
    s = rt.settings
    try:
        loaded = await asyncio.to_thread(load_turn, turn_id, attempt, rt.name, s)
    except StaleTurn:
        log.info("turn %s attempt %s: not ours (duplicate or stale delivery)", turn_id, attempt)
        return "stale"
    except Exception:
        # The claim rolled back with the failed transaction: fail the turn so nobody waits.
        log.exception("turn %s: could not load", turn_id)
        loaded = "The reply could not be started because of an internal error."
    start_seq = max(
        await last_logged_seq(rt.redis, turn_id),
        loaded.last_seq if isinstance(loaded, TurnContext) else 0,
    )
    publisher = TurnPublisher(rt.redis, s, turn_id, start_seq)
    if isinstance(loaded, str):
        if await asyncio.to_thread(
            turn_state.finish,
            turn_id,
            attempt,
            None,
            "",
            [],
            TurnStatus.failed,
            publisher.seq + 1,
            loaded,
            (TurnStatus.queued, TurnStatus.running),
        ):
            with contextlib.suppress(SeqConflict):
                await publisher.publish(error_chunk(loaded))
        return "failed"
    cancel = asyncio.Event()
    rt.active[turn_id] = cancel
    try:
        await rt.beat([turn_id])
        return await TurnRun(rt, loaded, publisher, cancel).run()
    finally:
        # Only our own entry: a later attempt of this turn may be running in this process.
        if rt.active.get(turn_id) is cancel:
            del rt.active[turn_id]


class TurnRun:
    def __init__(
        self, rt: Runtime, ctx: TurnContext, publisher: TurnPublisher, cancel: asyncio.Event
    ) -> None:
        self.rt = rt
        self.ctx = ctx
        self.pub = publisher
        self.cancel = cancel
        # Set when we learn another attempt owns the turn: stop without a word.
        self.stale = asyncio.Event()
        self.state = ReplyState()
        s = rt.settings
        self.coalescer = Coalescer(self._emit_text, s.coalesce_ms / 1000, s.coalesce_max_chars)
        self.limits = ToolLimits(
            max_file_bytes=s.tool_max_file_bytes,
            max_results=s.tool_max_results,
            max_output_chars=s.tool_max_output_chars,
            search_timeout_s=s.tool_search_timeout_s,
            deny_globs=tuple(s.tool_deny_globs),
        )

    async def run(self) -> str:
        converse = asyncio.create_task(self._converse())
        cancelled = asyncio.create_task(self.cancel.wait())
        stale = asyncio.create_task(self.stale.wait())
        persister = asyncio.create_task(self._persist_periodically())
        status, error = TurnStatus.complete, None
        try:
            done, _ = await asyncio.wait(
                {converse, cancelled, stale},
                timeout=self.rt.settings.turn_time_limit_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if converse not in done:
                converse.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await converse
                if cancelled in done:
                    status = TurnStatus.cancelled
                elif stale not in done:
                    status, error = TurnStatus.failed, "The reply took too long and was stopped."
            elif (exc := converse.exception()) is not None:
                if isinstance(exc, StaleTurn | SeqConflict):
                    self.stale.set()
                else:
                    status, error = TurnStatus.failed, describe_error(exc, self.ctx.turn_id)
        finally:
            for task in (cancelled, stale, persister):
                task.cancel()
            if not self.stale.is_set():
                await self.coalescer.flush()
            await self.coalescer.aclose()
        if self.stale.is_set():
            log.info("turn %s attempt %s: superseded, stopping", self.ctx.turn_id, self.ctx.attempt)
            return "stale"
        return await self._finish(status, error)

    async def _finish(self, status: TurnStatus, error: str | None) -> str:
        st = self.state
        owned = await asyncio.to_thread(
            turn_state.finish,
            self.ctx.turn_id,
            self.ctx.attempt,
            self.ctx.reply_id,
            st.text,
            st.tool_calls,
            status,
            self.pub.seq + 1,
            error,
        )
        if not owned:
            return "stale"
        chunk = (
            error_chunk(error or "The reply failed.")
            if status == TurnStatus.failed
            else Chunk(type="response_done", status=status.value)
        )
        try:
            await self.pub.publish(chunk)
        except SeqConflict:
            return "stale"
        return status.value

    async def _publish(self, chunk: Chunk) -> None:
        try:
            await self.pub.publish(chunk)
        except SeqConflict:
            self.stale.set()

    async def _converse(self) -> None:
        s = self.rt.settings
        messages = list(self.ctx.messages)
        for round_no in range(s.max_tool_rounds + 1):
            last_round = round_no == s.max_tool_rounds
            extra: dict[str, Any] = {"tool_choice": {"type": "none"}} if last_round else {}
            async with self.rt.anthropic.messages.stream(
                model=s.model,
                max_tokens=s.max_tokens,
                system=self.ctx.system,
                messages=cast(Any, messages),
                tools=cast(Any, TOOL_SCHEMAS),
                **extra,
            ) as stream:
                async for event in stream:
                    await self._on_event(event)
                final = await stream.get_final_message()
            tool_uses = [b for b in final.content if b.type == "tool_use"]
            if final.stop_reason != "tool_use" or not tool_uses or last_round:
                return
            messages.append({"role": "assistant", "content": [_param(b) for b in final.content]})
            messages.append({"role": "user", "content": [await self._tool(b) for b in tool_uses]})

    async def _on_event(self, event: Any) -> None:
        if event.type == "content_block_start" and event.content_block.type == "text":
            if self.state.text and not self.state.text.endswith("\n"):
                await self._add_text("\n\n")
        elif event.type == "text":
            await self._add_text(event.text)
        elif event.type == "content_block_stop" and event.content_block.type == "tool_use":
            await self.coalescer.flush()
            block = event.content_block
            tool_input = block.input if isinstance(block.input, dict) else {}
            self.state.tool_calls.append({"tool": block.name, "input": tool_input})
            self.state.dirty = True
            await self._publish(Chunk(type="tool_call", tool=block.name, input=tool_input))

    async def _add_text(self, text: str) -> None:
        self.state.text += text
        self.state.dirty = True
        await self.coalescer.add(text)

    async def _emit_text(self, text: str) -> None:
        await self._publish(Chunk(type="text", content=text))

    async def _tool(self, block: Any) -> dict[str, Any]:
        try:
            output = await asyncio.to_thread(
                run_tool, self.ctx.root, block.name, block.input, self.limits
            )
            is_error = False
        except ToolError as exc:
            output, is_error = f"Error: {exc}", True
        return {
            "type": "tool_result",
            "tool_use_id": block.id,
            "content": output,
            "is_error": is_error,
        }

    async def _persist_periodically(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_INTERVAL_S)
            if not self.state.dirty:
                continue
            self.state.dirty = False
            st = self.state
            try:
                owned = await asyncio.to_thread(
                    turn_state.save_progress,
                    self.ctx.turn_id,
                    self.ctx.attempt,
                    self.ctx.reply_id,
                    st.text,
                    list(st.tool_calls),
                    self.pub.sent_seq,
                )
            except Exception:
                # A passing database hiccup must not end a healthy turn: try again next time.
                log.warning("turn %s: progress not saved", self.ctx.turn_id, exc_info=True)
                self.state.dirty = True
                continue
            if not owned:
                self.stale.set()
                return


def _param(block: Any) -> dict[str, Any]:
    """An assistant content block of a response, as a request parameter."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return dict(block.model_dump(exclude_none=True))


def describe_error(exc: BaseException, turn_id: int) -> str:
    """A clear, safe message for a failed turn (the details go to the log, not the client)."""
    if isinstance(exc, anthropic.RateLimitError):
        return "The model is rate-limited right now (429). Please try again in a moment."
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code == 529:
        return "The model is overloaded right now (529). Please try again in a moment."
    if isinstance(exc, anthropic.AuthenticationError):
        return "The model service rejected the API key (401). Check ANTHROPIC_API_KEY."
    if isinstance(exc, anthropic.BadRequestError):
        return f"The model service refused the request (400): {exc.message}"
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code >= 500:
            return f"The model service failed ({exc.status_code}). Please try again."
        return f"The model service returned an error ({exc.status_code})."
    if isinstance(exc, anthropic.APITimeoutError):
        return "The model did not respond in time. Please try again."
    if isinstance(exc, anthropic.APIConnectionError):
        return "Could not reach the model service. Please try again."
    # Errors while reading an open stream reach us as the HTTP client's own exceptions.
    if isinstance(exc, httpx2.TimeoutException):
        return "The model did not respond in time. Please try again."
    if isinstance(exc, httpx2.TransportError):
        return "The connection to the model service was lost. Please try again."
    if isinstance(exc, anthropic.APIError):
        # e.g. an error event in the middle of the stream (overloaded mid-reply).
        return f"The model stream failed: {exc.message}"
    log.error("turn %s failed", turn_id, exc_info=exc)
    return "The reply failed because of an internal error."
