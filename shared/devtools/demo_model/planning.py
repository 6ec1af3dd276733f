"""The pure half of the demo model: a Messages API request body -> a `ReplyPlan`.

Request validation, the directives (see the package docstring), the demo behaviour, and the
helpers that split text and tool input into stream deltas. No I/O, no web framework.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from shared.devtools.demo_model.backlog_demo import backlog_step, backlog_summary
from shared.devtools.demo_model.blocks import (
    Block,
    InvalidRequest,
    ReplyPlan,
    TextPart,
    ToolCall,
    blocks_of,
    text_of,
)
from shared.devtools.demo_model.scenarios import PAUSE_MARK, check_trailing_assistant, scenario_plan
from shared.prompt import CONTINUE_PROMPT
from shared.tools import GLOB, READ

DEMO_DELAY_S = 0.015
DEMO_HEAD = (
    "**Offline demo model**: no `ANTHROPIC_API_KEY` is set, so this answer comes from "
    "the built-in demo model, not from Claude.\n\n"
)
DEMO_HINT = "Mention a file such as `README.md` and I will read it for you."


@dataclass
class Directives:
    words: int | None = None
    slow_ms: float | None = None
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: tuple[int, int | None] | None = None
    error_midstream: bool = False
    stall_s: float = 0.0
    barrier: tuple[int, float] | None = None
    echo: bool = False
    context_chars: int | None = None  # refuse requests whose messages are longer (as JSON)
    stop: tuple[str, int | None] | None = None  # (stop reason, its argument)
    web: list[tuple[str, str]] = field(default_factory=list)  # (web_search|web_fetch, arg)
    say: list[str] = field(default_factory=list)  # text to include verbatim

    @property
    def has_content(self) -> bool:
        return bool(
            self.words is not None
            or self.tools
            or self.echo
            or self.barrier
            or self.stop
            or self.web
            or self.say
        )


_SIMPLE = re.compile(
    r"\[\[(text|slow|error|stall|barrier|context):([0-9.:]+)\]\]"
    r"|\[\[(echo|error-midstream)\]\]"
)
STOP_REASONS = ("max_tokens", "refusal", "pause_turn", "model_context_window_exceeded")
_STOP = re.compile(r"\[\[stop:([a-z_]+)(?::(\d+))?\]\]")
_SAY = re.compile(r"\[\[say:(.*?)\]\]", re.DOTALL)
# Base64 (standard or URL-safe alphabet) so any text, markup and "]]" included, survives.
_SAY64 = re.compile(r"\[\[say64:([A-Za-z0-9+/_=-]*)\]\]")
_WEB = re.compile(r"\[\[(web_search|web_fetch):([^\]]{1,500})\]\]")
_TOOL = re.compile(r"\[\[tool:([\w-]+)\s*")


def parse_directives(text: str) -> Directives:
    d = Directives()
    for m in _SIMPLE.finditer(text):
        if m.group(3):
            d.echo = d.echo or m.group(3) == "echo"
            d.error_midstream = d.error_midstream or m.group(3) == "error-midstream"
            continue
        name, args = m.group(1), m.group(2).split(":")
        try:
            if name == "text":
                d.words = int(args[0])
            elif name == "slow":
                d.slow_ms = float(args[0])
            elif name == "stall":
                d.stall_s = float(args[0])
            elif name == "context":
                d.context_chars = int(args[0])
            elif name == "error":
                d.error = (int(args[0]), int(args[1]) if len(args) > 1 else None)
            else:
                d.barrier = (int(args[0]), float(args[1]) if len(args) > 1 else 60.0)
        except (ValueError, IndexError) as exc:
            raise InvalidRequest(f"bad directive {m.group(0)!r}") from exc
    for m in _STOP.finditer(text):
        if m.group(1) not in STOP_REASONS:
            raise InvalidRequest(f"bad directive {m.group(0)!r}: one of {', '.join(STOP_REASONS)}")
        d.stop = (m.group(1), int(m.group(2)) if m.group(2) else None)
    d.web = [(m.group(1), m.group(2).strip()) for m in _WEB.finditer(text)]
    d.say = [m.group(1) for m in _SAY.finditer(text)]
    for m in _SAY64.finditer(text):
        try:
            raw = base64.b64decode(m.group(1).replace("-", "+").replace("_", "/"), validate=True)
            d.say.append(raw.decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"bad directive {m.group(0)[:40]!r}: not UTF-8 in base64") from exc
    for m in _TOOL.finditer(text):
        pos, tool_input = m.end(), cast(Any, {})
        if not text.startswith("]]", pos):
            try:
                tool_input, pos = json.JSONDecoder().raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"bad JSON in tool directive at {m.start()}: {exc}") from exc
        if not isinstance(tool_input, dict) or not text[pos:].lstrip().startswith("]]"):
            raise InvalidRequest(f"tool directive at {m.start()} needs a JSON object and ']]'")
        d.tools.append((m.group(1), tool_input))
    return d


def _is_user_text(msg: Mapping[str, Any]) -> bool:
    """A user's question: text without tool results, and not the worker's request to
    continue a cut-off reply (which continues the current turn)."""
    types = {b.get("type") for b in blocks_of(msg.get("content"))}
    return (
        msg.get("role") == "user"
        and "text" in types
        and "tool_result" not in types
        and text_of(msg.get("content")).strip() != CONTINUE_PROMPT
    )


def _system_text(system: Any) -> str:
    return system if isinstance(system, str) else text_of(system)


def validate_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: must be 'user' or 'assistant'")
        if not isinstance(msg.get("content"), str | list):
            raise InvalidRequest(f"messages.{i}.content: must be a string or a list of blocks")
    if not isinstance(body.get("system", ""), str | list):
        raise InvalidRequest("system: must be a string or a list of text blocks")
    if not isinstance(body.get("tools", []), list):
        raise InvalidRequest("tools: must be a list")


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:160]


def _target(tool_input: Mapping[str, Any]) -> str:
    for key in ("file_path", "pattern", "path"):
        if isinstance(tool_input.get(key), str):
            return str(tool_input[key])
    return json.dumps(tool_input, sort_keys=True)


_PATHLIKE = re.compile(r"[\w.\-/]*[A-Za-z][\w.\-/]*")


def find_path(text: str) -> str | None:
    """The first token that looks like a file path (README.md, src/app.py), if any."""
    for token in text.split():
        token = token.strip("`'\"()[]{}<>,;:!?").rstrip(".")
        if (
            _PATHLIKE.fullmatch(token)
            and token.lower() not in ("e.g", "i.e")
            and ("/" in token or re.search(r"\.[A-Za-z0-9]+$", token))
        ):
            return token
    return None


_NUMBERED = re.compile(r"\s*(\d+)\| ?(.*)")


def _numbered_lines(content: str, start_line: Any) -> list[tuple[int, str]]:
    """The file lines in a Read result: "12| text" lines if it has them, else all lines."""
    numbered = [(int(m[1]), m[2]) for ln in content.splitlines() if (m := _NUMBERED.fullmatch(ln))]
    first = start_line if isinstance(start_line, int) else 1
    return numbered or [(first + i, ln) for i, ln in enumerate(content.splitlines())]


def _demo_final(call: ToolCall, content: str, is_error: bool) -> str:
    head, target = DEMO_HEAD, _target(call.input)
    if call.name.startswith("feature_") and not is_error:
        return head + backlog_summary(call, content)
    if is_error:
        return (
            head + f"I tried `{call.name}` on `{target}`, but the tool reported an error: "
            f"*{_first_line(content) or 'no details'}*. Maybe check the name and try again?"
        )
    if call.name == READ:
        lines = _numbered_lines(content, call.input.get("offset"))[:3]
        if not lines:
            return head + f"I read `{target}`: the file is empty."
        cite = f"{target}:{lines[0][0]}-{lines[-1][0]}"
        body = "\n".join(text for _, text in lines).replace("```", "'''")
        return (
            head + f"I read `{target}`. Here are its first lines (`{cite}`):\n\n```\n{body}\n"
            "```\n\nSet `ANTHROPIC_API_KEY` to ask the real Claude about it."
        )
    entries = [ln.strip() for ln in content.splitlines() if ln.strip()[:1] not in ("", "[")]
    listing = "\n".join(f"- `{e}`" for e in entries[:10]) or "- *(nothing)*"
    return (
        head + f"I listed the project files (`{target}`): {len(entries)} entries, the first "
        f"{min(len(entries), 10)} are:\n\n{listing}\n\nAsk me about one of them!"
    )


def _tool_id(messages: Any, k: int) -> str:
    digest = hashlib.sha256(f"{json.dumps(messages, sort_keys=True)}|{k}".encode()).hexdigest()
    return f"toolu_demo{digest[:20]}"


@dataclass(frozen=True)
class Turn:
    """The current turn: the last user text and the tool rounds that followed it."""

    text: str
    rounds: int  # assistant messages with tool_use after the text
    results: list[tuple[ToolCall, str, bool]]  # (the call, the result's text, is_error)
    continuations: int = 0  # requests to continue a cut-off reply since the text
    pauses: int = 0  # paused responses (pause_turn) sent back since the text


def current_turn(messages: list[dict[str, Any]]) -> Turn:
    start = max((i for i, m in enumerate(messages) if _is_user_text(m)), default=-1)
    text = text_of(messages[start]["content"]) if start >= 0 else ""
    rounds, calls, results = 0, dict[str, ToolCall](), list[tuple[ToolCall, str, bool]]()
    continuations = pauses = 0
    for message in messages[start + 1 :]:
        blocks = blocks_of(message["content"])
        rounds += any(b.get("type") == "tool_use" for b in blocks)
        if message["role"] == "user":
            continuations += text_of(message["content"]).strip() == CONTINUE_PROMPT
        else:
            pauses += sum(str(b.get("text", "")).startswith(PAUSE_MARK) for b in blocks)
        for b in blocks:
            if b.get("type") == "tool_use":
                call_id, name = str(b.get("id")), str(b.get("name"))
                calls[call_id] = ToolCall(call_id, name, dict(b.get("input") or {}))
            elif b.get("type") == "tool_result":
                call = calls.get(str(b.get("tool_use_id")), ToolCall("?", "tool", {}))
                results.append((call, text_of(b.get("content")), bool(b.get("is_error"))))
    return Turn(text, rounds, results, continuations, pauses)


def _demo_plan(plan: ReplyPlan, turn: Turn, body: Mapping[str, Any]) -> ReplyPlan:
    names = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    path = find_path(turn.text)
    backlog = backlog_step(turn.text, names, _system_text(body.get("system", "")))
    if turn.rounds == 0 and backlog is not None:
        step, intro = backlog
        if isinstance(step, TextPart):
            return replace(plan, blocks=(TextPart(DEMO_HEAD + step.text),))
        assert isinstance(step, ToolCall)
        call = step
    elif turn.rounds == 0 and path and READ in names:
        call, intro = ToolCall("", READ, {"file_path": path}), f"Let me look at `{path}`."
    elif turn.rounds == 0 and GLOB in names:
        call, intro = ToolCall("", GLOB, {"pattern": "*"}), "Let me list the files."
    elif turn.results:
        return replace(plan, blocks=(TextPart(_demo_final(*turn.results[-1])),))
    else:
        return replace(plan, blocks=(TextPart(DEMO_HEAD + DEMO_HINT),))
    call = replace(call, id=_tool_id(body["messages"], turn.rounds))
    return replace(plan, stop_reason="tool_use", blocks=(TextPart(intro), call))


def _tools_refused(body: Mapping[str, Any]) -> bool:
    choice = body.get("tool_choice")
    return isinstance(choice, dict) and choice.get("type") == "none"


def _directive_plan(plan: ReplyPlan, d: Directives, turn: Turn, body: Any) -> ReplyPlan:
    if turn.rounds < len(d.tools) and not _tools_refused(body):
        name, tool_input = d.tools[turn.rounds]
        intro = TextPart(f"Calling `{name}` (step {turn.rounds + 1} of {len(d.tools)}).")
        call = ToolCall(_tool_id(body["messages"], turn.rounds), name, tool_input)
        return replace(plan, stop_reason="tool_use", blocks=(intro, call))
    parts: list[str] = []
    if d.echo:
        summary = {
            "messages": len(body["messages"]),
            "roles": [m["role"] for m in body["messages"]],
            "system": _system_text(body.get("system", ""))[:200],
            "tools": [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)],
        }
        parts.append("echo: " + json.dumps(summary, separators=(",", ":")))
    if d.tools:
        lines = [
            f'- {c.name} {_target(c.input)}{" failed" if err else ""}: "{_first_line(text)}"'
            for c, text, err in turn.results
        ]
        parts.append("Tool results:\n" + ("\n".join(lines) or "- (none received)"))
    parts += d.say
    if d.tools and turn.rounds < len(d.tools):
        parts.append(f"(No more tools: answering after {turn.rounds} of {len(d.tools)} calls.)")
    words = d.words if d.words is not None else (12 if d.stop and not parts else None)
    if words is not None:
        parts.append(" ".join(f"word{i}" for i in range(1, words + 1)))
    text = "\n\n".join(parts)
    if d.stop or d.web:
        return scenario_plan(plan, d, turn, body, text)
    return replace(plan, blocks=(TextPart(text),) if parts else ())


def plan_reply(body: Any, retry_count: int = 0) -> ReplyPlan:
    """What to answer to one Messages API request body: pure and deterministic.

    `retry_count` is the SDK's `x-stainless-retry-count` header (for `[[error:CODE:K]]`).
    Raises InvalidRequest for a body the real API would refuse.
    """
    validate_request(body)
    turn = current_turn(body["messages"])
    d = parse_directives(turn.text)
    check_trailing_assistant(body["messages"], d)
    default_delay = 0.0 if d.has_content else DEMO_DELAY_S
    plan = ReplyPlan(
        delay_s=default_delay if d.slow_ms is None else d.slow_ms / 1000,
        stall_s=d.stall_s,
        error_midstream=d.error_midstream,
        barrier=d.barrier[0] if d.barrier else None,
        barrier_timeout_s=d.barrier[1] if d.barrier else 60.0,
    )
    if d.error and (d.error[1] is None or retry_count < d.error[1]):
        return replace(plan, error_status=d.error[0])
    size = len(json.dumps(body["messages"]))
    if d.context_chars is not None and size > d.context_chars:
        raise InvalidRequest(
            f"prompt is too long: {size // 4} tokens > {d.context_chars // 4} maximum"
        )
    return _directive_plan(plan, d, turn, body) if d.has_content else _demo_plan(plan, turn, body)


def with_prefix_text(blocks: tuple[Block, ...], text: str) -> tuple[Block, ...]:
    if blocks and isinstance(blocks[0], TextPart):
        sep = "\n\n" if blocks[0].text else ""
        return (TextPart(text + sep + blocks[0].text), *blocks[1:])
    return (TextPart(text), *blocks)


def text_chunks(text: str) -> list[str]:
    """Split text into deltas of one or two words (alternating); they join back to `text`."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[len("".join(tokens)) :]
    chunks, i, size = [], 0, 1
    while i < len(tokens):
        chunks.append("".join(tokens[i : i + size]))
        i, size = i + size, 3 - size
    if tail:
        chunks.append(tail)
    return chunks or [""]


def json_chunks(value: dict[str, Any]) -> list[str]:
    """The tool input as JSON, split into several `partial_json` fragments."""
    raw = json.dumps(value)
    size = max(1, -(-len(raw) // 4))
    return [raw[i : i + size] for i in range(0, len(raw), size)]
