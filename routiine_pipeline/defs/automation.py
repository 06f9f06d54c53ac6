"""The per-tenant sync schedule and the job it launches.

The schedule ticks every 15 minutes and requests one run per tenant that is
due: connected, and whose own interval (15, 30 or 60 minutes, chosen by the
API budget and stored in the control store) has passed since its last sync.
A tick reads only the control store and the Dagster instance, never
Salesforce.
"""


from datetime import datetime, timedelta, timezone

import dagster as dg

from routiine_pipeline import settings
from routiine_pipeline.control.store import CONNECTED, open_control_store
from routiine_pipeline.defs.extract import PHASE_TAG, RAW_ASSET_KEYS, TENANT_TAG
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.extract.windows import MonthWindow

sync_job = dg.define_asset_job(
    "tenant_sync_job",
    selection=dg.AssetSelection.assets(*RAW_ASSET_KEYS.values()),
    description="Extract what changed in one tenant's org for one month window.",
)


def due_tenants(now: datetime, known_partitions: set[str]) -> tuple[list[str], list[str]]:
    """Split the control store's tenants into those due now and reasons for the rest."""
    store = open_control_store(settings.control_store_url())
    due, skipped = [], []
    for tenant in store.list_tenants():
        if tenant.tenant_id not in known_partitions:
            skipped.append(f"{tenant.tenant_id}: no Dagster partition (add it with `routiine tenants add`)")
        elif tenant.status != CONNECTED:
            reason = tenant.status_reason or "no reason recorded"
            skipped.append(f"{tenant.tenant_id}: status {tenant.status} ({reason})")
        elif tenant.last_sync_at and tenant.last_sync_at + timedelta(minutes=tenant.interval_minutes) > now + timedelta(seconds=30):
            next_at = tenant.last_sync_at + timedelta(minutes=tenant.interval_minutes)
            skipped.append(
                f"{tenant.tenant_id}: not due until {next_at:%H:%M} UTC (interval {tenant.interval_minutes} min)"
            )
        else:
            due.append(tenant.tenant_id)
    return due, skipped


@dg.schedule(
    cron_schedule="*/15 * * * *",
    job=sync_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def tenant_sync_schedule(context: dg.ScheduleEvaluationContext):
    """Request one incremental run per due tenant for the current month partition."""
    now = context.scheduled_execution_time or datetime.now(timezone.utc)
    now = now.astimezone(timezone.utc)
    known = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    due, skipped = due_tenants(now, known)
    for reason in skipped:
        context.log.info("Skipping tenant %s", reason)
    if not due:
        return dg.SkipReason("No tenant due: " + "; ".join(skipped) if skipped else "No tenants configured")
    month = MonthWindow.containing(now).key
    return [
        dg.RunRequest(
            run_key=f"{tenant}-{now:%Y%m%dT%H%M}",
            partition_key=dg.MultiPartitionKey({"tenant": tenant, "month": month}),
            tags={TENANT_TAG: tenant, PHASE_TAG: "incremental"},
        )
        for tenant in due
    ]
