"""The API budget's state in the control store: overrides, readings, interval decisions.

Everything here reads and writes the control store only, so a schedule tick
can call it without touching Salesforce.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from routiine_pipeline.budget_interval import (
    MODE_MINUTES,
    NORMAL,
    PAUSED,
    IntervalDecision,
    IntervalPolicy,
    choose_interval,
)
from routiine_pipeline.control import budget_tables, notify, tables
from routiine_pipeline.control.store import ControlStore, utcnow
from routiine_pipeline.salesforce.limits import ApiUsage

log = logging.getLogger(__name__)

# Phases whose calls are part of the regular cycle (a sync and the write-back it causes).
CYCLE_SYNC_PHASE = "incremental"
ONE_OFF_PHASES = ("backfill", "connect")


@dataclass(frozen=True)
class Reading:
    """One usage reading of the org and when it was taken."""

    usage: ApiUsage
    at: datetime


def set_budget_overrides(
    store: ControlStore,
    tenant: str,
    *,
    share: float | None = None,
    ceiling: float | None = None,
    run_cap: int | None = None,
) -> None:
    """Store a tenant's own share, ceiling or run cap; None keeps the ApiBudget default."""
    table = budget_tables.budget_settings
    values = {
        "share": share,
        "ceiling": ceiling,
        "run_cap": run_cap,
        "updated_at": utcnow(),
    }
    with store.engine.begin() as conn:
        conn.execute(table.delete().where(table.c.tenant_id == tenant))
        conn.execute(table.insert().values(tenant_id=tenant, **values))


def apply_overrides(store: ControlStore, tenant: str, policy):
    """Return `policy` (a BudgetPolicy) with the tenant's stored overrides applied."""
    table = budget_tables.budget_settings
    with store.engine.connect() as conn:
        row = (
            conn.execute(sa.select(table).where(table.c.tenant_id == tenant))
            .mappings()
            .first()
        )
    return override_policy(policy, row)


def override_policy(policy, row: Mapping[str, Any] | None):
    """Return `policy` with the non-NULL values of a `budget_settings` row applied."""
    if row is None:
        return policy
    changes = {
        name: row[name]
        for name in ("share", "ceiling", "run_cap")
        if row[name] is not None
    }
    return replace(policy, **changes)


def latest_reading(store: ControlStore, tenant: str) -> Reading | None:
    latest = store.latest_usage(tenant)
    if latest is None:
        return None
    used, maximum, at = latest
    return Reading(ApiUsage(used, maximum), _aware(at))


def calls_per_run(
    store: ControlStore, tenant: str, *, now: datetime, default: float
) -> float:
    """Average calls per sync cycle over the last 24 hours, write-back included.

    A cycle is one incremental sync; other regular calls (write-back) are
    spread over those syncs. Without a sync in the window, `default` is used.
    """
    column = tables.api_calls.c
    window = (column.tenant_id == tenant) & _ledger_window(now)
    with store.engine.connect() as conn:
        calls = conn.execute(
            sa.select(sa.func.count()).where(window, _cycle_call())
        ).scalar_one()
        syncs = conn.execute(
            sa.select(sa.func.count(sa.distinct(column.run_id))).where(
                window, column.phase == CYCLE_SYNC_PHASE
            )
        ).scalar_one()
    return calls / syncs if syncs else default


def _ledger_window(now: datetime):
    """Select the ledger rows of the 24 hours up to `now`."""
    column = tables.api_calls.c
    return (column.at >= now - timedelta(hours=24)) & (column.at <= now)


def _cycle_call():
    """Select the ledger rows of regular calls: every phase but the one-off ones."""
    column = tables.api_calls.c
    return column.phase.not_in(ONE_OFF_PHASES) | column.phase.is_(None)


def current_mode(store: ControlStore, tenant: str) -> str:
    table = budget_tables.budget_state
    with store.engine.connect() as conn:
        mode = conn.execute(
            sa.select(table.c.mode).where(table.c.tenant_id == tenant)
        ).scalar()
    return mode or NORMAL


