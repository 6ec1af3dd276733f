"""What Claude is told: the system prompt, and the stored history as real alternating messages.

The system prompt is built here and sent with each request; nothing is ever written into the
project directory (autocoder wrote its prompt into the project's CLAUDE.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.models import Message, MessageStatus
from shared.protocol import GREETING

README_CANDIDATES = (
    "README.md", "README.rst", "README.txt", "README",
    "prompts/app_spec.txt", "app_spec.txt", "SPEC.md", "spec.md",
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


def system_prompt(project_name: str, root: Path) -> str:
    parts = [
        f'You are the project assistant for the software project "{project_name}".',
        "You help people understand this project: its code, structure, behaviour and "
        "documentation. You are strictly read-only: you can read files, list files and "
        "search file contents with your tools, and you never create, modify or delete "
        "anything; if asked to change code, explain what to change instead.",
        "Ground every answer in the project's actual files: look things up with the tools "
        "rather than guessing, and cite file paths and line numbers (like `src/app.py:12-30`) "
        "for the facts you state. Paths are relative to the project root. If something is "
        "not in the project, say so.",
        "Be concise and use Markdown.",
    ]
    excerpt = readme_excerpt(root)
    if excerpt is not None:
        rel, text = excerpt
        parts.append(
            f"Here is the beginning of the project's {rel}, for orientation:\n"
            f"<{rel}>\n{text}\n</{rel}>"
        )
    return "\n\n".join(parts)


def history_messages(
    previous: Sequence[Message], current_user_text: str, budget_chars: int
) -> list[dict[str, Any]]:
    """Claude `messages` for a turn: stored history (newest kept within the budget) + the new one.

    The API needs user/assistant alternation starting with a user message, so the greeting and
    empty replies (cancelled before any text) are dropped and same-role neighbours are merged.
    """
    turns: list[dict[str, Any]] = []
    for msg in previous:
        text = msg.content.strip()
        if msg.role not in ("user", "assistant") or not text:
            continue
        if msg.role == "assistant" and text == GREETING:
            continue
        if msg.role == "assistant" and msg.status == MessageStatus.cancelled:
            text += "\n\n[This reply was stopped by the user before it finished.]"
        if turns and turns[-1]["role"] == msg.role:
            turns[-1]["content"] += "\n\n" + text
        else:
            turns.append({"role": msg.role, "content": text})

    # Keep the most recent messages that fit, always ending the history with an assistant
    # message so the new user message alternates correctly.
    if turns and turns[-1]["role"] == "user":
        # A previous user message without a reply (failed turn): fold it into the new one.
        current_user_text = turns.pop()["content"] + "\n\n" + current_user_text
    budget = budget_chars - len(current_user_text)
    kept: list[dict[str, Any]] = []
    for item in reversed(turns):
        budget -= len(item["content"])
        if budget < 0:
            break
        kept.append(item)
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    kept.append({"role": "user", "content": current_user_text})
    return kept
