"""Backfill a tenant's history: its month partitions, through Dagster, resumable.

Each month runs as one `tenant_sync_job` run on the real instance, tagged
with the tenant and phase `backfill`, so the UI shows the runs and the raw
assets' materializations afterwards. A month whose raw assets are all
materialized is skipped, which makes a backfill that crashed or stopped at
the API limit resume where it ended when the same command runs again.

With `parallel` > 1 the months are read in groups: one extract pass reads a
group's month windows with one query per sObject and runs the hard-delete
check. Each month's run then records the materialization and finds its
window sealed and the delete check done, so it makes no Salesforce call.
Separate concurrent runs would not help, because a
tenant's DuckDB file accepts one writer process and they would only wait
for its lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from routiine_pipeline import jobs, settings
from routiine_pipeline.defs.extract import PHASE_TAG, RAW_ASSET_KEYS, TENANT_TAG
from routiine_pipeline.defs.partitions import (
    month_partitions,
    tenant_month_partitions,
    tenant_partitions,
)
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.storage.raw_tables import raw_table_name
from routiine_pipeline.storage.warehouse import open_database

log = logging.getLogger(__name__)

BACKFILL_PHASE = "backfill"
# The start of the failure description that the extract asset raises when the org's API
# allocation or this pipeline's budget is spent. Every later month would fail the same way.
# NOTE: matched as text, because a failed in-process run returns only its messages.
API_LIMIT_FAILURE = "API limit reached"


class BackfillError(ValueError):
    """The backfill request is invalid: unknown tenant, or months outside the partitions."""


@dataclass
class MonthResult:
    """The outcome of one month: extracted, skipped, failed or stopped."""

    month: str
    status: str
    rows: int = 0
    api_calls: int = 0
    run_id: str | None = None
    error: str | None = None


@dataclass
class BackfillReport:
    """Every month's result, in order, and whether the API limit stopped the backfill."""

    tenant: str
    months: list[MonthResult] = field(default_factory=list)
    stopped: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for result in self.months if result.status == status)

    @property
    def api_calls(self) -> int:
        return sum(result.api_calls for result in self.months)


def month_keys(first: str | None, last: str | None, *, now: datetime) -> list[str]:
    """Return the month partition keys from `first` to `last` (YYYY-MM, inclusive).

    Defaults: the first partition and the month of `now`. Raises BackfillError
    for a malformed month or one outside the month partitions.
    """
    available = [
        key
        for key in month_partitions.get_partition_keys(current_time=now)
        if key <= _key(now)
    ]
    start = _parse_month(first) if first else available[0]
    end = _parse_month(last) if last else available[-1]
    if start > end:
        raise BackfillError(f"--from {start[:7]} is after --to {end[:7]}")
    for key in (start, end):
        if key not in available:
            raise BackfillError(
                f"month {key[:7]} is outside the partitions {available[0][:7]} to {available[-1][:7]}; "
                f"set {settings.HISTORY_START_ENV} to start the history earlier"
            )
    return [key for key in available if start <= key <= end]


def materialized_months(instance: dg.DagsterInstance, tenant: str) -> set[str]:
    """Return the months whose raw assets are all materialized for the tenant."""
    done: set[str] | None = None
    for key in RAW_ASSET_KEYS.values():
        months = set()
        for partition in instance.get_materialized_partitions(key):
            keys = tenant_month_partitions.get_partition_key_from_str(
                partition
            ).keys_by_dimension
            if keys.get("tenant") == tenant:
                months.add(keys["month"])
        done = months if done is None else done & months
    return done or set()