def decide_interval(
    store: ControlStore,
    tenant: str,
    *,
    now: datetime,
    policy,
    interval_policy: IntervalPolicy,
) -> IntervalDecision:
    """Choose the tenant's next mode from its latest reading (control store only)."""
    effective = apply_overrides(store, tenant, policy)
    reading = latest_reading(store, tenant)
    per_run = calls_per_run(
        store, tenant, now=now, default=interval_policy.default_calls_per_run
    )
    return choose_interval(
        current_mode(store, tenant),
        reading.usage if reading else None,
        per_run,
        policy=interval_policy,
        ceiling=effective.ceiling,
        share=effective.share,
    )


def apply_decision(
    store: ControlStore, tenant: str, decision: IntervalDecision, *, at: datetime
) -> bool:
    """Store the decision; on a change of mode, add a history row and notify once.

    The state row is updated only where it still contains the old mode, so two
    ticks deciding the same change at once notify once.
    """
    state = budget_tables.budget_state
    with store.engine.begin() as conn:
        old = (
            conn.execute(sa.select(state).where(state.c.tenant_id == tenant))
            .mappings()
            .first()
        )
        old_mode = old["mode"] if old else NORMAL
        values = {**_state_values(decision), "changed_at": at}
        if old is None:
            conn.execute(state.insert().values(tenant_id=tenant, **values))
        elif old_mode == decision.mode:
            # Same mode: refresh the figures shown on the tenant's status, without history or notification.
            refreshed = {
                name: value for name, value in values.items() if name != "changed_at"
            }
            conn.execute(
                state.update().where(state.c.tenant_id == tenant).values(**refreshed)
            )
            return False
        else:
            updated = conn.execute(
                state.update()
                .where(state.c.tenant_id == tenant, state.c.mode == old_mode)
                .values(**values)
            ).rowcount
            if not updated:
                return False
        if old_mode == decision.mode:
            return False
        conn.execute(
            budget_tables.interval_history.insert().values(
                tenant_id=tenant,
                at=at,
                from_mode=old_mode,
                to_mode=decision.mode,
                from_minutes=MODE_MINUTES[old_mode],
                to_minutes=decision.interval_minutes,
                org_used=decision.used or None,
                org_max=decision.max or None,
                projected=decision.projected or None,
                reason=decision.reason,
            )
        )
        conn.execute(
            tables.tenants.update()
            .where(tables.tenants.c.tenant_id == tenant)
            .values(interval_minutes=decision.interval_minutes)
        )
        note = notify.notify(
            store,
            tenant,
            "sync_interval",
            interval_message(tenant, old_mode, decision),
            at=at,
            details=_figures(old_mode, decision),
            conn=conn,
        )
    notify.deliver(note)
    return True


@dataclass(frozen=True)
class BudgetSnapshot:
    """The budget rows of every tenant, read in a constant number of queries for one tick.

    `decide` returns what `decide_interval` returns for the same rows, and
    `apply_decisions` stores what `apply_decision` stores, so a schedule tick
    over many tenants costs a few statements instead of several per tenant.
    """

    overrides: Mapping[str, Mapping[str, Any]]
    """`budget_settings` rows by tenant."""
    states: Mapping[str, Mapping[str, Any]]
    """`budget_state` rows by tenant."""
    readings: Mapping[str, Reading]
    """Each tenant's latest usage reading in the ledger."""
    cycle_calls: Mapping[str, tuple[int, int]]
    """Regular calls and distinct sync runs per tenant in the 24 hours up to the snapshot's `now`."""

    def current_mode(self, tenant: str) -> str:
        state = self.states.get(tenant)
        return state["mode"] if state else NORMAL

    def calls_per_run(self, tenant: str, default: float) -> float:
        """Return what `calls_per_run` returns for the tenant at the snapshot's `now`."""
        calls, syncs = self.cycle_calls.get(tenant, (0, 0))
        return calls / syncs if syncs else default

    def decide(
        self, tenant: str, *, policy, interval_policy: IntervalPolicy
    ) -> IntervalDecision:
        """Choose the tenant's next mode, as `decide_interval` does, from the snapshot."""
        effective = override_policy(policy, self.overrides.get(tenant))
        reading = self.readings.get(tenant)
        return choose_interval(
            self.current_mode(tenant),
            reading.usage if reading else None,
            self.calls_per_run(tenant, interval_policy.default_calls_per_run),
            policy=interval_policy,
            ceiling=effective.ceiling,
            share=effective.share,
        )


