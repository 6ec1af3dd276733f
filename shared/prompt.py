"""What Claude is told: the system prompt, and the stored history as real alternating messages.

The system prompt is built here and sent with each request; nothing is ever written into the
project directory (autocoder wrote its prompt into the project's CLAUDE.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.conversations import is_greeting
from shared.models import Message, MessageStatus, StopReason

README_CANDIDATES = (
    "README.md",
    "README.rst",
    "README.txt",
    "README",
    "prompts/app_spec.txt",
    "app_spec.txt",
    "SPEC.md",
    "spec.md",
)
README_EXCERPT_CHARS = 4000


def readme_excerpt(root: Path, limit: int = README_EXCERPT_CHARS) -> tuple[str, str] | None:
    """(relative path, first `limit` characters) of the project's README or spec, if any."""
    try:
        # Compare real paths with real paths: a root reached through a symlink is still the root.
        base = root.resolve(strict=True)
    except OSError:
        return None
    for rel in README_CANDIDATES:
        candidate = base / rel
        try:
            # Only a regular file, never a symlink: a README linked elsewhere, or to a secret
            # inside the project (.env), must not end up in the prompt.
            if candidate.is_symlink():
                continue
            real = candidate.resolve(strict=True)
            if not real.is_file() or not real.is_relative_to(base):
                continue
            with real.open("r", encoding="utf-8", errors="replace") as fh:
                return rel, fh.read(limit)
        except OSError:
            continue
    return None


CITATION_RULE = (
    "Ground every answer in the project's actual files: look things up with the tools rather "
    "than guessing, and cite the lines you rely on as `path:line` or `path:start-end` (like "
    "`src/app.py:12-30`), with paths relative to the project root; these references are "
    "checked against the project and shown as links. If something is not in the project, "
    "say so."
)
# Sent as the user's turn after a reply was cut off (max_tokens, or the context window), so
# the model continues it; the demo model recognises it as a continuation, not a question.
CONTINUE_PROMPT = (
    "Your previous reply was cut off before it was finished. Continue it exactly where it "
    "stopped, without repeating anything and without mentioning the interruption."
)


def system_prompt(
    project_name: str, root: Path, *, backlog: str | None = None, web: bool = False
) -> str:
    """The system prompt: identical for every request of a project with the same tools (no
    dates, ids or counts), so that it stays a cached prefix across rounds and turns.

    `backlog` is None (no backlog tools), "read" or "write"; `web` adds the web tools."""
    parts = [
        f'You are the project assistant for the software project "{project_name}".',
        "You help people understand this project: its code, structure, behaviour and "
        "documentation. You are strictly read-only: you can read files, list files and "
        "search file contents with your tools, and you never create, modify or delete "
        "anything; if asked to change code, explain what to change instead.",
        CITATION_RULE,
        "Be concise and use Markdown.",
    ]
    if backlog is not None:
        parts.append(_backlog_rule(project_name, backlog == "write"))
    if web:
        parts.append(
            "When the project's files cannot answer a question (a library's documentation, "
            "a recent release), you may search the web with web_search and read a page with "
            "web_fetch. Say which parts of an answer come from the web and give their URLs."
        )
    excerpt = readme_excerpt(root)
    if excerpt is not None:
        rel, text = excerpt
        parts.append(
            f"Here is the beginning of the project's {rel}, for orientation:\n"
            f"<{rel}>\n{text}\n</{rel}>"
        )
    return "\n\n".join(parts)


def _backlog_rule(project_name: str, writes: bool) -> str:
    rule = (
        "This project has an autocoder feature backlog (its features.db): features with a "
        "priority (lower is built first), a category, steps, and whether they pass. Answer "
        "questions about progress and what to build next from feature_get_stats, "
        "feature_get_next and feature_get_for_regression rather than from guesses."
    )
    if writes:
        return rule + (
            " When the user asks for it, and only then, you may add features with "
            "feature_create or feature_create_bulk (category, name, description, steps) and "
            "move a feature to the end of the queue with feature_skip; say what you changed."
        )
    return rule + (
        " You cannot change the backlog here: if asked to add or skip a feature, say politely "
        "that backlog changes are not enabled for this project (an administrator can allow "
        f"them with `assistant projects set {project_name} --backlog-writes on`), and "
        "describe the feature you would add."
    )


def history_messages(
    previous: Sequence[Message], current_user_text: str, budget_chars: int
) -> list[dict[str, Any]]:
    """Claude `messages` for a turn: stored history (newest kept within the budget) + the new one.

    The API needs user/assistant alternation starting with a user message, so the greeting and
    empty replies (cancelled before any text) are dropped and same-role neighbours are merged.
    """
    # Rendered exactly as it will be rendered from storage in later turns (stripped), so this
    # turn's request and the next ones share a byte-identical prefix for the prompt cache.
    current_user_text = current_user_text.strip() or current_user_text
    turns: list[dict[str, Any]] = []
    for msg in previous:
        text = msg.content.strip()
        if msg.role not in ("user", "assistant") or not text:
            continue
        if is_greeting(msg):
            continue
        if msg.role == "assistant" and msg.status == MessageStatus.cancelled:
            text += "\n\n[This reply was stopped by the user before it finished.]"
        elif msg.role == "assistant" and msg.stop_reason == StopReason.max_tokens:
            text += "\n\n[This reply was cut off at the length limit.]"
        if turns and turns[-1]["role"] == msg.role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": msg.role, "content": text})

    # Keep the most recent messages that fit, always ending the history with an assistant
    # message so the new user message alternates correctly.
    if turns and turns[-1]["role"] == "user":
        # A previous user message without a reply (failed turn): fold it into the new one.
        current_user_text = turns.pop()["content"] + "\n\n" + current_user_text
    start = _history_start(turns, budget_chars - len(current_user_text), budget_chars // 4)
    kept = turns[start:]
    kept.append({"role": "user", "content": current_user_text})
    return kept


def _history_start(turns: list[dict[str, Any]], budget: int, step: int) -> int:
    """Where the kept history starts: a user message, the oldest one whose suffix fits.

    Preferably one that opens a `step`-long stretch of the conversation (measured from its
    beginning, so independent of the current message): as a long conversation grows, the
    start then stays put for several turns and jumps by about a step, instead of sliding
    every turn, and the history stays the same prefix from turn to turn, which is what
    prompt caching reads back. It keeps at most a step less than a sliding window would;
    when no such message fits, the newest history that fits is kept."""
    sizes = [len(item["content"]) for item in turns]
    remaining = sum(sizes)
    step = max(1, step)
    newest_fit, last_bucket = len(turns), -1
    offset = 0
    for i, item in enumerate(turns):
        if item["role"] == "user" and remaining <= budget:
            if offset // step != last_bucket:
                return i
            newest_fit = min(newest_fit, i)
        if item["role"] == "user":
            last_bucket = offset // step
        offset += sizes[i]
        remaining -= sizes[i]
    return newest_fit
