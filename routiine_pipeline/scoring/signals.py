"""Read the per-deal inputs of the momentum score from the model tables, as of a time.

Every query filters on `as_of`, so scoring a past time reads only the
communication, history and won deals that existed then. Backtests thus get
no later information, and the score is deterministic for given tables and
`as_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

# Deal state now, from the current Salesforce values in the deal table.
_CURRENT_STATE_SQL = """
select
    d.deal_id, d.name, d.account_name, d.owner_name, d.canonical_stage,
    d.stage_category, d.amount, d.close_date, d.created_at,
    d.last_stage_change_at as stage_entered_at, d.has_stage_history,
    d.stage_category = 'open' and not d.is_closed as is_open
from deal as d
where d.created_at <= $as_of
"""

# Deal state at a past time: the latest history row written by then, or the
# current values when the deal has no history row before `as_of`.
_HISTORICAL_STATE_SQL = """
with last_change as (
    select
        c.deal_id,
        arg_max(c.canonical_stage, c.change_number) as canonical_stage,
        arg_max(c.stage_category, c.change_number) as stage_category,
        arg_max(c.amount, c.change_number) as amount,
        arg_max(c.close_date, c.change_number) as close_date
    from deal_change as c
    where c.changed_at <= $as_of
    group by c.deal_id
),
stage_entry as (
    select h.deal_id, max(h.entered_at) as entered_at
    from deal_stage_history as h
    where h.entered_at <= $as_of
    group by h.deal_id
)
select
    d.deal_id, d.name, d.account_name, d.owner_name,
    coalesce(lc.canonical_stage, d.canonical_stage) as canonical_stage,
    coalesce(lc.stage_category, d.stage_category) as stage_category,
    case when lc.deal_id is null then d.amount else lc.amount end as amount,
    case when lc.deal_id is null then d.close_date else lc.close_date end as close_date,
    d.created_at,
    coalesce(se.entered_at, d.created_at) as stage_entered_at,
    lc.deal_id is not null as has_stage_history,
    coalesce(lc.stage_category, d.stage_category) = 'open' as is_open
from deal as d
left join last_change as lc on lc.deal_id = d.deal_id
left join stage_entry as se on se.deal_id = d.deal_id
where d.created_at <= $as_of
"""

# Communication counts per deal. Open (not yet done) tasks and internal calls
# are not contact with the buyer, so they are left out.
_ACTIVITY_SQL = """
select
    e.deal_id,
    max(e.occurred_at) filter (where e.occurred_at <= $as_of) as last_event_at,
    count(*) filter (where e.occurred_at <= $as_of
        and e.occurred_at > $as_of - interval 7 day) as events_7d,
    count(*) filter (where e.occurred_at <= $as_of
        and e.occurred_at > $as_of - interval 30 day) as events_30d,
    count(*) filter (where e.occurred_at <= $as_of
        and e.occurred_at > $as_of - interval 30 day
        and e.direction in ('inbound', 'two_way')) as engaged_30d,
    count(*) filter (where e.occurred_at <= $as_of
        and e.occurred_at > $as_of - interval 30 day
        and e.direction = 'outbound') as outbound_30d,
    count(distinct e.contact_id) filter (where e.occurred_at <= $as_of
        and e.occurred_at > $as_of - interval 30 day) as contacts_30d,
    count(*) filter (where e.kind = 'meeting' and e.occurred_at > $as_of
        and e.occurred_at <= $as_of + to_days($upcoming_days)) as upcoming_meetings
from event as e
where e.deal_id is not null
  and not e.is_open_task
  and e.direction <> 'internal'
group by e.deal_id
"""

_HISTORY_SQL = """
with changes as (
    select * from deal_change as c where c.changed_at <= $as_of
),
visits as (
    select * from deal_stage_history as h where h.entered_at <= $as_of
)
select
    c.deal_id,
    count(*) filter (where c.is_close_date_push) as close_date_pushes,
    arg_min(c.amount, c.change_number) filter (where c.amount is not null)
        as first_amount,
    (select count(*) from visits as v where v.deal_id = c.deal_id) as stage_visits
