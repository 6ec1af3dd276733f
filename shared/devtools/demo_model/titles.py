"""The demo model as a title writer: requests for a conversation's title (shared/titles.py).

A title request is known by its system prompt (it begins with TITLE_MARK) and offers no tools.
The answer is deterministic: the first words of the question (between `<question>` tags),
without directives or trailing punctuation. ``[[title-error]]`` in the question makes every
title request for it fail with an overloaded error (HTTP 529), as an unavailable model would;
``[[title-stall:S]]`` answers it only after S seconds (a slow title model).
Directives of the question are not obeyed here: they are meant for the reply, not the title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.devtools.demo_model.blocks import ReplyPlan, TextPart, text_of
from shared.devtools.demo_model.planning import validate_request

TITLE_MARK = "You write the titles of conversations"
TITLE_ERROR = "[[title-error]]"
TITLE_WORDS = 6
_QUESTION = re.compile(r"<question>(.*?)</question>", re.DOTALL)
_DIRECTIVE = re.compile(r"\[\[.*?\]\]", re.DOTALL)
_STALL = re.compile(r"\[\[title-stall:(\d+(?:\.\d+)?)\]\]")


def _system(body: Mapping[str, Any]) -> str:
    system = body.get("system") or ""
    return system if isinstance(system, str) else text_of(system)


def is_title_request(body: Any) -> bool:
    return isinstance(body, dict) and not body.get("tools") and _system(body).startswith(TITLE_MARK)


def question_of(body: Mapping[str, Any]) -> str:
    messages = body.get("messages") or []
    text = text_of(messages[-1].get("content")) if messages else ""
    found = _QUESTION.search(text)
    return found.group(1) if found else text


def demo_title(question: str) -> str:
    """The first words of `question`, without directives: "Where is the entry point"."""
    words = _DIRECTIVE.sub(" ", question).split()[:TITLE_WORDS]
    title = " ".join(words).rstrip("?.!,:;")
    return title[:1].upper() + title[1:] if title else "A new conversation"


def title_plan(body: Mapping[str, Any]) -> ReplyPlan:
    validate_request(body)
    question = question_of(body)
    if TITLE_ERROR in question:
        return ReplyPlan(error_status=529)
    stall = _STALL.search(question)
    return ReplyPlan(
        blocks=(TextPart(demo_title(question)),), stall_s=float(stall.group(1)) if stall else 0.0
    )
