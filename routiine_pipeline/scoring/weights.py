"""Factor weights and thresholds of the momentum score.

docs/momentum.md gives the reasoning behind each default. Weights are
relative: the score divides by the sum of all weights (a factor that could
not be computed counts as neutral), so they need not add up to 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class MomentumWeights:
    """Relative weight of each factor in the momentum score."""

    recency: float = 0.25
    activity_trend: float = 0.10
    two_way_engagement: float = 0.15
    contact_breadth: float = 0.10
    stage_velocity: float = 0.10
    stage_age: float = 0.15
    close_date_pushes: float = 0.10
    amount_change: float = 0.05

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not value >= 0 or value == float("inf"):
                raise ValueError(
                    f"momentum weight {item.name}={value!r} is invalid; "
                    "use a finite number >= 0"
                )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# Half-life, in days, of the recency factor: the factor is 0 after this many
# days without contact, +1 right after a contact and tends to -1 after that.
RECENCY_HALF_LIFE_DAYS = 14.0
# Days without contact from which the recommended action is to re-engage.
REENGAGE_AFTER_DAYS = 14
# Won deals that must have passed through a stage before its median is used.
MIN_HISTORY_DEALS = 3
# Contacts engaged in 30 days below which more stakeholders are recommended.
MIN_STAKEHOLDERS = 2
# Days ahead in which a scheduled meeting counts as "already booked".
UPCOMING_MEETING_DAYS = 14
# Close date pushes at which the close date should be reviewed.
PUSHES_FOR_REVIEW = 2
# Maximum length of Opportunity.Next_Best_Action__c.
NEXT_BEST_ACTION_MAX_CHARS = 255
