"""Usage, cost, budgets and model titles on both databases (shared/usage.py, shared/titles.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from shared.config import ModelPrice, Settings
from shared.conversations import delete_conversation
from shared.models import Conversation, Message, TitleSource, TurnStatus, User
from shared.titles import clean_title, store_title, title_job
from shared.turns import state
from shared.turns.state import ReplyText
from shared.usage import (
    BudgetExhausted,
    Usage,
    all_month_usage,
    check_budget,
    current_month,
    month_bounds,
    month_usage,
    price_of,
    record_usage,
    renews_on,
    set_budget,
)
from tests.support.db import Ids, claim_with_reply, conv_of, message_row, new_user, start

SONNET = Settings().model_prices["claude-sonnet-4-5"]


def settings(**kw: object) -> Settings:
    return Settings(**kw)  # type: ignore[arg-type]


def answered(engine: Engine, ids: Ids, usage: Usage, *, question: str = "hello") -> int:
    """A turn that ran and completed with `usage`; the reply's id."""
    turn_id = start(engine, ids, question)
    reply_id = claim_with_reply(engine, turn_id)
    with Session(engine) as s:
        reply = ReplyText(reply_id, "answer", [], usage=usage, model="claude-sonnet-4-5")
        seq = state.finish_running(
            s, turn_id=turn_id, attempt=1, after_seq=0, status=TurnStatus.complete, reply=reply
        )
        assert seq is not None
        s.commit()
    return reply_id


def user_of(engine: Engine, user_id: int) -> User:
    with Session(engine) as s:
        user = s.get(User, user_id)
        assert user is not None
        return user


# ---- prices ---------------------------------------------------------------------------------


