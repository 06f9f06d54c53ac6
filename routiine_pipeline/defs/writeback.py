"""The write-back asset and the sensor that launches it when scores changed."""


import dagster as dg

from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.resources import SalesforceConnection, TenantWarehouse
from routiine_pipeline.extract.describe import load_describes
from routiine_pipeline.salesforce.errors import ReauthorizationRequiredError
from routiine_pipeline.writeback.changes import pending_changes
from routiine_pipeline.writeback.writer import WritebackConfigError, check_writable, send_changes

MOMENTUM_KEY = dg.AssetKey("momentum_score")
WRITEBACK_KEY = dg.AssetKey("opportunity_writeback")


@dg.asset(
    key=WRITEBACK_KEY,
    deps=[MOMENTUM_KEY],
    partitions_def=tenant_partitions,
    group_name="writeback",
    kinds={"salesforce"},
    tags={"layer": "writeback"},
)
def opportunity_writeback(
    context: dg.AssetExecutionContext, salesforce: SalesforceConnection, warehouse: TenantWarehouse
) -> dg.MaterializeResult:
    """Momentum scores and next best actions written to Opportunity.Momentum_Score__c and
    Next_Best_Action__c: only values that changed, 200 records per sObject Collections call,
    every per-record result kept in `writeback_log`."""
    tenant = context.partition_key
    phase = context.run.tags.get("routiine/phase", "writeback")
    try:
        client, guard = salesforce.client(tenant, run_id=context.run_id, phase=phase)
        with warehouse.connect(tenant) as conn:
            describe = load_describes(client, conn, ["Opportunity"]).get("Opportunity")
            check_writable(describe, tenant)
            changes = pending_changes(conn)
            context.log.info("Tenant %s: %d Opportunities have changed Routiine values", tenant, len(changes))
            report = send_changes(client, conn, changes, tenant=tenant, run_id=context.run_id, logger=context.log)
    except ReauthorizationRequiredError as error:
        raise dg.Failure(description=f"Tenant {tenant} needs re-authorization: {error.message}", allow_retries=False) from None
    except WritebackConfigError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None

    if report.failures:
        context.log.warning(
            "Tenant %s: %d write-back failures this run (%d transient, retried next cycle)",
            tenant, report.failed + report.transient, report.transient,
        )
    figures = guard.summary()
    return dg.MaterializeResult(
        metadata={
            "changed": report.changed,
            "sent": report.sent,
            "succeeded": report.succeeded,
            "failed_permanent": report.failed,
            "failed_transient": report.transient,
            "dropped_deleted": report.dropped_deleted,
            "restored_edits": report.restored_edits,
            "patch_calls": report.calls,
            "run_api_calls": figures["api_calls"],
            "org_api_usage": figures["org_api_usage"],
            "failures": dg.MetadataValue.json(report.failures[:50]),
        }
    )


writeback_job = dg.define_asset_job(
    "opportunity_writeback_job", selection=[WRITEBACK_KEY], tags={"routiine/phase": "writeback"}
)


@dg.sensor(job=writeback_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def writeback_sensor(context: dg.SensorEvaluationContext):
    """Request a write-back for each tenant whose momentum scores changed.

    The cursor is the storage id of the last momentum_score materialization
    seen, so every new materialization is read exactly once. Nothing here
    calls Salesforce.
    """
    after = int(context.cursor) if context.cursor else None
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=MOMENTUM_KEY, after_storage_id=after), limit=1000, ascending=True
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
    if newest is None or newest == after:
        return dg.SkipReason("No new momentum_score materializations")
    requests = [
        dg.RunRequest(
            run_key=f"writeback-{tenant}-{storage_id}",
            partition_key=tenant,
            tags={"routiine/tenant": tenant, "routiine/phase": "writeback"},
        )
        for tenant, storage_id in sorted(tenants.items())
    ]
    context.update_cursor(str(newest))
    if not requests:
        return dg.SkipReason("New scores, but none changed since the last write-back")
    return requests
