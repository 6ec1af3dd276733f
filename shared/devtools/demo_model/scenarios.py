"""The demo model's stop reasons and server tools: `[[stop:...]]`, `[[web_search:...]]`,
`[[web_fetch:...]]` (see the package docstring), applied to a turn's final text.

Each scenario is deterministic and stateless: how far a turn has got is read from the request
itself (how many continuation requests or paused responses follow the user's question), so
the worker's handling of each stop reason can be driven end to end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared.devtools.demo_model.blocks import (
    Block,
    InvalidRequest,
    ReplyPlan,
    ServerCall,
    ServerResult,
    TextPart,
    blocks_of,
)

if TYPE_CHECKING:
    from shared.devtools.demo_model.planning import Directives, Turn

PAUSE_MARK = "Working on it (pause "
PREFILL_REFUSED = (
    "This model does not support assistant message prefill. The conversation must end with a "
    "user message."
)
WEB_INTRO = "Let me look that up on the web."


def check_trailing_assistant(messages: list[dict[str, Any]], d: Directives) -> None:
    """Like the newest models, refuse a request ending with an assistant message (a prefill),
    except the documented continuation of a paused turn (pause_turn)."""
    last = messages[-1]
    if last.get("role") != "assistant":
        return
    pausing = d.stop is not None and d.stop[0] == "pause_turn"
    if pausing or any(b.get("type") == "server_tool_use" for b in blocks_of(last["content"])):
        return
    raise InvalidRequest(PREFILL_REFUSED)


def split_text(text: str, parts: int) -> list[str]:
    """`text` in `parts` consecutive pieces of whole words that join back to it exactly."""
    tokens = re.findall(r"\s*\S+", text)
    tail = text[len("".join(tokens)) :]
    size = max(1, -(-len(tokens) // parts))
    pieces = ["".join(tokens[i * size : (i + 1) * size]) for i in range(parts)]
    pieces[-1] += tail
    return pieces


def _available(body: Mapping[str, Any], name: str) -> bool:
    return any(
        isinstance(t, dict) and t.get("name") == name and str(t.get("type", "")).startswith(name)
        for t in body.get("tools") or []
    )


def _server_id(body: Mapping[str, Any], k: int) -> str:
    raw = f"{json.dumps(body['messages'], sort_keys=True)}|server|{k}"
    return f"srvtoolu_demo{hashlib.sha256(raw.encode()).hexdigest()[:20]}"


def _result(kind: str, arg: str, call_id: str) -> tuple[ServerResult, str]:
    if kind == "web_search":
        slug = re.sub(r"[^a-z0-9]+", "-", arg.lower()).strip("-")[:40] or "q"
        results = [
            {
                "type": "web_search_result",
                "url": f"https://example.com/{slug}/{i}",
                "title": f"Result {i} for {arg}",
                "encrypted_content": "ZGVtbw==",
                "page_age": "April 1, 2025",
            }
            for i in (1, 2)
        ]
        block: dict[str, Any] = {
            "type": "web_search_tool_result",
            "tool_use_id": call_id,
            "content": results,
        }
        return ServerResult(block), f'Web search "{arg}": 2 results ({results[0]["url"]})'
    page: dict[str, Any] = {
        "type": "web_fetch_result",
        "url": arg,
        "retrieved_at": "2025-04-01T00:00:00Z",
        "content": {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": f"Demo page {arg}"},
            "title": f"Demo page {arg}",
        },
    }
    block = {"type": "web_fetch_tool_result", "tool_use_id": call_id, "content": page}
    return ServerResult(block), f'Fetched {arg}: "Demo page {arg}"'


def web_blocks(d: Directives, body: Mapping[str, Any]) -> tuple[tuple[Block, ...], list[str]]:
    """The server tool calls and results the web directives ask for (only tools the request
    offers), and a line for the final text about each."""
    blocks: list[Block] = []
    lines: list[str] = []
    for k, (kind, arg) in enumerate(d.web):
        if not _available(body, kind):
            lines.append(f"({kind} is not available here)")
            continue
        call_id = _server_id(body, k)
        key = "query" if kind == "web_search" else "url"
        result, line = _result(kind, arg, call_id)
        blocks += [ServerCall(call_id, kind, {key: arg}), result]
        lines.append(line)
    return tuple(blocks), lines


def scenario_plan(
    plan: ReplyPlan, d: Directives, turn: Turn, body: Mapping[str, Any], text: str
) -> ReplyPlan:
    """The final response of a turn with web and/or stop directives."""
    server, lines = web_blocks(d, body)
    final = "\n\n".join([*lines, text] if text else lines)
    first = (TextPart(WEB_INTRO), *server) if server else ()
    reason, arg = d.stop or ("end_turn", None)
    done = replace(plan, blocks=(*first, TextPart(final)))
    if reason == "pause_turn":
        k = arg or 1
        if turn.pauses < k:
            marker = TextPart(f"{PAUSE_MARK}{turn.pauses + 1} of {k}).")
            blocks = (marker, *server) if turn.pauses == 0 else (marker,)
            return replace(plan, blocks=blocks, stop_reason="pause_turn")
        return replace(plan, blocks=(TextPart(final),))
    n = turn.continuations
    lead = first if n == 0 else ()
    if reason == "max_tokens":
        k = arg or 1
        pieces = split_text(final, k + 1)
        if n < k:
            return replace(plan, blocks=(*lead, TextPart(pieces[n])), stop_reason="max_tokens")
        return replace(plan, blocks=(*lead, TextPart("".join(pieces[n:]))))
    if reason == "refusal":
        half = split_text(final, 2)[0]
        details = {"type": "refusal", "category": None, "explanation": None}
        return replace(
            plan,
            blocks=(*lead, TextPart(half)),
            stop_reason="refusal",
            stop_details=details,
        )
    if reason == "model_context_window_exceeded":
        pieces = split_text(final, 2)
        if len(json.dumps(body["messages"])) > (arg or 0):
            cut = (TextPart(pieces[n]),) if n < len(pieces) else ()
            return replace(plan, blocks=(*lead, *cut), stop_reason=reason)
        return replace(plan, blocks=(*lead, TextPart("".join(pieces[n:]))))
    return done
