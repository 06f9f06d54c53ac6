"""The per-tenant sync schedule and the job it launches.

The schedule ticks every 15 minutes and requests one run per tenant that is
due: connected, and whose own interval (15, 30 or 60 minutes, chosen by the
API budget and stored in the control store) has passed since its last sync.
A tick reads only the control store and the Dagster instance, never
Salesforce: the interval is chosen from the usage readings that earlier runs
stored in the API-call ledger.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg

from routiine_pipeline import settings
from routiine_pipeline.budget import BudgetPolicy
from routiine_pipeline.budget_interval import PAUSED
from routiine_pipeline.budget_state import (
    BudgetSnapshot,
    apply_decisions,
    load_budget_overrides,
    load_budget_snapshot,
    override_policy,
)
from routiine_pipeline.control.store import (
    CONNECTED,
    NEEDS_REAUTHORIZATION,
    ControlStore,
    open_control_store,
)
from routiine_pipeline.defs.extract import PHASE_TAG, RAW_ASSET_KEYS, TENANT_TAG
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.resources import ApiBudget, ControlPlane
from routiine_pipeline.extract.windows import MonthWindow

# A tick that fires a few seconds early still counts a tenant as due.
DUE_TOLERANCE = timedelta(seconds=30)

sync_job = dg.define_asset_job(
    "tenant_sync_job",
    selection=dg.AssetSelection.assets(*RAW_ASSET_KEYS.values()),
    description="Extract what changed in one tenant's org for one month window.",
)


def due_tenants(
    now: datetime,
    known_partitions: set[str],
    budget: ApiBudget | None = None,
    *,
    mark_requested: bool = False,
) -> tuple[list[str], list[str]]:
    """Split the control store's tenants into those due now and reasons for the rest.

    For each connected tenant the API budget first chooses its interval from the
    latest usage reading in the ledger (control store only, no Salesforce call).
    With `mark_requested`, each due tenant's `last_requested_at` becomes `now`.
    The control store is read in a constant number of queries whatever the
    number of tenants. Only tenants whose budget mode changes cost a few
    statements each, to store the change and notify it.
    """
    budget = budget or ApiBudget(control=ControlPlane())
    store = open_control_store(settings.control_store_url())
    interval_policy = budget.interval_policy()
    tenants = store.list_tenants()
    connected = [
        tenant.tenant_id
        for tenant in tenants
        if tenant.tenant_id in known_partitions and tenant.status == CONNECTED
    ]
    decisions = {}
    if connected:
        snapshot = load_budget_snapshot(store, now=now)
        policies = _tenant_policies(budget, store, snapshot)
        decisions = {
            tenant_id: snapshot.decide(
                tenant_id,
                policy=policies(tenant_id),
                interval_policy=interval_policy,
            )
            for tenant_id in connected
        }
        apply_decisions(store, snapshot, decisions, at=now)

    due, skipped = [], []
    for tenant in tenants:
        if tenant.tenant_id not in known_partitions:
            skipped.append(
                f"{tenant.tenant_id}: no Dagster partition (add it with `routiine tenants add`)"
            )
            continue
        if tenant.status == NEEDS_REAUTHORIZATION:
            # The stored reason gives the cause and the reconnect command (see control.tokens.reauthorization_message).
            reason = tenant.status_reason or (
                f"Salesforce rejected the refresh token. Reconnect the org with "
                f"`routiine tenants connect {tenant.tenant_id}`"
            )
            skipped.append(f"{tenant.tenant_id}: needs re-authorization: {reason}")
            continue
        if tenant.status != CONNECTED:
            reason = tenant.status_reason or "no reason recorded"
            skipped.append(f"{tenant.tenant_id}: status {tenant.status} ({reason})")
            continue
        decision = decisions[tenant.tenant_id]
        interval = timedelta(minutes=decision.interval_minutes)
        last = tenant.last_requested_at
        next_at = last + interval if last else now
        if next_at > now + DUE_TOLERANCE:
            what = (
                "paused by the API budget, next usage check"
                if decision.mode == PAUSED
                else "not due until"
            )
            skipped.append(
                f"{tenant.tenant_id}: {what} {next_at:%Y-%m-%d %H:%M} UTC "
                f"(interval {decision.interval_minutes} min, {decision.mode}: {decision.reason})"
            )
            continue
        due.append(tenant.tenant_id)
    if mark_requested and due:
        store.mark_requested(due, now)
    return due, skipped


def _tenant_policies(
    budget: ApiBudget, store: ControlStore, snapshot: BudgetSnapshot
) -> Callable[[str], BudgetPolicy]:
    """Return a function that gives `budget.policy(tenant)` without a query per tenant.

    `ApiBudget.policy` applies the overrides of the budget's own control
    store. When that is not the schedule's store, its overrides are read once.
    """
    defaults = budget.default_policy()
    budget_store = budget.control.store()
    overrides = (
        snapshot.overrides
        if budget_store is store
        else load_budget_overrides(budget_store)
    )
    return lambda tenant_id: override_policy(defaults, overrides.get(tenant_id))


@dg.schedule(
    cron_schedule="*/15 * * * *",
    job=sync_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Every 15 minutes, one incremental run per connected tenant whose interval "
        "(15, 30 or 60 minutes, chosen by the API budget) has passed. Stopped until "
        "turned on in Automation, so a fresh instance calls no org by itself."
    ),
)
def tenant_sync_schedule(context: dg.ScheduleEvaluationContext, budget: ApiBudget):
    """Request one incremental run per due tenant for the current month partition."""
    now = context.scheduled_execution_time or datetime.now(UTC)
    now = now.astimezone(UTC)
    known = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    due, skipped = due_tenants(now, known, budget, mark_requested=True)
    # One line per tick at info level; at 1,000 tenants a line per skipped
    # tenant would flood the tick log, so those go to debug.
    context.log.info(
        "%d tenants due, %d skipped (the skip reasons are logged at debug level)",
        len(due),
        len(skipped),
    )
    for reason in skipped:
        context.log.debug("Skipping tenant %s", reason)
    if not due:
        return dg.SkipReason(
            "No tenant due: " + "; ".join(skipped)
            if skipped
            else "No tenants configured"
        )
    month = MonthWindow.containing(now).key
    return [
        dg.RunRequest(
            run_key=f"{tenant}-{now:%Y%m%dT%H%M}",
            partition_key=dg.MultiPartitionKey({"tenant": tenant, "month": month}),
            tags={TENANT_TAG: tenant, PHASE_TAG: "incremental"},
        )
        for tenant in due
    ]
