"""The offline demo model's way with autocoder's backlog, when the request offers its tools:
"what should be built next?" calls `feature_get_next`; "add a feature for X" calls
`feature_create` where it is offered and otherwise says politely that backlog changes are not
enabled for the project. Then the tool result is summarised."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.devtools.demo_model.blocks import Block, TextPart, ToolCall

_ADD = re.compile(r"\badd\s+(?:a\s+|the\s+)?feature\s+(?:for\s+|called\s+|named\s+)?(.+)", re.I)
_NEXT = re.compile(r"\b(next|backlog|progress|build)\b", re.I)
_PROJECT = re.compile(r'software project "([^"]+)"')


def backlog_step(text: str, names: set[Any], system: str) -> tuple[Block, str] | None:
    """The first move on a backlog question: a tool call, or the polite refusal; None when the
    question is not about the backlog or the project has none."""
    if "feature_get_next" not in names:
        return None
    if (added := _ADD.search(text)) is not None:
        what = added.group(1).strip().rstrip(".!?")[:100] or "the requested feature"
        if "feature_create" not in names:
            m = _PROJECT.search(system)
            project = m.group(1) if m else "NAME"
            return TextPart(
                f"Backlog changes are not enabled for this project, so I cannot add *{what}*. "
                "An administrator can allow them with "
                f"`assistant projects set {project} --backlog-writes on`."
            ), ""
        feature = {
            "category": "Requested",
            "name": what[:1].upper() + what[1:],
            "description": f"{what[:1].upper() + what[1:]}, as asked in the project assistant.",
            "steps": [f"Implement {what}", f"Check that {what} works"],
        }
        return ToolCall("", "feature_create", feature), f"Let me add *{what}* to the backlog."
    if _NEXT.search(text):
        return ToolCall("", "feature_get_next", {}), "Let me check the backlog."
    return None


def backlog_summary(call: ToolCall, content: str) -> str:
    """The answer from a backlog tool's (successful) JSON result."""
    try:
        result = json.loads(content)
    except ValueError:
        return f"The backlog says: {content[:300]}"
    if call.name == "feature_create":
        return (
            f"I added **{result.get('name')}** to the backlog (id {result.get('id')}, "
            f"priority {result.get('priority')})."
        )
    if call.name == "feature_get_next" and "name" in result:
        steps = "\n".join(f"- {s}" for s in result.get("steps") or [])
        return (
            f"The next feature to build is **{result['name']}** (priority "
            f"{result.get('priority')}, {result.get('category')}): {result.get('description')}"
            + (f"\n\nSteps:\n{steps}" if steps else "")
        )
    return f"The backlog says: {result.get('message', content[:300])}"
