"""The caller's token usage this month, and their budget."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, ReadSessionDep, SettingsDep
from shared.usage import month_report

router = APIRouter(prefix="/api/usage", tags=["usage"])


class UsagePublic(BaseModel):
    month: str  # YYYY-MM (UTC)
    tokens: int  # input + output + cache reads + cache writes of this month's replies
    budget: int | None  # tokens allowed per month; null: unlimited
    cost_usd: float
    renews_on: str  # YYYY-MM-01: the first day of the next month


@router.get("", response_model=UsagePublic)
def get_usage(session: ReadSessionDep, settings: SettingsDep, user: CurrentUser) -> UsagePublic:
    """Your tokens and their cost this calendar month (UTC), and your monthly budget."""
    report = month_report(session, settings, user)
    return UsagePublic(
        month=report.month,
        tokens=report.tokens,
        budget=report.budget,
        cost_usd=report.cost_usd,
        renews_on=report.renews_on,
    )
