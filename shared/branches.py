"""A conversation's message tree: the path shown, siblings, and where a new turn attaches.

Messages form a tree by `parent_id`: a question's parent is the reply (or greeting) it follows,
a reply's parent is its question. Editing a question adds a sibling question; regenerating a
reply adds a sibling reply. A conversation remembers one message, its active leaf; the path
shown is the leaf's ancestors (root first), continued from the leaf down by the newest child
(highest id) until a message has none. So a new reply, or a branch switched to at a question,
shows its newest continuation without the client naming its last message.

A conversation's messages are few (they were always loaded whole for the model's history), so
the tree is built in memory from one query; the queries that must scale (search) live in the
database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from shared.errors import InvalidInput, NotFound
from shared.models import Message, Turn, storable_id

MESSAGE_NOT_FOUND = "Message not found"
PARENT_NOT_A_REPLY = (
    "A question follows a reply: parent_id must be an assistant message of this conversation "
    "(or null for the start)"
)


@dataclass(frozen=True)
class Tree:
    """The messages of one conversation, indexed by id and by parent."""

    by_id: dict[int, Message]
    # Children of each message (None: the roots), oldest first.
    children: dict[int | None, list[Message]]

    @classmethod
    def of(cls, messages: Iterable[Message]) -> Tree:
        by_id: dict[int, Message] = {}
        children: dict[int | None, list[Message]] = {}
        for msg in sorted(messages, key=_id):
            by_id[_id(msg)] = msg
        for msg in by_id.values():
            # A parent outside the conversation cannot be shown: treat the message as a root.
            parent = msg.parent_id if msg.parent_id in by_id else None
            children.setdefault(parent, []).append(msg)
        return cls(by_id, children)

    def parent_of(self, msg: Message) -> int | None:
        return msg.parent_id if msg.parent_id in self.by_id else None

    def leaf(self, active_leaf_id: int | None) -> Message | None:
        """The active leaf, normalised: the stored one while it is a message of this
        conversation, else the newest message (what a straight line ends with)."""
        if active_leaf_id is not None and active_leaf_id in self.by_id:
            return self.by_id[active_leaf_id]
        return self.by_id[max(self.by_id)] if self.by_id else None

    def ancestors(self, msg: Message) -> list[Message]:
        """`msg` and everything above it, root first."""
        chain: list[Message] = []
        seen: set[int] = set()
        current: Message | None = msg
        while current is not None and _id(current) not in seen:  # a cycle cannot loop forever
            seen.add(_id(current))
            chain.append(current)
            parent = self.parent_of(current)
            current = self.by_id[parent] if parent is not None else None
        chain.reverse()
        return chain

    def path(self, active_leaf_id: int | None) -> list[Message]:
        """The path shown: the leaf's ancestors, then down by the newest child."""
        leaf = self.leaf(active_leaf_id)
        if leaf is None:
            return []
        chain = self.ancestors(leaf)
        seen = {_id(m) for m in chain}
        while kids := self.children.get(_id(chain[-1])):
            newest = kids[-1]
            if _id(newest) in seen:
                break
            seen.add(_id(newest))
            chain.append(newest)
        return chain

    def sibling_ids(self, msg: Message) -> list[int]:
        """Ids of `msg` and its siblings (the other children of its parent), ascending."""
        return [_id(m) for m in self.children.get(self.parent_of(msg), [])]


def _id(msg: Message) -> int:
    assert msg.id is not None
    return msg.id


def load_tree(session: Session, conversation_id: int) -> Tree:
    return Tree.of(
        session.exec(select(Message).where(col(Message.conversation_id) == conversation_id)).all()
    )


def cut_at_pending(path: list[Message], pending_question_id: int | None) -> list[Message]:
    """The path up to a question whose turn has not created its reply yet (queued): what
    follows it there is an older sibling of the reply about to be written, not part of it."""
    if pending_question_id is None:
        return path
    for i, msg in enumerate(path):
        if msg.id == pending_question_id:
            return path[: i + 1]
    return path


def shown_path(tree: Tree, active_leaf_id: int | None, active: Turn | None) -> list[Message]:
    """The path a client is shown: from the active leaf, cut at the question of a running
    turn `active` whose reply does not exist yet."""
    path = tree.path(active_leaf_id)
    if active is not None and not any(m.turn_id == active.id for m in tree.by_id.values()):
        path = cut_at_pending(path, active.user_message_id)
    return path


# ---- where a new turn attaches (validated: the client names these ids) -----------------------


def path_end(session: Session, conversation_id: int, active_leaf_id: int | None) -> int | None:
    """The id of the last message of the path shown (None: no messages), found by walking
    down from the leaf with indexed lookups instead of loading the conversation: a new
    question without parent_id goes there."""
    current = active_leaf_id
    if current is not None and own_message(session, conversation_id, current) is None:
        current = None
    if current is None:  # never set (or gone): the newest message, as Tree.leaf
        current = session.exec(
            select(func.max(col(Message.id))).where(col(Message.conversation_id) == conversation_id)
        ).one()
    seen: set[int] = set()
    while current is not None and current not in seen:
        seen.add(current)
        newest_child = session.exec(
            select(func.max(col(Message.id))).where(
                col(Message.parent_id) == current,
                col(Message.conversation_id) == conversation_id,
            )
        ).one()
        if newest_child is None:
            return current
        current = newest_child
    return current


def own_message(session: Session, conversation_id: int, message_id: int) -> Message | None:
    """Message `message_id` if it belongs to this conversation (the client names the id: one
    past the column's range is simply absent)."""
    if not storable_id(message_id):
        return None
    return session.exec(
        select(Message).where(
            col(Message.id) == message_id, col(Message.conversation_id) == conversation_id
        )
    ).first()


def question_parent(
    session: Session,
    conversation_id: int,
    requested: int | None,
    *,
    explicit: bool,
    active_leaf_id: int | None,
) -> int | None:
    """The parent of a new question. Not `explicit`: the end of the path shown; explicitly
    None: from the start (after the greeting, which stays every branch's root; a conversation
    created over REST has none); else `requested`, which must be a reply (or the greeting) of
    this conversation."""
    if not explicit:
        return path_end(session, conversation_id, active_leaf_id)
    if requested is None:
        return greeting_of(session, conversation_id)
    parent = own_message(session, conversation_id, requested)
    if parent is None:
        raise NotFound(MESSAGE_NOT_FOUND)
    if parent.role != "assistant":
        raise InvalidInput(PARENT_NOT_A_REPLY)
    return requested


def greeting_of(session: Session, conversation_id: int) -> int | None:
    """The conversation's greeting (the reply no turn wrote, at the root), if it has one."""
    return session.exec(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            col(Message.parent_id).is_(None),
            Message.role == "assistant",
            col(Message.turn_id).is_(None),
        )
        .order_by(col(Message.id))
    ).first()


def question_to_regenerate(session: Session, conversation_id: int, reply_id: int) -> Message:
    """The question reply `reply_id` answered, to be answered again: the reply must be an
    assistant message of this conversation written by a turn (not the greeting)."""
    reply = own_message(session, conversation_id, reply_id)
    if reply is None or reply.role != "assistant" or reply.turn_id is None:
        raise NotFound(MESSAGE_NOT_FOUND)
    turn = session.get(Turn, reply.turn_id)
    question = session.get(Message, turn.user_message_id) if turn is not None else None
    if question is None or question.conversation_id != conversation_id:
        raise NotFound(MESSAGE_NOT_FOUND)
    return question
