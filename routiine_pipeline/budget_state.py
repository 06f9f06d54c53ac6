"""The API budget's state in the control store: overrides, readings, interval decisions.

Everything here reads and writes the control store only, so a schedule tick
can call it without touching Salesforce.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

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
    since = now - timedelta(hours=24)
    window = (column.tenant_id == tenant) & (column.at >= since) & (column.at <= now)
    with store.engine.connect() as conn:
        calls = conn.execute(
            sa.select(sa.func.count()).where(
                window, column.phase.not_in(ONE_OFF_PHASES) | column.phase.is_(None)
            )
        ).scalar_one()
        syncs = conn.execute(
            sa.select(sa.func.count(sa.distinct(column.run_id))).where(
                window, column.phase == CYCLE_SYNC_PHASE
            )
        ).scalar_one()
    return calls / syncs if syncs else default


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
        values = {
            "mode": decision.mode,
            "interval_minutes": decision.interval_minutes,
            "reason": decision.reason,
            "org_used": decision.used or None,
            "org_max": decision.max or None,
            "projected": decision.projected or None,
            "changed_at": at,
        }
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
