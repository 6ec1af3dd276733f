"""Tokens and what they cost: the price table, the monthly ledger, and the monthly budget.

A reply stores the tokens the model reported for it (summed over its tool-use rounds by the
worker, worker/usage.py) and their cost, computed here once from ASSISTANT_MODEL_PRICES when
the reply ends, so a later change of prices never rewrites what was spent. The same
transaction adds them to the user's row of the month in `usage_months` (a title's tokens are
added too): budgets and reports read that one row, never the messages, so deleting
conversations does not give tokens back. A month is a calendar month (UTC) of when the reply
ended.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from shared.config import ModelPrice, Settings
from shared.errors import AssistantError
from shared.models import Message, UsageMonth, User

log = logging.getLogger(__name__)

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_unpriced: set[str] = set()


class BudgetExhausted(AssistantError):
    """A user at or over their monthly token budget asked for another reply."""

    status_code = 429


@dataclass(frozen=True)
class Usage:
    """Tokens of one reply (or a sum of them) and their cost in US dollars."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        """What counts against a budget: every kind of token alike."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def as_dict(self) -> dict[str, Any]:
        """The `usage` object of the protocol and REST: the four counts and the cost."""
        return asdict(self)

    def priced(self, settings: Settings, model: str | None) -> Usage:
        """These tokens with their cost by `model`'s price (0 for a model not in the table)."""
        price = price_of(settings, model)
        if price is None:
            return Usage(*self.counts())
        cost = (
            self.input_tokens * price.input
            + self.output_tokens * price.output
            + self.cache_read_tokens * price.cache_read
            + self.cache_write_tokens * price.cache_write
        ) / 1_000_000
        return Usage(*self.counts(), cost_usd=round(cost, 8))

    def counts(self) -> tuple[int, int, int, int]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
        )


def usage_of(messages: Iterable[Message]) -> Usage:
    """These messages' usage summed (a conversation's: every branch, all of it was paid for)."""
    total = Usage()
    for m in messages:
        total = Usage(
            total.input_tokens + m.input_tokens,
            total.output_tokens + m.output_tokens,
            total.cache_read_tokens + m.cache_read_tokens,
            total.cache_write_tokens + m.cache_write_tokens,
            total.cost_usd + m.cost_usd,
        )
    return replace(total, cost_usd=round(total.cost_usd, 8))


def price_of(settings: Settings, model: str | None) -> ModelPrice | None:
    """`model`'s price: listed by its name, or by the longest listed name it begins with (the
    API answers with dated ids such as claude-sonnet-4-5-20250929)."""
    if not model:
        return None
    prices = settings.model_prices
    if model in prices:
        return prices[model]
    family = max((name for name in prices if model.startswith(name)), key=len, default=None)
    if family is not None:
        return prices[family]
    if model not in _unpriced:
        _unpriced.add(model)
        log.warning("model %s has no price in ASSISTANT_MODEL_PRICES: its cost counts as 0", model)
    return None


# ---- months -------------------------------------------------------------------------------


def month_of(when: datetime) -> str:
    return f"{when.year:04d}-{when.month:02d}"


def parse_month(text: str) -> str:
    """A month as YYYY-MM (InvalidMonth otherwise)."""
    if not MONTH.fullmatch(text):
        raise AssistantError(f"Invalid month '{text}': expected YYYY-MM")
    return text


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of `month` (UTC) and of the month after."""
    year, mon = int(month[:4]), int(month[5:7])
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def renews_on(month: str) -> date:
    return month_bounds(month)[1].date()


def current_month() -> str:
    return month_of(datetime.now(UTC))


def record_usage(session: Session, *, user_id: int, month: str, usage: Usage) -> None:
    """Add `usage` to the user's ledger row of `month` (created on first use), atomically:
    an upsert, so two endings at once both count."""
    if usage.tokens == 0 and usage.cost_usd == 0:
        return
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    added = {**usage.as_dict()}
    stmt = insert(UsageMonth).values(user_id=user_id, month=month, **added)
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id", "month"],
        set_={name: getattr(UsageMonth, name) + stmt.excluded[name] for name in added},
    )
    session.execute(stmt)


def _usage(row: UsageMonth) -> Usage:
    return Usage(
        row.input_tokens,
        row.output_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        row.cost_usd,
    )


def month_usage(session: Session, user_id: int, month: str) -> Usage:
    """What `user_id` spent in `month`."""
    row = session.get(UsageMonth, (user_id, month))
    return Usage() if row is None else _usage(row)


def all_month_usage(session: Session, month: str) -> dict[int, Usage]:
    """Every user's usage in `month` (users who used nothing are absent)."""
    rows = session.exec(select(UsageMonth).where(UsageMonth.month == month)).all()
    return {row.user_id: _usage(row) for row in rows}


# ---- budgets ------------------------------------------------------------------------------


def budget_of(settings: Settings, user: User) -> int | None:
    """Tokens `user` may spend a month: their own budget if an administrator set one, else
    ASSISTANT_USER_MONTHLY_TOKENS; None when unlimited (0 means unlimited in both)."""
    budget = (
        user.monthly_token_budget
        if user.monthly_token_budget is not None
        else settings.user_monthly_tokens
    )
    return budget if budget > 0 else None


@dataclass(frozen=True)
class MonthReport:
    """`GET /api/usage`: a user's month so far."""

    month: str
    tokens: int
    budget: int | None
    cost_usd: float
    renews_on: str


def month_report(session: Session, settings: Settings, user: User) -> MonthReport:
    assert user.id is not None
    month = current_month()
    used = month_usage(session, user.id, month)
    return MonthReport(
        month=month,
        tokens=used.tokens,
        budget=budget_of(settings, user),
        cost_usd=round(used.cost_usd, 8),
        renews_on=renews_on(month).isoformat(),
    )


def check_budget(session: Session, settings: Settings, user_id: int) -> None:
    """BudgetExhausted when the user has used their month's budget (one ledger row read; not
    even that when it is unlimited). Replies still running count once they end, so a user may
    overshoot by what their concurrent replies (ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER) use."""
    user = session.get(User, user_id)
    if user is None:
        return
    budget = budget_of(settings, user)
    if budget is None:
        return
    month = current_month()
    used = month_usage(session, user_id, month).tokens
    if used >= budget:
        raise BudgetExhausted(
            f"You have used your monthly token budget ({used} of {budget} tokens); "
            f"it renews on {renews_on(month).isoformat()}."
        )


def set_budget(session: Session, user: User, tokens: int | None) -> None:
    """An administrator's budget for `user` (None: back to ASSISTANT_USER_MONTHLY_TOKENS)."""
    if tokens is not None and tokens < 0:
        raise AssistantError("A budget is a number of tokens, 0 or more (0: unlimited)")
    user.monthly_token_budget = tokens
    session.add(user)