def load_budget_snapshot(store: ControlStore, *, now: datetime) -> BudgetSnapshot:
    """Read the budget rows of all tenants in four queries.

    The ledger queries scan the `api_calls` rows of all tenants, as the
    per-tenant queries together did, because the table is indexed on tenant
    only.
    """
    state_table = budget_tables.budget_state
    column = tables.api_calls.c
    latest = (
        sa.select(sa.func.max(column.id).label("id"))
        .where(column.org_used.is_not(None))
        .group_by(column.tenant_id)
        .subquery()
    )
    regular_calls = sa.func.sum(sa.case((_cycle_call(), 1), else_=0))
    sync_runs = sa.func.count(
        sa.distinct(sa.case((column.phase == CYCLE_SYNC_PHASE, column.run_id)))
    )
    with store.engine.connect() as conn:
        overrides = _overrides(conn)
        states = {
            row["tenant_id"]: row
            for row in conn.execute(sa.select(state_table)).mappings()
        }
        readings = {
            tenant: Reading(ApiUsage(used, maximum), _aware(at))
            for tenant, used, maximum, at in conn.execute(
                sa.select(
                    column.tenant_id, column.org_used, column.org_max, column.at
                ).join_from(tables.api_calls, latest, column.id == latest.c.id)
            )
        }
        cycle_calls = {
            tenant: (int(calls), int(syncs))
            for tenant, calls, syncs in conn.execute(
                sa.select(column.tenant_id, regular_calls, sync_runs)
                .where(_ledger_window(now))
                .group_by(column.tenant_id)
            )
        }
    return BudgetSnapshot(overrides, states, readings, cycle_calls)


def load_budget_overrides(store: ControlStore) -> dict[str, Mapping[str, Any]]:
    """Return every tenant's `budget_settings` row, by tenant."""
    with store.engine.connect() as conn:
        return _overrides(conn)


def _overrides(conn: sa.Connection) -> dict[str, Mapping[str, Any]]:
    rows = conn.execute(sa.select(budget_tables.budget_settings)).mappings()
    return {row["tenant_id"]: row for row in rows}


def apply_decisions(
    store: ControlStore,
    snapshot: BudgetSnapshot,
    decisions: Mapping[str, IntervalDecision],
    *,
    at: datetime,
) -> list[str]:
    """Store many tenants' decisions as `apply_decision` would, and return the tenants whose mode changed.

    Figures of tenants that keep their mode are refreshed in one batched
    update, which skips rows whose figures did not change and rows whose mode
    a run changed since the snapshot. New tenants that stay normal get their
    state rows in one batched insert. Each change of mode goes through
    `apply_decision`, which adds the history row and notifies once.
    """
    state = budget_tables.budget_state
    inserts, refreshes, changes = [], [], []
    for tenant, decision in decisions.items():
        old = snapshot.states.get(tenant)
        values = _state_values(decision)
        if old is None and decision.mode == NORMAL:
            inserts.append({"tenant_id": tenant, **values, "changed_at": at})
        elif old is None or old["mode"] != decision.mode:
            changes.append(tenant)
        elif any(old[name] != value for name, value in values.items()):
            refreshes.append({"b_tenant": tenant, "b_mode": old["mode"], **values})
    if refreshes:
        with store.engine.begin() as conn:
            conn.execute(
                state.update().where(
                    state.c.tenant_id == sa.bindparam("b_tenant"),
                    state.c.mode == sa.bindparam("b_mode"),
                ),
                refreshes,
            )
    if inserts:
        try:
            with store.engine.begin() as conn:
                conn.execute(state.insert(), inserts)
        except sa.exc.IntegrityError:
            # A run stored a first decision for one of these tenants meanwhile.
            # The per-tenant path reads that row and stores what a single tick would.
            log.info(
                "Another process stored a budget state for one of %d new tenants during the tick; "
                "storing their decisions one by one",
                len(inserts),
            )
            changes.extend(row["tenant_id"] for row in inserts)
    return [
        tenant
        for tenant in changes
        if apply_decision(store, tenant, decisions[tenant], at=at)
    ]


