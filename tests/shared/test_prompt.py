"""What Claude is sent: the system prompt and the stored history as alternating messages."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.models import Message, MessageStatus
from shared.prompt import README_EXCERPT_CHARS, history_messages, readme_excerpt, system_prompt
from shared.protocol import greeting

BIG = 1_000_000
_turn_ids = itertools.count(1)


def user(text: str) -> Message:
    return Message(conversation_id=1, role="user", content=text)


def bot(text: str, status: MessageStatus = MessageStatus.complete) -> Message:
    """A reply: it belongs to a turn."""
    return Message(
        conversation_id=1, role="assistant", content=text, status=status, turn_id=next(_turn_ids)
    )


def greeted(text: str) -> Message:
    """A stored greeting: an assistant message without a turn."""
    return Message(conversation_id=1, role="assistant", content=text)


GREETING = greeted(greeting("demo"))
OLD_GREETING = greeted(
    "Hello! I'm your project assistant. I can read, list and search this project's files "
    "(never change them) and answer questions about it, citing paths and lines. "
    "What would you like to know?"
)


def roles(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in msgs]


def assert_well_formed(msgs: list[dict[str, Any]], current: str) -> None:
    """What the Messages API demands: user first, strict alternation, no empty content."""
    assert msgs, "at least the current message"
    assert msgs[0]["role"] == "user"
    for a, b in itertools.pairwise(msgs):
        assert a["role"] != b["role"], msgs
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in msgs)
    assert msgs[-1]["role"] == "user"
    assert msgs[-1]["content"].endswith(current)


# ---- history_messages -----------------------------------------------------------------------


def test_alternating_history_is_kept_in_order_with_the_current_message_last() -> None:
    previous = [GREETING, user("q1"), bot("a1"), user("q2"), bot("a2")]
    assert history_messages(previous, "q3", BIG) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
    ]


def test_greeting_is_dropped() -> None:
    for stored in (GREETING, OLD_GREETING, greeted(greeting("another-project"))):
        assert history_messages([stored], "hi", BIG) == [{"role": "user", "content": "hi"}]
        # Wherever it is: a greeting is never history, and leaves no gap in the alternation.
        out = history_messages([user("q"), bot("a"), stored, user("q2")], "hi", BIG)
        assert out == [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "q2\n\nhi"},
        ]
    assert history_messages([], "hi", BIG) == [{"role": "user", "content": "hi"}]
    # A reply worded like the greeting is a real reply.
    out = history_messages([user("q"), bot(GREETING.content)], "next", BIG)
    assert roles(out) == ["user", "assistant", "user"]


def test_same_role_neighbours_are_merged() -> None:
    # q1's turn failed before any text (empty reply dropped): q1 and q2 become one user message.
    previous = [
        user("q1"),
        bot("", MessageStatus.failed),
        user("q2"),
        bot("a2"),
        bot("a2-more"),
        user("q3"),
        bot("a3"),
    ]
    out = history_messages(previous, "q4", BIG)
    assert out == [
        {"role": "user", "content": "q1\n\nq2"},
        {"role": "assistant", "content": "a2\n\na2-more"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
        {"role": "user", "content": "q4"},
    ]


def test_an_unanswered_last_user_message_is_folded_into_the_current_one() -> None:
    out = history_messages([user("q1"), bot("a1"), user("lost question")], "q3", BIG)
    assert out == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "lost question\n\nq3"},
    ]


def test_a_cancelled_reply_is_marked_as_stopped() -> None:
    out = history_messages([user("q1"), bot("partial", MessageStatus.cancelled)], "q2", BIG)
    assert out[1]["role"] == "assistant"
    assert out[1]["content"].startswith("partial")
    assert "stopped" in out[1]["content"]


def test_budget_keeps_the_newest_messages_and_starts_with_a_user_message() -> None:
    previous: list[Message] = []
    for i in range(10):
        previous += [user(f"q{i}".ljust(100, ".")), bot(f"a{i}".ljust(100, "."))]
    current = "now".ljust(100, "!")

    out = history_messages(previous, current, 550)  # room for the current one + 4 of 20
    assert_well_formed(out, current)
    assert [m["content"][:2] for m in out] == ["q8", "a8", "q9", "a9", "no"]
    assert sum(len(m["content"]) for m in out) <= 550

    # A cut that would start on a reply drops that reply instead.
    out = history_messages(previous, current, 650)  # fits a7 too, but not q7
    assert [m["content"][:2] for m in out] == ["q8", "a8", "q9", "a9", "no"]

    # No room at all: the current message alone, never an empty list.
    assert history_messages(previous, current, 10) == [{"role": "user", "content": current}]


def test_any_stored_history_gives_a_well_formed_request() -> None:
    kinds: dict[str, Callable[[int], Message]] = {
        "u": lambda i: user(f"u{i}"),
        "a": lambda i: bot(f"a{i}"),
        "g": lambda _i: GREETING,
        "e": lambda _i: bot("  ", MessageStatus.cancelled),
        "c": lambda i: bot(f"c{i}", MessageStatus.cancelled),
        "f": lambda i: bot(f"f{i}", MessageStatus.failed),
    }
    for n in range(5):
        for combo in itertools.product(kinds, repeat=n):
            previous = [kinds[k](i) for i, k in enumerate(combo)]
            for budget in (BIG, 12, 0):
                out = history_messages(previous, "now", budget)
                assert_well_formed(out, "now")
                if budget == BIG and "u" in combo:
                    # When everything fits, nothing with text from the first question on is lost
                    # (replies before any question cannot lead a request and are dropped).
                    text = "\n".join(m["content"] for m in out)
                    first_q = combo.index("u")
                    for k, m in list(zip(combo, previous, strict=True))[first_q:]:
                        if k in "uacf":
                            assert m.content in text


# ---- system prompt --------------------------------------------------------------------------


@pytest.fixture
def snapshot() -> Any:
    def take(root: Path) -> dict[str, tuple[int, int, bytes]]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
                out[str(p.relative_to(root))] = (st.st_mode, st.st_mtime_ns, data)
        return out

    return take


def test_system_prompt_names_the_project_and_the_rules(project_dir: Path) -> None:
    prompt = system_prompt("demo-proj", project_dir)
    assert '"demo-proj"' in prompt
    assert "read-only" in prompt
    assert "cite" in prompt
    assert "README.md" in prompt
    assert "A tiny project used by the tests." in prompt


def test_system_prompt_is_never_written_into_the_project(project_dir: Path, snapshot: Any) -> None:
    before = snapshot(project_dir)
    dir_mtime = project_dir.stat().st_mtime_ns
    prompt = system_prompt("demo", project_dir)
    assert prompt
    assert snapshot(project_dir) == before
    assert project_dir.stat().st_mtime_ns == dir_mtime
    assert not (project_dir / "CLAUDE.md").exists()


def test_readme_excerpt_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("x" * (README_EXCERPT_CHARS * 3))
    found = readme_excerpt(tmp_path)
    assert found is not None
    assert found[0] == "README.md"
    assert len(found[1]) == README_EXCERPT_CHARS
    assert readme_excerpt(tmp_path, limit=10) == ("README.md", "x" * 10)


def test_no_readme_no_excerpt(tmp_path: Path) -> None:
    assert readme_excerpt(tmp_path) is None
    prompt = system_prompt("demo", tmp_path)
    assert "read-only" in prompt
    assert "for orientation" not in prompt


def test_readme_symlinked_outside_the_project_is_ignored(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("S3CRET-README-LINK")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "README.md").symlink_to(secret)
    assert readme_excerpt(root) is None
    assert "S3CRET-README-LINK" not in system_prompt("demo", root)

    # The next candidate that is a real file inside the project is used instead.
    (root / "README.txt").write_text("the real readme")
    assert readme_excerpt(root) == ("README.txt", "the real readme")
    # A directory link out of the project is refused the same way.
    (tmp_path / "outside" / "app_spec.txt").write_text("S3CRET-SPEC")
    (root / "prompts").symlink_to(tmp_path / "outside")
    (root / "README.txt").unlink()
    assert readme_excerpt(root) is None


def test_readme_symlink_is_never_followed_even_inside_the_project(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("API_KEY=secret")
    (tmp_path / "README.md").symlink_to(tmp_path / ".env")
    (tmp_path / "SPEC.md").write_text("spec")
    # A link could point at a secret the tools would refuse: only regular files are used.
    assert readme_excerpt(tmp_path) == ("SPEC.md", "spec")


def test_readme_that_is_not_a_regular_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "README.md").mkdir()
    os.mkfifo(tmp_path / "README.rst")  # reading a FIFO would block the worker
    (tmp_path / "README").symlink_to(tmp_path / "missing")
    (tmp_path / "SPEC.md").write_text("spec")
    assert readme_excerpt(tmp_path) == ("SPEC.md", "spec")


def test_readme_found_when_the_root_is_reached_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "README.md").write_text("hello")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert readme_excerpt(link) == ("README.md", "hello")
    assert "hello" in system_prompt("demo", link)


# ---- what keeps the prompt cacheable ----------------------------------------------------------


def test_the_question_renders_the_same_now_and_in_later_turns() -> None:
    asked = "  What does it do?\n"
    now = history_messages([], asked, BIG)
    later = history_messages([user(asked), bot("It answers.")], "next", BIG)
    assert now[0] == later[0] == {"role": "user", "content": "What does it do?"}


def test_a_long_conversation_keeps_its_history_start_for_several_turns() -> None:
    """The kept history starts at the same message from turn to turn (a cached prefix), and
    moves on only now and then, by about a quarter of the budget."""
    budget = 4000
    stored: list[Message] = []
    starts = []
    for i in range(60):
        out = history_messages(stored, f"question {i}".ljust(150, "."), budget)
        assert_well_formed(out, f"question {i}".ljust(150, "."))
        assert sum(len(m["content"]) for m in out) <= budget
        starts.append(out[0]["content"][:12])
        stored += [user(f"question {i}".ljust(150, ".")), bot(f"answer {i}".ljust(150, "."))]
    changes = sum(a != b for a, b in itertools.pairwise(starts))
    # A sliding window would move its start on nearly every turn once the budget is full.
    assert 3 <= changes <= 60 // 3
    # And never keeps less than three quarters of the budget's worth once it is full.
    assert sum(len(m["content"]) for m in out) >= budget * 3 // 4 - 300


def test_a_cut_off_reply_is_marked_in_the_history() -> None:
    cut = bot("partial answer")
    cut.stop_reason = "max_tokens"
    out = history_messages([user("q1"), cut], "q2", BIG)
    assert out[1]["content"] == "partial answer\n\n[This reply was cut off at the length limit.]"


def test_system_prompt_mentions_backlog_and_web_only_when_there(project_dir: Path) -> None:
    plain = system_prompt("p", project_dir)
    assert "backlog" not in plain and "web_search" not in plain
    assert "`path:line` or `path:start-end`" in plain
    reading = system_prompt("p", project_dir, backlog="read")
    assert "feature_get_next" in reading and "cannot change the backlog" in reading
    assert "assistant projects set p --backlog-writes on" in reading
    writing = system_prompt("p", project_dir, backlog="write")
    assert "feature_create" in writing and "cannot change" not in writing
    assert "web_fetch" in system_prompt("p", project_dir, web=True)
    # No dates, ids or counts: the same project gets the same bytes every time.
    assert system_prompt("p", project_dir, backlog="write", web=True) == system_prompt(
        "p", project_dir, backlog="write", web=True
    )