from changes as c
group by c.deal_id
"""

# First time each deal entered each stage, used for "days to reach the stage".
_FIRST_ENTRY_SQL = """
select h.deal_id, h.canonical_stage, min(h.entered_at) as first_entered_at
from deal_stage_history as h
where h.entered_at <= $as_of
group by h.deal_id, h.canonical_stage
"""

# Medians over deals won by `as_of`, per open stage: days spent in the stage
# and days from creation to first entering it.
_BENCHMARK_SQL = """
with won as (
    select h.deal_id
    from deal_stage_history as h
    where h.stage_category = 'won' and h.entered_at <= $as_of
    group by h.deal_id
),
stays as (
    select h.canonical_stage, h.deal_id, h.days_in_stage
    from deal_stage_history as h
    join won as w on w.deal_id = h.deal_id
    where h.stage_category = 'open' and h.left_at <= $as_of
),
reach as (
    select h.canonical_stage, h.deal_id,
        epoch(min(h.entered_at) - any_value(d.created_at)) / 86400.0 as days_to_reach
    from deal_stage_history as h
    join won as w on w.deal_id = h.deal_id
    join deal as d on d.deal_id = h.deal_id
    where h.stage_category = 'open'
    group by h.canonical_stage, h.deal_id
)
select
    s.canonical_stage,
    median(s.days_in_stage) as median_days_in_stage,
    count(distinct s.deal_id) as stay_deals,
    (select median(r.days_to_reach) from reach as r
        where r.canonical_stage = s.canonical_stage) as median_days_to_reach,
    (select count(*) from reach as r
        where r.canonical_stage = s.canonical_stage) as reach_deals
from stays as s
group by s.canonical_stage
"""


@dataclass(frozen=True)
class StageBenchmark:
    """Won-deal medians of one stage (days in it, days to reach it), as of the scoring time."""

    median_days_in_stage: float | None
    stay_deals: int
    median_days_to_reach: float | None
    reach_deals: int


@dataclass
class DealSignals:
    """Everything the factors of one deal are computed from."""

    deal_id: str
    name: str | None
    account_name: str | None
    owner_name: str | None
    canonical_stage: str
    stage_category: str
    is_open: bool
    amount: float | None
    close_date: date | None
    created_at: datetime
    stage_entered_at: datetime
    has_stage_history: bool
    last_event_at: datetime | None = None
    events_7d: int = 0
    events_30d: int = 0
    engaged_30d: int = 0
    outbound_30d: int = 0
    contacts_30d: int = 0
    upcoming_meetings: int = 0
    close_date_pushes: int = 0
    first_amount: float | None = None
    stage_visits: int = 0
    first_entered_current_stage: datetime | None = None


def _rows(
    conn: duckdb.DuckDBPyConnection, sql: str, params: dict
) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_deal_signals(
    conn: duckdb.DuckDBPyConnection,
    as_of: datetime,
    from_history: bool,
    upcoming_meeting_days: int,
) -> list[DealSignals]:
    """Read one DealSignals per deal created by `as_of`, ordered by deal_id.

    Args:
        conn: The tenant's DuckDB connection with the model tables built.
        as_of: The scoring time (timezone-aware).
        from_history: Rebuild stage, amount and close date from OpportunityHistory
            as of `as_of` instead of using the deal's current values.
        upcoming_meeting_days: Window after `as_of` in which meetings count as booked.

    Returns:
        The signals of every deal that existed at `as_of`, open or closed.
    """
    params = {"as_of": as_of}
    state_sql = _HISTORICAL_STATE_SQL if from_history else _CURRENT_STATE_SQL
    states = _rows(conn, state_sql, params)
    activity = {
        row.pop("deal_id"): row
        for row in _rows(
            conn, _ACTIVITY_SQL, {**params, "upcoming_days": upcoming_meeting_days}
        )
    }
    history = {row.pop("deal_id"): row for row in _rows(conn, _HISTORY_SQL, params)}
    first_entries = {
        (row["deal_id"], row["canonical_stage"]): row["first_entered_at"]
        for row in _rows(conn, _FIRST_ENTRY_SQL, params)
    }
    signals = []
    for state in sorted(states, key=lambda row: row["deal_id"]):
        deal = DealSignals(**state)
        for source in (activity.get(deal.deal_id), history.get(deal.deal_id)):
            for key, value in (source or {}).items():
                if value is not None:
                    setattr(deal, key, value)
        deal.first_entered_current_stage = first_entries.get(
            (deal.deal_id, deal.canonical_stage)
        )
        signals.append(deal)
    return signals


def read_stage_benchmarks(
    conn: duckdb.DuckDBPyConnection, as_of: datetime
) -> dict[str, StageBenchmark]:
    """Read the won-deal medians of each open stage, from deals won by `as_of`.

    Args:
        conn: The tenant's DuckDB connection with the model tables built.
        as_of: Only deals won at or before this time count.

    Returns:
        A StageBenchmark per canonical stage name.
    """
    return {
        row.pop("canonical_stage"): StageBenchmark(**row)
        for row in _rows(conn, _BENCHMARK_SQL, {"as_of": as_of})
    }