def _state_values(decision: IntervalDecision) -> dict[str, Any]:
    """Return the `budget_state` columns a decision sets, except `changed_at`."""
    return {
        "mode": decision.mode,
        "interval_minutes": decision.interval_minutes,
        "reason": decision.reason,
        "org_used": decision.used or None,
        "org_max": decision.max or None,
        "projected": decision.projected or None,
    }


def pause_for_limit(
    store: ControlStore, tenant: str, *, at: datetime, usage: ApiUsage | None, kind: str
) -> bool:
    """Pause the tenant after Salesforce returned HTTP 403 (REQUEST_LIMIT_EXCEEDED)."""
    used, maximum = (usage.used, usage.max) if usage else (0, 0)
    figures = (
        f"org API usage {used:,}/{maximum:,}" if usage else "org API usage unknown"
    )
    decision = IntervalDecision(
        PAUSED,
        MODE_MINUTES[PAUSED],
        used,
        maximum,
        0.0,
        used,
        f"Salesforce returned HTTP 403 (REQUEST_LIMIT_EXCEEDED) on a {kind} call; {figures}",
    )
    return apply_decision(store, tenant, decision, at=at)


def interval_message(tenant: str, old_mode: str, decision: IntervalDecision) -> str:
    """Write the customer-facing text of an interval change: the figures and what to do."""
    old_minutes, new_minutes = MODE_MINUTES[old_mode], decision.interval_minutes
    if decision.mode == PAUSED:
        head = f"Salesforce sync for tenant {tenant} is paused (was every {old_minutes} minutes)"
        tail = "It checks usage once an hour and resumes when usage falls."
    elif decision.mode == NORMAL:
        return (
            f"Salesforce sync for tenant {tenant} is back to every {new_minutes} minutes "
            f"(was {'paused' if old_mode == PAUSED else f'every {old_minutes} minutes'}): {decision.reason}."
        )
    elif old_mode == PAUSED:
        head = (
            f"Salesforce sync for tenant {tenant} resumes, every {new_minutes} minutes"
        )
        tail = "It returns to every 15 minutes step by step as usage falls."
    elif new_minutes < old_minutes:
        head = f"Salesforce sync for tenant {tenant} speeds up from every {old_minutes} to every {new_minutes} minutes"
        tail = "It returns to every 15 minutes step by step as usage falls."
    else:
        head = f"Salesforce sync for tenant {tenant} slows down from every {old_minutes} to every {new_minutes} minutes"
        tail = "It returns to every 15 minutes step by step as usage falls."
    advice = (
        "To sync more often, ask Salesforce for a higher daily API request limit, or reduce the "
        "calls other integrations in this org make."
    )
    return f"{head}: {decision.reason}. {tail} {advice}"


def _figures(old_mode: str, decision: IntervalDecision) -> dict:
    return {
        "from_mode": old_mode,
        "to_mode": decision.mode,
        "from_minutes": MODE_MINUTES[old_mode],
        "to_minutes": decision.interval_minutes,
        "org_used": decision.used,
        "org_max": decision.max,
        "projected": decision.projected,
        "calls_per_run": round(decision.calls_per_run, 2),
    }


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
