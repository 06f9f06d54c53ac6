"""The eight momentum factors: raw value, normalised value in [-1, 1], and plain words.

Positive values mean the deal is moving, negative values that it stalls, 0
is neutral. A factor that cannot be computed (missing amount, no stage
history) returns `normalised=None` with the reason, and the score leaves it
out instead of guessing a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routiine_pipeline.scoring.signals import DealSignals, StageBenchmark
from routiine_pipeline.scoring.weights import MIN_HISTORY_DEALS, RECENCY_HALF_LIFE_DAYS


@dataclass
class FactorResult:
    """One factor of one deal, before weighting."""

    name: str
    raw: dict[str, Any]
    normalised: float | None
    text: str
    skipped_reason: str | None = None
    weight: float = 0.0
    contribution: float = 0.0
    flags: list[str] = field(default_factory=list)


def _clamp(value: float) -> float:
    return max(-1.0, min(1.0, value))


def _days_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 86400.0)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def recency(deal: DealSignals, as_of: datetime) -> FactorResult:
    """Score days since the last communication: +1 today, 0 at the half-life, toward -1.

    Without any communication the days count from the deal's creation, and
    the value is at most 0.
    """
    since = deal.last_event_at or deal.created_at
    days = _days_between(since, as_of)
    value = 2.0 * 0.5 ** (days / RECENCY_HALF_LIFE_DAYS) - 1.0
    if deal.last_event_at is None:
        # A deal without any logged contact gets no reward for being new.
        value = min(value, 0.0)
    whole_days = int(days)
    if deal.last_event_at is None:
        text = f"No contact logged since the deal was created {_plural(whole_days, 'day')} ago"
    elif whole_days == 0:
        text = "Last contact today"
    elif value >= 0:
        text = f"Last contact {_plural(whole_days, 'day')} ago"
    else:
        text = f"No contact for {_plural(whole_days, 'day')}"
    raw = {
        "days_since_last_event": round(days, 2),
        "has_events": deal.last_event_at is not None,
    }
    return FactorResult("recency", raw, value, text)


def activity_trend(deal: DealSignals) -> FactorResult:
    """Compare events of the last 7 days with the weekly rate of the last 30 days."""
    weekly_rate = deal.events_30d * 7.0 / 30.0
    total = deal.events_7d + weekly_rate
    value = 0.0 if total == 0 else (deal.events_7d - weekly_rate) / total
    raw = {"events_7d": deal.events_7d, "events_30d": deal.events_30d}
    if deal.events_30d == 0:
        text = "No activity in the last 30 days"
    elif value > 0.05:
        text = f"Activity rising: {_plural(deal.events_7d, 'touch', 'touches')} in the last 7 days"
    elif value < -0.05:
        text = f"Activity falling: {_plural(deal.events_7d, 'touch', 'touches')} in the last 7 days"
    else:
        text = f"Activity steady: {_plural(deal.events_7d, 'touch', 'touches')} in the last 7 days"
    return FactorResult("activity_trend", raw, _clamp(value), text)


def two_way_engagement(deal: DealSignals) -> FactorResult:
    """Reward replies and meetings (+1/3 each, up to +1); penalise one-way outreach (-1/4 each)."""
    raw = {"engaged_30d": deal.engaged_30d, "outbound_30d": deal.outbound_30d}
    if deal.engaged_30d > 0:
        value = min(deal.engaged_30d, 3) / 3.0
        text = (
            f"{_plural(deal.engaged_30d, 'inbound reply or meeting', 'inbound replies or meetings')}"
            " in the last 30 days"
        )
    elif deal.outbound_30d > 0:
        value = -min(deal.outbound_30d, 4) / 4.0
        text = f"{_plural(deal.outbound_30d, 'outbound touch', 'outbound touches')} with no reply in the last 30 days"
    else:
        value = 0.0
        text = "No two-way contact in the last 30 days"
    return FactorResult("two_way_engagement", raw, value, text)


def contact_breadth(deal: DealSignals) -> FactorResult:
    """Score distinct contacts in 30 days: 0 is -1, 1 is -1/3, 2 is +1/3, 3 or more +1."""
    count = deal.contacts_30d
    value = _clamp((count - 1.5) / 1.5)
    if count == 0:
        text = "No stakeholder engaged in the last 30 days"
    elif count == 1:
        text = "Only 1 stakeholder engaged in the last 30 days"
    else:
        text = f"{count} stakeholders engaged in the last 30 days"
    return FactorResult("contact_breadth", {"contacts_30d": count}, value, text)


def stage_velocity(deal: DealSignals, benchmark: StageBenchmark | None) -> FactorResult:
    """Compare days taken to reach the current stage with won deals: log2 of the speed ratio."""
    stage = deal.canonical_stage
    raw: dict[str, Any] = {"stage": stage}
    if deal.stage_category != "open":
        return _skipped("stage_velocity", raw, "deal is closed")
    if deal.first_entered_current_stage is None or deal.stage_visits <= 1:
        return _skipped("stage_velocity", raw, "no earlier stage in the history")
    if benchmark is None or benchmark.reach_deals < MIN_HISTORY_DEALS:
        return _skipped(
            "stage_velocity",
            raw,
            f"fewer than {MIN_HISTORY_DEALS} won deals reached {stage}",
        )
    days = _days_between(deal.created_at, deal.first_entered_current_stage)
    median = benchmark.median_days_to_reach or 0.0
    # Both sides are floored at one day so that same-day moves do not divide by zero.
    ratio = max(median, 1.0) / max(days, 1.0)
    value = _clamp(math.log2(ratio))
    raw.update(days_to_reach=round(days, 2), won_median_days=round(median, 2))
    if ratio >= 1:
        text = f"Reached {stage} {ratio:.1f}x faster than won deals"
    else:
        text = f"Reached {stage} {1 / ratio:.1f}x slower than won deals"
    return FactorResult("stage_velocity", raw, value, text)


def stage_age(
    deal: DealSignals, benchmark: StageBenchmark | None, as_of: datetime
) -> FactorResult:
    """Compare days in the current stage with the won-deal median: 1 - days / median."""
    stage = deal.canonical_stage
    days = _days_between(deal.stage_entered_at, as_of)
    raw: dict[str, Any] = {"stage": stage, "days_in_stage": round(days, 2)}
    if deal.stage_category != "open":
        return _skipped("stage_age", raw, "deal is closed")
    if benchmark is None or benchmark.stay_deals < MIN_HISTORY_DEALS:
        return _skipped(
            "stage_age",
            raw,
            f"fewer than {MIN_HISTORY_DEALS} won deals passed through {stage}",
        )
    median = max(benchmark.median_days_in_stage or 0.0, 1.0)
    value = _clamp(1.0 - days / median)
    raw["won_median_days"] = round(median, 2)
    flags = [] if deal.has_stage_history else ["stage_entry_unknown"]
    text = (
        f"In {stage} for {_plural(int(days), 'day')} (won deals: median {median:.0f})"
    )
    return FactorResult("stage_age", raw, value, text, flags=flags)


def close_date_pushes(deal: DealSignals) -> FactorResult:
    """Penalise each move of the close date to a later date: -1/3 each, down to -1."""
    raw: dict[str, Any] = {"pushes": deal.close_date_pushes}
    if deal.close_date is None:
        return _skipped(
            "close_date_pushes", raw, "close date is missing", "close_date_missing"
        )
    value = -min(deal.close_date_pushes, 3) / 3.0
    if deal.close_date_pushes == 0:
        text = "Close date never pushed"
    else:
        text = f"Close date pushed {_plural(deal.close_date_pushes, 'time')}"
    return FactorResult("close_date_pushes", raw, value, text)


def amount_change(deal: DealSignals) -> FactorResult:
    """Score the net change since the first recorded amount: +-50% maps to +-1."""
    raw: dict[str, Any] = {"amount": deal.amount, "first_amount": deal.first_amount}
    if deal.amount is None:
        return _skipped("amount_change", raw, "amount is missing", "amount_missing")
    if deal.first_amount is None or deal.first_amount <= 0:
        return FactorResult("amount_change", raw, 0.0, "No earlier amount to compare")
    change = (deal.amount - deal.first_amount) / deal.first_amount
    raw["relative_change"] = round(change, 4)
    if change > 0:
        text = f"Amount up {change:.0%} since first recorded"
    elif change < 0:
        text = f"Amount down {-change:.0%} since first recorded"
    else:
        text = "Amount unchanged"
    return FactorResult("amount_change", raw, _clamp(change / 0.5), text)


def _skipped(
    name: str, raw: dict[str, Any], reason: str, flag: str | None = None
) -> FactorResult:
    flags = [flag] if flag else []
    return FactorResult(name, raw, None, f"Not scored: {reason}", reason, flags=flags)


def compute_factors(
    deal: DealSignals, benchmarks: dict[str, StageBenchmark], as_of: datetime
) -> list[FactorResult]:
    """Compute every factor of one deal, unweighted, in a fixed order.

    Args:
        deal: The deal's signals as of `as_of`.
        benchmarks: Won-deal medians by canonical stage.
        as_of: The scoring time.

    Returns:
        One FactorResult per factor; skipped ones have `normalised=None`.
    """
    benchmark = benchmarks.get(deal.canonical_stage)
    return [
        recency(deal, as_of),
        activity_trend(deal),
        two_way_engagement(deal),
        contact_breadth(deal),
        stage_velocity(deal, benchmark),
        stage_age(deal, benchmark, as_of),
        close_date_pushes(deal),
        amount_change(deal),
    ]