def extracted_months(tenant: str) -> set[str]:
    """Return the months whose window has a watermark of every extracted sObject in the tenant's file.

    The event log alone is not enough: a tenant removed and added again
    under the same id keeps its old materializations but has a new, empty file.
    """
    path = settings.tenant_database_path(tenant)
    if not path.exists():
        return set()
    with open_database(path, read_only=True) as conn:
        present = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_watermarks'"
        ).fetchone()[0]
        if not present:
            return set()
        # Every extracted sObject must have finished the window: a run killed
        # part-way leaves watermarks for the sObjects it completed only.
        rows = conn.execute(
            "SELECT window_key FROM _watermarks WHERE sobject IN ? "
            "GROUP BY window_key HAVING count(DISTINCT sobject) = ?",
            [list(RAW_ASSET_KEYS), len(RAW_ASSET_KEYS)],
        ).fetchall()
        return {row[0] for row in rows}


def backfill_tenant(
    instance: dg.DagsterInstance,
    tenant: str,
    months: list[str],
    *,
    full_refresh: bool = False,
    parallel: int = 1,
    run_start: datetime | None = None,
    progress: Callable[[str], None] = print,
) -> BackfillReport:
    """Extract the tenant's months in order, skipping extracted ones unless `full_refresh`.

    A month is skipped when the event log shows all its raw assets
    materialized and the tenant's file contains its watermarks.
    """
    if parallel < 1:
        raise BackfillError(f"--parallel must be at least 1, got {parallel}")
    if not instance.has_dynamic_partition(tenant_partitions.name, tenant):
        raise BackfillError(
            f"tenant {tenant} is not a partition of this Dagster instance; add it with `routiine tenants add {tenant}`"
        )
    run_start = run_start or datetime.now(UTC)
    report = BackfillReport(tenant)
    done = set()
    if not full_refresh:
        done = materialized_months(instance, tenant) & extracted_months(tenant)
    pending = [month for month in months if month not in done]
    position = {month: index for index, month in enumerate(months, start=1)}
    for month in months:
        if month in done:
            report.months.append(MonthResult(month, "skipped"))
            progress(
                f"month {month[:7]} ({position[month]}/{len(months)}): already extracted, skipped"
            )

    for group in _groups(pending, parallel, run_start):
        shared_calls = 0
        if len(group) > 1:
            shared_calls, stopped = _read_group(
                tenant, group, full_refresh=full_refresh, run_start=run_start
            )
            progress(
                f"months {group[0][:7]} to {group[-1][:7]}: read in one pass, {shared_calls} API calls"
            )
            if stopped:
                report.stopped = stopped
                break
        for month in group:
            result = _run_month(
                instance,
                tenant,
                month,
                full_refresh=full_refresh and len(group) == 1,
                run_start=run_start,
            )
            result.api_calls += shared_calls
            shared_calls = 0
            report.months.append(result)
            progress(_describe(result, position[month], len(months)))
            if result.status == "stopped":
                report.stopped = result.error
                break
        if report.stopped:
            break
    report.months.sort(key=lambda result: result.month)
    return report


def _run_month(
    instance: dg.DagsterInstance,
    tenant: str,
    month: str,
    *,
    full_refresh: bool,
    run_start: datetime,
) -> MonthResult:
    result = jobs.run_job(
        instance,
        jobs.SYNC_JOB,
        jobs.month_partition_key(tenant, month),
        tags={TENANT_TAG: tenant, PHASE_TAG: BACKFILL_PHASE},
        run_config=jobs.extract_run_config(run_start, full_refresh=full_refresh),
        raise_on_failure=False,
    )
    if not result.success:
        message = jobs.failure_message(result)
        status = "stopped" if API_LIMIT_FAILURE in message else "failed"
        log.error(
            "Tenant %s, month %s: run %s failed: %s",
            tenant,
            month,
            result.run_id,
            message,
        )
        return MonthResult(
            month,
            status,
            rows=_stored_rows(tenant, month),
            run_id=result.run_id,
            error=message,
        )
    materializations = result.asset_materializations_for_node("salesforce_raw")
    calls = (
        materializations[0].metadata["run_api_calls"].value if materializations else 0
    )
    return MonthResult(
        month,
        "extracted",
        rows=_stored_rows(tenant, month),
        api_calls=calls,
        run_id=result.run_id,
    )


