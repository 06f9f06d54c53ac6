"""Raw extract assets: one per sObject, materialized together for a tenant x month partition.

All objects come from one subsettable multi_asset so a pass can put every
object's query into one Composite request, while each object keeps its own
asset, lineage, metadata and watermark.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from routiine_pipeline.defs.partitions import tenant_month_partitions
from routiine_pipeline.defs.resources import SalesforceConnection, TenantWarehouse
from routiine_pipeline.extract.cycle import (
    CycleStoppedError,
    ExtractPass,
    ObjectOutcome,
)
from routiine_pipeline.extract.deletes import (
    DeleteCheck,
    DeleteCheckOutcome,
    DeleteCheckSettings,
)
from routiine_pipeline.extract.plan import plan_tenant_fields
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.mapping import EXTRACT_OBJECTS
from routiine_pipeline.salesforce.client import CallEvent
from routiine_pipeline.salesforce.errors import (
    BudgetExhaustedError,
    ReauthorizationRequiredError,
    RequestLimitExceededError,
)
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.storage.raw_tables import raw_table_name

PHASE_TAG = "routiine/phase"
TENANT_TAG = "routiine/tenant"


def raw_asset_key(sobject: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", raw_table_name(sobject).removeprefix("raw_")])


RAW_ASSET_KEYS = {sobject: raw_asset_key(sobject) for sobject in EXTRACT_OBJECTS}


class ExtractConfig(dg.Config):
    """Settings of one extract run."""

    full_refresh: bool = False
    """Read the whole month window again, ignoring its watermark and seal."""
    overlap_minutes: float = 5.0
    """Minutes subtracted from the watermark, to catch late commits and shared timestamps."""
    lag_seconds: float = 60.0
    """Seconds the upper bound stays behind the run's start, for transactions in flight."""
    run_start: str = ""
    """ISO-8601 start time of the pass; empty means now. Used to replay a pass."""
    bulk_threshold: int = 10_000
    """Records in a window above which it is read through a Bulk API 2.0 query job; 0 reads all through REST."""
    window_restarts: int = 2
    """Times a window restarts from its committed watermark after a query fault before the sObject fails."""
    check_deletes: bool = True
    """Look for hard deletes (emptied recycle bin) through /deleted, or a full Id reconciliation when due."""
    delete_check_hours: float = 24.0
    """Hours between hard-delete checks of a tenant's sObjects; a check costs one API call per 25 sObjects."""


def _spec(sobject: str) -> dg.AssetSpec:
    schema = STANDARD_SCHEMAS[sobject]
    return dg.AssetSpec(
        key=RAW_ASSET_KEYS[sobject],
        description=(
            f"Salesforce {schema.label} records as extracted: one row per Id, newest SystemModstamp "
            "wins, deleted records kept as tombstones (`_deleted_at`). Partitioned by tenant and by "
            "month of SystemModstamp."
        ),
        group_name="raw",
        kinds={"salesforce", "duckdb"},
        partitions_def=tenant_month_partitions,
        metadata={"dagster/table_name": raw_table_name(sobject), "sobject": sobject},
        tags={"layer": "raw"},
    )


