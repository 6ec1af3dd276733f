"""What the model stand-in received: the recorded requests of one project's conversations."""

from __future__ import annotations

from typing import Any

import httpx


def system_text(body: dict[str, Any]) -> str:
    system = body.get("system") or ""
    if isinstance(system, str):
        return system
    return "".join(b.get("text", "") for b in system if isinstance(b, dict))


def requests_for(model_url: str, project: str) -> list[dict[str, Any]]:
    """Recorded requests (body, headers, usage) whose system prompt names `project`, oldest
    first (project names are unique per test)."""
    recorded = httpx.get(f"{model_url}/_requests", timeout=10).json()
    return [r for r in recorded if f'"{project}"' in system_text(r["body"])]


def answered(model_url: str, project: str) -> list[dict[str, Any]]:
    """The requests that got an answer (not the ones refused with an error status)."""
    return [r for r in requests_for(model_url, project) if "usage" in r]


def texts(message: dict[str, Any]) -> list[str]:
    content = message["content"]
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content if b.get("type") == "text"]
