"""What a claimed attempt of a turn works with: the job loaded with the claim (its branch of
the conversation, the project) and the project's setup (tools and system prompt, cached)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from shared.backlog import has_backlog
from shared.branches import load_tree
from shared.config import Settings
from shared.errors import AssistantError
from shared.models import Conversation, Message, Turn
from shared.projects import get_project, project_root
from shared.prompt import history_messages, system_prompt
from shared.tools import ToolLimits, limits_from_settings
from shared.turns import state
from worker.request import Toolset


class CannotStart(Exception):
    """The turn cannot run (its project is gone): it ends with this message."""


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