class TestPrices:
    def test_a_model_is_priced_by_its_name_or_its_family(self) -> None:
        s = settings()
        assert price_of(s, "claude-sonnet-4-5") == SONNET
        # The API answers with dated ids: the longest listed name they begin with.
        assert price_of(s, "claude-sonnet-4-5-20250929") == SONNET
        assert price_of(s, "claude-sonnet-4-20250514") == s.model_prices["claude-sonnet-4"]
        assert price_of(s, "gpt-9") is None
        assert price_of(s, None) is None

    def test_cost_is_tokens_times_the_price_per_million(self) -> None:
        table = {"m": ModelPrice(input=2, output=10, cache_read=0.5, cache_write=4)}
        s = settings(model_prices=table)
        priced = Usage(1000, 2000, 3000, 4000).priced(s, "m")
        assert priced == Usage(1000, 2000, 3000, 4000, cost_usd=0.0395)
        assert priced.tokens == 10_000
        # A model without a price costs nothing (and is logged), its tokens still count.
        assert Usage(1, 2, 3, 4).priced(s, "other") == Usage(1, 2, 3, 4, 0.0)

    def test_prices_come_from_the_environment_as_json(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(
            "ASSISTANT_MODEL_PRICES",
            '{"x": {"input": 1, "output": 2, "cache_read": 0.1, "cache_write": 1.25}}',
        )
        assert Settings().model_prices == {
            "x": ModelPrice(input=1, output=2, cache_read=0.1, cache_write=1.25)
        }

    def test_months_and_renewal(self) -> None:
        assert month_bounds("2026-12") == (
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        )
        assert renews_on("2026-11").isoformat() == "2026-12-01"


# ---- stored usage and a month's spending ---------------------------------------------------


def test_the_ending_stores_usage_model_and_cost(engine: Engine, conv_ids: Ids) -> None:
    usage = Usage(10, 20, 30, 40).priced(settings(), "claude-sonnet-4-5")
    reply = message_row(engine, answered(engine, conv_ids, usage))
    assert (reply.input_tokens, reply.output_tokens) == (10, 20)
    assert (reply.cache_read_tokens, reply.cache_write_tokens) == (30, 40)
    assert reply.model == "claude-sonnet-4-5"
    assert reply.cost_usd == pytest.approx(usage.cost_usd)
    assert usage.cost_usd == pytest.approx((10 * 3 + 20 * 15 + 30 * 0.3 + 40 * 3.75) / 1e6)


def test_a_month_is_the_users_own_ledger_of_ended_replies(engine: Engine, conv_ids: Ids) -> None:
    with Session(engine) as s:
        bob = new_user(s, "bob")
        conv = Conversation(project_name="demo", user_id=bob)
        s.add(conv)
        s.commit()
        assert conv.id is not None
        bob_ids = Ids(bob, conv.id)
    answered(engine, conv_ids, Usage(1, 2, 3, 4, 0.5))
    answered(engine, conv_ids, Usage(10, 20, 30, 40, 0.25))
    answered(engine, bob_ids, Usage(7, 0, 0, 0, 0.125))
    previous = (month_bounds(current_month())[0] - timedelta(days=1)).strftime("%Y-%m")
    with Session(engine) as s:
        record_usage(s, user_id=conv_ids.user_id, month=previous, usage=Usage(100, 100, 100, 100))
        s.commit()

    with Session(engine) as s:
        alice = month_usage(s, conv_ids.user_id, current_month())
        assert alice == Usage(11, 22, 33, 44, 0.75)
        assert alice.tokens == 110
        assert month_usage(s, conv_ids.user_id, previous).tokens == 400
        everyone = all_month_usage(s, current_month())
        assert everyone == {conv_ids.user_id: alice, bob: Usage(7, 0, 0, 0, 0.125)}
        assert month_usage(s, new_user(s, "carol"), current_month()) == Usage()


def test_deleting_conversations_gives_no_tokens_back(engine: Engine, conv_ids: Ids) -> None:
    """Spending is a ledger, not a sum over messages a user can delete (the budget's point)."""
    answered(engine, conv_ids, Usage(40, 60, 0, 0, 0.5))
    with Session(engine) as s:
        delete_conversation(s, conv_of(s, conv_ids))
        s.commit()
    with Session(engine) as s:
        assert s.get(Conversation, conv_ids.conversation_id) is None
        assert month_usage(s, conv_ids.user_id, current_month()) == Usage(40, 60, 0, 0, 0.5)
        with pytest.raises(BudgetExhausted):
            check_budget(s, settings(user_monthly_tokens=100), conv_ids.user_id)


# ---- budgets --------------------------------------------------------------------------------


class TestBudget:
    def test_refused_at_or_over_with_the_clear_message(self, engine: Engine, conv_ids: Ids) -> None:
        answered(engine, conv_ids, Usage(40, 60, 0, 0))  # 100 tokens this month
        month = current_month()
        with Session(engine) as s:
            check_budget(s, settings(user_monthly_tokens=101), conv_ids.user_id)
            with pytest.raises(BudgetExhausted) as refused:
                check_budget(s, settings(user_monthly_tokens=100), conv_ids.user_id)
        assert refused.value.message == (
            "You have used your monthly token budget (100 of 100 tokens); "
            f"it renews on {renews_on(month).isoformat()}."
        )

    def test_unlimited_by_default_and_with_zero(self, engine: Engine, conv_ids: Ids) -> None:
        answered(engine, conv_ids, Usage(400, 600, 0, 0))
        with Session(engine) as s:
            check_budget(s, settings(), conv_ids.user_id)
            check_budget(s, settings(user_monthly_tokens=0), conv_ids.user_id)

    def test_an_administrators_budget_overrides_the_setting(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        answered(engine, conv_ids, Usage(400, 600, 0, 0))  # 1000 tokens
        tight, loose = settings(user_monthly_tokens=500), settings(user_monthly_tokens=5000)
        with Session(engine) as s:
            set_budget(s, s.get(User, conv_ids.user_id), 2000)  # type: ignore[arg-type]
            s.commit()
            check_budget(s, tight, conv_ids.user_id)  # the user's own 2000 applies
            set_budget(s, s.get(User, conv_ids.user_id), 1000)  # type: ignore[arg-type]
            s.commit()
            with pytest.raises(BudgetExhausted, match=r"\(1000 of 1000 tokens\)"):
                check_budget(s, loose, conv_ids.user_id)
            set_budget(s, s.get(User, conv_ids.user_id), 0)  # type: ignore[arg-type]
            s.commit()
            check_budget(s, tight, conv_ids.user_id)  # 0: unlimited for this user
            set_budget(s, s.get(User, conv_ids.user_id), None)  # type: ignore[arg-type]
            s.commit()
            with pytest.raises(BudgetExhausted, match=r"\(1000 of 500 tokens\)"):
                check_budget(s, tight, conv_ids.user_id)  # back to the setting
        assert user_of(engine, conv_ids.user_id).monthly_token_budget is None


# ---- model titles ---------------------------------------------------------------------------


class TestTitles:
    def test_stored_only_while_the_title_is_automatic(self, engine: Engine, conv_ids: Ids) -> None:
        answered(engine, conv_ids, Usage(), question="first question")
        cid = conv_ids.conversation_id
        with Session(engine) as s:
            assert store_title(s, conversation_id=cid, title="Model title")
            s.commit()
            conv = conv_of(s, conv_ids)
            assert (conv.title, conv.title_source) == ("Model title", TitleSource.model)
            # A second writer never replaces the first title.
            assert not store_title(s, conversation_id=cid, title="Another")
            conv.title, conv.title_source = "Mine", TitleSource.user
            s.add(conv)
            s.commit()
            assert not store_title(s, conversation_id=cid, title="Model again")
            s.commit()
            s.expire_all()
            conv = conv_of(s, conv_ids)
            assert (conv.title, conv.title_source) == ("Mine", TitleSource.user)

    def test_asked_after_the_first_complete_reply_only(self, engine: Engine, conv_ids: Ids) -> None:
        first = answered(engine, conv_ids, Usage(), question="What is this?")
        cid = conv_ids.conversation_id
        with Session(engine) as s:
            turn_id = s.get(Message, first).turn_id  # type: ignore[union-attr]
            assert turn_id is not None
            job = title_job(s, conversation_id=cid, turn_id=turn_id)
            assert job.question == "What is this?"
        second = answered(engine, conv_ids, Usage(), question="And then?")
        with Session(engine) as s:
            turn_id = s.get(Message, second).turn_id  # type: ignore[union-attr]
            assert turn_id is not None
            assert title_job(s, conversation_id=cid, turn_id=turn_id).question is None

    def test_not_asked_when_the_user_named_the_conversation(
        self, engine: Engine, conv_ids: Ids
    ) -> None:
        reply = answered(engine, conv_ids, Usage(), question="What is this?")
        with Session(engine) as s:
            conv = conv_of(s, conv_ids)
            conv.title_source = TitleSource.user
            s.add(conv)
            s.commit()
            turn_id = s.get(Message, reply).turn_id  # type: ignore[union-attr]
            assert turn_id is not None
            job = title_job(s, conversation_id=conv_ids.conversation_id, turn_id=turn_id)
            assert job.question is None and "user" in job.reason


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Entry point of the app", "Entry point of the app"),
        ('"Where main() lives."\n', "Where main() lives"),
        ("Title: **Build setup**", "Build setup"),
        ("\n\n  Tests  \nmore", "Tests"),
        ("x" * 300, "x" * 100),
        ("", ""),
    ],
)
def test_the_models_answer_is_cleaned_into_a_title(answer: str, title: str) -> None:
    assert clean_title(answer) == title