def _read_group(
    tenant: str, group: list[str], *, full_refresh: bool, run_start: datetime
) -> tuple[int, str | None]:
    """Read several closed months in one extract pass; return its API calls and a stop reason.

    Like a month's run, the pass ends with the hard-delete check, so the
    month runs that follow find it done. On a file that stored no rows
    before the pass, the check costs no call: it records a baseline at
    `run_start`, because every stored row was read through queryAll after
    that moment. A record hard-deleted later is then in the delete log that
    the next check reads from `run_start` on.
    """
    from routiine_pipeline.definitions import build_resources
    from routiine_pipeline.extract.cycle import CycleStoppedError, ExtractPass
    from routiine_pipeline.extract.deletes import DeleteCheck
    from routiine_pipeline.extract.plan import plan_tenant_fields
    from routiine_pipeline.salesforce.errors import (
        BudgetExhaustedError,
        RequestLimitExceededError,
    )

    resources = build_resources()
    client, guard = resources["salesforce"].client(
        tenant, run_id=None, phase=BACKFILL_PHASE
    )
    sobjects = list(RAW_ASSET_KEYS)
    stopped = None
    # Taken before the first row is written, as in a month's run. The delete check
    # treats rows written before this moment as older than the pass.
    pass_started = datetime.now(UTC)
    with resources["warehouse"].connect(tenant) as conn:
        plans = plan_tenant_fields(client, conn, tenant, sobjects)
        extract = ExtractPass(
            client, conn, tenant=tenant, settings=ExtractSettings(), run_start=run_start
        )
        try:
            extract.run(
                plans,
                [MonthWindow.from_key(month) for month in group],
                full_refresh=full_refresh,
            )
            DeleteCheck(
                client,
                conn,
                tenant=tenant,
                run_start=run_start,
                pass_started=pass_started,
                logger=log,
            ).run(sobjects)
        except (
            CycleStoppedError,
            RequestLimitExceededError,
            BudgetExhaustedError,
        ) as error:
            stopped = f"{API_LIMIT_FAILURE} for tenant {tenant}: {error.message}"
    return guard.total_calls, stopped


def _groups(months: list[str], size: int, run_start: datetime) -> list[list[str]]:
    """Split months into runs of up to `size` contiguous closed months.

    A month still open at `run_start - lag` stays alone: its window cannot be
    sealed yet, so its own run must read it.
    """
    closes_by = run_start - ExtractSettings().lag
    groups: list[list[str]] = []
    for month in months:
        window = MonthWindow.from_key(month)
        previous = groups[-1] if groups else None
        joinable = (
            previous is not None
            and len(previous) < size
            and window.end <= closes_by
            and MonthWindow.from_key(previous[-1]).end == window.start
        )
        if joinable:
            previous.append(month)
        else:
            groups.append([month])
    return groups


def _stored_rows(tenant: str, month: str) -> int:
    """Count the rows of every raw table whose stored version belongs to the month window."""
    path = settings.tenant_database_path(tenant)
    if not path.exists():
        return 0
    with open_database(path, read_only=True) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
        counts = [
            conn.execute(
                f"SELECT count(*) FROM {raw_table_name(name)} WHERE _window = ?",
                [month],
            ).fetchone()[0]
            for name in RAW_ASSET_KEYS
            if raw_table_name(name) in tables
        ]
    return sum(counts)


def _describe(result: MonthResult, position: int, total: int) -> str:
    prefix = f"month {result.month[:7]} ({position}/{total})"
    if result.status == "extracted":
        return f"{prefix}: {result.rows:,} rows, {result.api_calls} API calls, run {result.run_id[:8]}"
    if result.status == "stopped":
        return f"{prefix}: stopped: {result.error}"
    return f"{prefix}: failed: {result.error}"


def _parse_month(text: str) -> str:
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise BackfillError(
            f"invalid month {text!r}; expected YYYY-MM, for example 2025-03"
        ) from None
    return parsed.strftime("%Y-%m-01")


def _key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-01")
