"""The write-back asset, and the sensor that launches it when scores changed or retries are due."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from routiine_pipeline import settings
from routiine_pipeline.control.store import open_control_store
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.resources import SalesforceConnection, TenantWarehouse
from routiine_pipeline.extract.describe import load_describes
from routiine_pipeline.salesforce.errors import (
    BudgetExhaustedError,
    ReauthorizationRequiredError,
    RequestLimitExceededError,
)
from routiine_pipeline.writeback.alerts import send_cycle_alert
from routiine_pipeline.writeback.changes import pending_changes
from routiine_pipeline.writeback.queue import (
    RetrySettings,
    due_retries,
    publish_due_time,
)
from routiine_pipeline.writeback.writer import (
    WritebackConfigError,
    check_writable,
    send_changes,
)

MOMENTUM_KEY = dg.AssetKey("momentum_score")
WRITEBACK_KEY = dg.AssetKey("opportunity_writeback")


class WritebackConfig(dg.Config):
    """Retry settings of the write-back."""

    base_backoff_seconds: float = 60.0
    """Wait before the first retry of a failed record; it doubles per attempt."""
    max_backoff_seconds: float = 3600.0
    """Maximum wait between two attempts of one record."""
    max_permanent_attempts: int = 2
    """Attempts for a permanent failure (validation rule, access, invalid field) before it is alerted."""
    alert_after: int = 3
    """Attempts after which a transient failure (lock, 5xx, timeout) is alerted; it keeps retrying."""


@dg.asset(
    key=WRITEBACK_KEY,
    deps=[MOMENTUM_KEY],
    partitions_def=tenant_partitions,
    group_name="writeback",
    kinds={"salesforce"},
    tags={"layer": "writeback"},
)
def opportunity_writeback(
    context: dg.AssetExecutionContext,
    config: WritebackConfig,
    salesforce: SalesforceConnection,
    warehouse: TenantWarehouse,
) -> dg.MaterializeResult:
    """Momentum scores and next best actions written to Opportunity.Momentum_Score__c and
    Next_Best_Action__c: only values that changed, 200 records per sObject Collections call,
    every per-record result kept in `writeback_log`, failed records retried on later cycles."""
    tenant = context.partition_key
    phase = context.run.tags.get("routiine/phase", "writeback")
    now = datetime.now(UTC)
    retry = RetrySettings(
        base_backoff=timedelta(seconds=config.base_backoff_seconds),
        max_backoff=timedelta(seconds=config.max_backoff_seconds),
        max_permanent_attempts=config.max_permanent_attempts,
        alert_after=config.alert_after,
    )
    store = salesforce.budget.control.store()
    try:
        client, guard = salesforce.client(tenant, run_id=context.run_id, phase=phase)
        with warehouse.connect(
            tenant, holder=context.run_id, instance=context.instance
        ) as conn:
            guard.start_run(client)
            describe = load_describes(client, conn, ["Opportunity"]).get("Opportunity")
            check_writable(describe, tenant)
            changes = pending_changes(conn)
            context.log.info(
                "Tenant %s: %d Opportunities have changed Routiine values",
                tenant,
                len(changes),
            )
            report = send_changes(
                client,
                conn,
                changes,
                tenant=tenant,
                run_id=context.run_id,
                logger=context.log,
                now=now,
                retry=retry,
            )
            publish_due_time(store, conn, tenant, now)
    except ReauthorizationRequiredError as error:
        raise dg.Failure(
            description=f"Tenant {tenant} needs re-authorization: {error.message}",
            allow_retries=False,
        ) from None
    except WritebackConfigError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None
    except (BudgetExhaustedError, RequestLimitExceededError) as error:
        # Raised before any PATCH (the usage check or the describe): nothing was written.
        raise dg.Failure(
            description=f"API limit reached for tenant {tenant} before the write-back: {error}. "
            "The changes stay pending for the next cycle.",
            allow_retries=False,
        ) from None

    alert = send_cycle_alert(
        store, tenant, report.alerts, run_id=context.run_id, at=now
    )
    if report.failures:
        context.log.warning(
            "Tenant %s: %d write-back failures this run (%d transient, retried on a later cycle)",
            tenant,
            report.failed + report.transient,
            report.transient,
        )
    figures = guard.summary()
    metadata = {
        "changed": report.changed,
        "sent": report.sent,
        "succeeded": report.succeeded,
        "failed_permanent": report.failed,
        "failed_transient": report.transient,
        "dropped_deleted": report.dropped_deleted,
        "restored_edits": report.restored_edits,
        "waiting_retry": report.waiting_retry,
        "held_after_failure": report.held_after_failure,
        "patch_calls": report.calls,
        "run_api_calls": figures["api_calls"],
        "org_api_usage": figures["org_api_usage"],
        "failures": dg.MetadataValue.json(report.failures[:50]),
        "alert": dg.MetadataValue.md(alert.message if alert else "none"),
    }
    if report.stopped:
        # Batches sent before the limit stay stored; the rest is pending for the next cycle.
        metadata["stopped"] = report.stopped
        context.log.warning("Tenant %s: %s", tenant, report.stopped)
    return dg.MaterializeResult(metadata=metadata)


writeback_job = dg.define_asset_job(
    "opportunity_writeback_job",
    selection=[WRITEBACK_KEY],
    tags={"routiine/phase": "writeback"},
)


@dg.sensor(
    job=writeback_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests a write-back for each tenant whose momentum scores changed since "
        "its last write-back, or whose write-back retries are due."
    ),
)
def writeback_sensor(context: dg.SensorEvaluationContext):
    """Request a write-back for each tenant whose momentum scores changed or whose retries are due.

    The cursor is the storage id of the last momentum_score materialization
    seen, so every new materialization is read exactly once. Due retries come
    from the configured control store (ROUTIINE_CONTROL_URL or the SQLite file
    under ROUTIINE_HOME). Nothing here calls Salesforce or opens DuckDB.
    """
    after = int(context.cursor) if context.cursor else None
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=MOMENTUM_KEY, after_storage_id=after),
        limit=1000,
        ascending=True,
    )
    tenants: dict[str, int] = {}
    newest = after
    for record in result.records:
        newest = max(newest or 0, record.storage_id)
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        changed = materialization.metadata.get("changed_scores")
        count = changed.value if changed is not None else 1
        if count:
            tenants[materialization.partition] = record.storage_id
    # A write-back that ran after the score (launched by the demo or by hand)
    # already sent it; the cursor alone would not know that.
    written = _latest_writeback_ids(context.instance, set(tenants))
    tenants = {
        tenant: storage_id
        for tenant, storage_id in tenants.items()
        if written.get(tenant, 0) < storage_id
    }
    # A tenant removed after its score was stored has no partition any more.
    # Dagster would reject the whole tick for one such request, so it is dropped.
    known = set(context.instance.get_dynamic_partitions(tenant_partitions.name))
    for tenant in sorted(set(tenants) - known):
        context.log.info(
            "Tenant %s no longer exists; its changed scores are not written back",
            tenant,
        )
        del tenants[tenant]
    requests = [
        dg.RunRequest(
            run_key=f"writeback-{tenant}-{storage_id}",
            partition_key=tenant,
            tags={"routiine/tenant": tenant, "routiine/phase": "writeback"},
        )
        for tenant, storage_id in sorted(tenants.items())
    ]
    now = datetime.now(UTC)
    for tenant, due_at in sorted(
        due_retries(open_control_store(settings.control_store_url()), now).items()
    ):
        if tenant not in known:
            context.log.info(
                "Tenant %s no longer exists; its due retry is skipped", tenant
            )
        elif tenant not in tenants:
            requests.append(
                dg.RunRequest(
                    run_key=f"writeback-retry-{tenant}-{due_at:%Y%m%dT%H%M%S}",
                    partition_key=tenant,
                    tags={"routiine/tenant": tenant, "routiine/phase": "writeback"},
                )
            )
    if newest is not None and newest != after:
        context.update_cursor(str(newest))
    if not requests:
        return dg.SkipReason("No changed momentum scores and no write-back retry due")
    return requests


def _latest_writeback_ids(
    instance: dg.DagsterInstance, tenants: set[str]
) -> dict[str, int]:
    """Return the storage id of each tenant's newest write-back materialization, in one query.

    Tenants without a write-back materialization are left out.
    """
    if not tenants:
        return {}
    return dict(
        instance.get_latest_storage_id_by_partition(
            WRITEBACK_KEY,
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            partitions=tenants,
        )
    )
