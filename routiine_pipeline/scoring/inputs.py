"""The model columns the momentum score reads, per factor and per output column.

The score is Python, so sqlglot cannot trace its lineage. This module is the
one declaration of what it reads. `routiine lineage` and the momentum_score
asset's `dagster/column_lineage` both use it, and a test parses the queries
in signals.py and fails when they read a column that is not declared here.
The declarations follow `score_open_deals`, which the asset runs.
`score_deals_as_of` also reads stage, amount and close date from
deal_change (see AS_OF_STATE_INPUTS).
"""

from __future__ import annotations

from routiine_pipeline.models.loader import ColumnSource


def _columns(table: str, *names: str) -> tuple[ColumnSource, ...]:
    return tuple(ColumnSource(table, name) for name in names)


# Deal columns that select the scored deals: open ones that existed at the scoring time.
SELECTION_INPUTS = _columns(
    "deal", "deal_id", "created_at", "stage_category", "is_closed"
)

# Event columns that select the counted events: linked to a deal, done, and not internal.
EVENT_FILTER_INPUTS = _columns("event", "deal_id", "is_open_task", "direction")

# Columns per factor, in addition to SELECTION_INPUTS.
FACTOR_INPUTS: dict[str, tuple[ColumnSource, ...]] = {
    "recency": (*EVENT_FILTER_INPUTS, *_columns("event", "occurred_at"))
    + _columns("deal", "created_at"),
    "activity_trend": (*EVENT_FILTER_INPUTS, *_columns("event", "occurred_at")),
    "two_way_engagement": (
        *EVENT_FILTER_INPUTS,
        *_columns("event", "occurred_at", "direction"),
    ),
    "contact_breadth": (
        *EVENT_FILTER_INPUTS,
        *_columns("event", "occurred_at", "contact_id"),
    ),
    "stage_velocity": _columns(
        "deal", "canonical_stage", "stage_category", "created_at"
    )
    + _columns(
        "deal_stage_history",
        "deal_id",
        "canonical_stage",
        "stage_category",
        "entered_at",
    ),
    "stage_age": _columns(
        "deal",
        "canonical_stage",
        "stage_category",
        "last_stage_change_at",
        "has_stage_history",
    )
    + _columns(
        "deal_stage_history",
        "deal_id",
        "canonical_stage",
        "stage_category",
        "entered_at",
        "left_at",
        "days_in_stage",
    ),
    "close_date_pushes": _columns("deal", "close_date")
    + _columns("deal_change", "deal_id", "changed_at", "is_close_date_push"),
    "amount_change": _columns("deal", "amount")
    + _columns("deal_change", "deal_id", "changed_at", "change_number", "amount"),
}

# Columns the action rules read beyond the factors: booked meetings and the close date.
ACTION_INPUTS = _columns("deal", "close_date") + _columns(
    "event", "kind", "occurred_at", "deal_id", "is_open_task", "direction"
)

# Factors whose values the action rules read: days without contact, replies,
# stakeholders, close date pushes and days in stage.
ACTION_FACTORS = (
    "recency",
    "two_way_engagement",
    "contact_breadth",
    "close_date_pushes",
    "stage_age",
)

# Read by signals.py for display and logs only; no output column depends on them.
UNSCORED_INPUTS = _columns("deal", "name", "account_name", "owner_name")

# Columns `score_deals_as_of` reads in place of the deal's current stage, amount and close date.
AS_OF_STATE_INPUTS = _columns(
    "deal_change",
    "deal_id",
    "changed_at",
    "change_number",
    "canonical_stage",
    "stage_category",
    "amount",
    "close_date",
) + _columns("deal_stage_history", "deal_id", "entered_at")

# momentum_score columns written back to Salesforce, to the Opportunity field.
WRITEBACK_COLUMNS: dict[str, str] = {
    "score": "Momentum_Score__c",
    "next_best_action": "Next_Best_Action__c",
}


def _union(*groups: tuple[ColumnSource, ...]) -> tuple[ColumnSource, ...]:
    merged = {source for group in groups for source in group}
    return tuple(sorted(merged, key=lambda s: (s.table, s.column)))


def score_column_inputs() -> dict[str, tuple[ColumnSource, ...]]:
    """Return the model columns each momentum_score column is computed from.

    Returns:
        Output column to its inputs, sorted by table and column. Columns set
        by the run itself (as_of, computed_at) have no inputs.
    """
    every_factor = _union(SELECTION_INPUTS, *FACTOR_INPUTS.values())
    action = _union(
        SELECTION_INPUTS,
        ACTION_INPUTS,
        *(FACTOR_INPUTS[name] for name in ACTION_FACTORS),
    )
    flags = _columns("deal", "amount", "close_date", "has_stage_history")
    return {
        "deal_id": _columns("deal", "deal_id"),
        "score": every_factor,
        "score_null_reason": every_factor,
        "factors": every_factor,
        "top_factors": every_factor,
        "recommended_action": action,
        "next_best_action": action,
        "flags": _union(SELECTION_INPUTS, flags),
        "as_of": (),
        "computed_at": (),
    }
