"""Pick one recommended action per open deal, by ordered rules, and phrase it for Salesforce.

The rules in recommend_action run in order and the first that applies wins,
because a rep acts on one thing at a time. Earlier problems block later
ones, so a silent buyer must be reached before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from routiine_pipeline.scoring.factors import FactorResult
from routiine_pipeline.scoring.signals import DealSignals
from routiine_pipeline.scoring.weights import (
    MIN_STAKEHOLDERS,
    NEXT_BEST_ACTION_MAX_CHARS,
    PUSHES_FOR_REVIEW,
    REENGAGE_AFTER_DAYS,
)

ACTION_LABELS: dict[str, str] = {
    "re_engage": "Re-engage",
    "update_close_date": "Update the close date",
    "involve_stakeholders": "Involve more stakeholders",
    "schedule_meeting": "Schedule a meeting",
    "advance_stage": "Advance the stage",
    "keep_momentum": "Keep momentum",
}


@dataclass(frozen=True)
class Recommendation:
    """The chosen action code and the reason in plain words."""

    action: str
    reason: str

    @property
    def label(self) -> str:
        return ACTION_LABELS[self.action]


def recommend_action(
    deal: DealSignals, factors: dict[str, FactorResult], as_of: datetime
) -> Recommendation:
    """Apply the action rules in order and return the first that matches.

    Args:
        deal: The deal's signals.
        factors: The deal's factors by name.
        as_of: The scoring time, to tell whether the close date has passed.

    Returns:
        The recommended action with its reason.
    """
    days_quiet = int(factors["recency"].raw["days_since_last_event"])
    if days_quiet >= REENGAGE_AFTER_DAYS:
        return Recommendation("re_engage", f"no contact for {days_quiet} days")

    if deal.close_date is None:
        return Recommendation("update_close_date", "the close date is missing")
    if deal.close_date < as_of.date():
        return Recommendation(
            "update_close_date",
            f"the close date {deal.close_date.isoformat()} has passed",
        )
    if deal.close_date_pushes >= PUSHES_FOR_REVIEW:
        return Recommendation(
            "update_close_date",
            f"the close date was pushed {deal.close_date_pushes} times",
        )

    if deal.contacts_30d < MIN_STAKEHOLDERS:
        engaged = "no stakeholder" if deal.contacts_30d == 0 else "only 1 stakeholder"
        return Recommendation("involve_stakeholders", f"{engaged} engaged in 30 days")

    if deal.engaged_30d == 0 and deal.upcoming_meetings == 0:
        return Recommendation(
            "schedule_meeting", "no meeting or reply in 30 days and none booked"
        )

    age = factors["stage_age"]
    if age.normalised is not None and age.normalised < 0:
        return Recommendation(
            "advance_stage",
            f"{int(age.raw['days_in_stage'])} days in {deal.canonical_stage}, "
            f"longer than the {age.raw['won_median_days']:.0f}-day median of won deals",
        )
    return Recommendation("keep_momentum", "activity and stage progress are on track")


def format_next_best_action(
    recommendation: Recommendation, score: int | None, top_factors: list[str]
) -> str:
    """Build the Next_Best_Action__c text, at most 255 characters.

    The text names the action and a reason that stays the same while the
    deal's situation does. Day counts that grow every day are left out,
    because each change of this field is a write to Salesforce (and a new
    SystemModstamp on the Opportunity). The score has its own field, and the
    detailed factors stay in the `momentum_score` table.

    Args:
        recommendation: The chosen action.
        score: The deal's score (unused in the text, kept for callers that log it).
        top_factors: Plain-word factors (unused in the text, see above).

    Returns:
        For example "Re-engage: no contact for 14 days or more."
    """
    del score, top_factors
    reason = _STABLE_REASONS.get(recommendation.action, recommendation.reason)
    text = f"{recommendation.label}: {reason}."
    if len(text) > NEXT_BEST_ACTION_MAX_CHARS:
        return text[: NEXT_BEST_ACTION_MAX_CHARS - 3] + "..."
    return text


_STABLE_REASONS = {
    "re_engage": f"no contact for {REENGAGE_AFTER_DAYS} days or more",
    "advance_stage": "the deal has stayed in its stage longer than won deals usually do",
}