@dg.multi_asset(
    name="salesforce_raw",
    specs=[_spec(sobject) for sobject in EXTRACT_OBJECTS],
    partitions_def=tenant_month_partitions,
    can_subset=True,
)
def salesforce_raw(
    context: dg.AssetExecutionContext,
    config: ExtractConfig,
    salesforce: SalesforceConnection,
    warehouse: TenantWarehouse,
):
    """Read what changed in one tenant's org for one month window and commit it with its watermark."""
    keys = context.partition_key.keys_by_dimension
    tenant, month = keys["tenant"], keys["month"]
    run_start = (
        datetime.fromisoformat(config.run_start)
        if config.run_start
        else datetime.now(UTC)
    )
    window = MonthWindow.from_key(month)
    current = MonthWindow.containing(run_start)
    # The current month's pass also gives the previous month its final pass until it is sealed.
    windows = [window.previous(), window] if window.key == current.key else [window]
    phase = context.run.tags.get(PHASE_TAG) or (
        "incremental" if window.key == current.key else "backfill"
    )
    selected = [
        sobject
        for sobject, key in RAW_ASSET_KEYS.items()
        if key in context.selected_asset_keys
    ]
    settings = ExtractSettings(
        overlap=timedelta(minutes=config.overlap_minutes),
        lag=timedelta(seconds=config.lag_seconds),
        window_restarts=config.window_restarts,
        bulk_threshold=config.bulk_threshold,
    )
    pass_started = datetime.now(UTC)
    delete_outcomes: dict[str, DeleteCheckOutcome] = {}

    try:
        client, guard = salesforce.client(tenant, run_id=context.run_id, phase=phase)
        with warehouse.connect(
            tenant, holder=context.run_id, instance=context.instance
        ) as conn:
            # Reads /limits only when the last usage reading is stale.
            guard.start_run(client)
            plans = plan_tenant_fields(client, conn, tenant, selected)
            extract = ExtractPass(
                client,
                conn,
                tenant=tenant,
                settings=settings,
                run_start=run_start,
                logger=context.log,
            )
            stopped: CycleStoppedError | None = None
            try:
                extract.run(plans, windows, full_refresh=config.full_refresh)
            except CycleStoppedError as error:
                stopped = error
            if config.check_deletes and stopped is None:
                check = DeleteCheck(
                    client,
                    conn,
                    tenant=tenant,
                    run_start=run_start,
                    pass_started=pass_started,
                    settings=DeleteCheckSettings(
                        interval=timedelta(hours=config.delete_check_hours)
                    ),
                    logger=context.log,
                )
                try:
                    delete_outcomes = check.run(selected)
                except (RequestLimitExceededError, BudgetExhaustedError) as error:
                    stopped = CycleStoppedError(
                        str(error), error_code=error.error_code, tenant=tenant
                    )
            table_rows = {
                sobject: conn.execute(
                    f"SELECT count(*) FROM {raw_table_name(sobject)}"
                ).fetchone()[0]
                for sobject in selected
            }
    except ReauthorizationRequiredError as error:
        raise dg.Failure(
            description=f"Tenant {tenant} needs re-authorization: {error.message}",
            allow_retries=False,
        ) from None

    run_figures = guard.summary()
    context.log.info(
        "Tenant %s, month %s (%s): %d API calls, org usage %s",
        tenant,
        month,
        phase,
        run_figures["api_calls"],
        run_figures["org_api_usage"],
    )
    failed = []
    for sobject in selected:
        outcome = extract.outcomes.get(sobject)
        if outcome is None or not outcome.done or outcome.error:
            failed.append((sobject, outcome.error if outcome else "not started"))
            continue
        metadata = _metadata(outcome, run_figures, table_rows[sobject], window.key)
        metadata.update(_delete_metadata(delete_outcomes.get(sobject)))
        metadata.update(call_event_metadata(client.events))
        yield dg.MaterializeResult(asset_key=RAW_ASSET_KEYS[sobject], metadata=metadata)
    if stopped is not None:
        raise dg.Failure(
            description=f"API limit reached for tenant {tenant}: {stopped.message}. Committed work is kept; "
            "the next run resumes from the watermarks.",
            metadata={
                "api_calls": run_figures["api_calls"],
                "org_api_usage": run_figures["org_api_usage"],
            },
            allow_retries=False,
        )
    if failed:
        details = "; ".join(f"{sobject}: {reason}" for sobject, reason in failed)
        restarts = {
            sobject: extract.outcomes[sobject].restarts
            for sobject, _ in failed
            if sobject in extract.outcomes
        }
        raise dg.Failure(
            description=f"Tenant {tenant}, month {month}: {len(failed)} sObject(s) failed: {details}",
            metadata={
                "window_restarts": dg.MetadataValue.json(restarts),
                **call_event_metadata(client.events),
            },
        )

    # Shown by `routiine tenants list` and the connect page.
    salesforce.budget.control.store().update_tenant(
        tenant, last_sync_at=datetime.now(UTC)
    )


def _metadata(
    outcome: ObjectOutcome, run_figures: dict, table_rows: int, month: str
) -> dict:
    watermark = outcome.watermarks.get(month)
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(table_rows),
        "records_received": outcome.received,
        "records_deleted": outcome.deleted,
        "pages": outcome.pages,
        "total_size": outcome.total_size if outcome.total_size is not None else 0,
        "watermark": watermark or "none",
        "watermarks": dg.MetadataValue.json(outcome.watermarks),
        "sealed_windows": dg.MetadataValue.json(outcome.sealed),
        "query_lower_bound": outcome.lower or "nothing due",
        "query_upper_bound": outcome.upper or "nothing due",
        "window_restarts": outcome.restarts,
        "read_method": outcome.read_method,
        "bulk_jobs": dg.MetadataValue.json(outcome.bulk_jobs),
        "run_api_calls": run_figures["api_calls"],
        "run_api_calls_by_kind": dg.MetadataValue.json(
            run_figures["api_calls_by_kind"]
        ),
        "org_api_usage": run_figures["org_api_usage"],
        "record_problems": len(outcome.problems),
    }
    if outcome.soql:
        metadata["soql"] = dg.MetadataValue.md(f"```sql\n{outcome.soql}\n```")
    if outcome.problems or outcome.warnings:
        metadata["warnings"] = dg.MetadataValue.json(
            (outcome.warnings + outcome.problems)[:50]
        )
    return metadata


def _delete_metadata(outcome: DeleteCheckOutcome | None) -> dict:
    if outcome is None:
        return {"delete_check": "off"}
    metadata = {
        "delete_check": outcome.method,
        "hard_deletes_reported": outcome.reported,
        "hard_deletes_tombstoned": outcome.tombstoned,
    }
    if outcome.reason:
        metadata["delete_check_reason"] = outcome.reason
    if outcome.error:
        metadata["delete_check_error"] = outcome.error
    return metadata


def call_event_metadata(events: list[CallEvent]) -> dict:
    """Summarize the client's retries and token refreshes of the run (the first 20 listed in full)."""
    return {
        "call_retries": sum(1 for event in events if event.kind == "retry"),
        "token_refreshes": sum(1 for event in events if event.kind == "refresh"),
        "call_events": dg.MetadataValue.json(
            [f"{event.kind}: {event.detail}" for event in events[:20]]
        ),
    }
