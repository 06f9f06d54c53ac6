"""Running the project's jobs in-process against a real Dagster instance.

The demo and the `routiine backfill` command use this: the runs land in the
instance under DAGSTER_HOME, so the UI shows them afterwards with their
materializations and metadata.
"""

from __future__ import annotations

import logging
from datetime import datetime

import dagster as dg

log = logging.getLogger(__name__)

SYNC_JOB = "tenant_sync_job"
MODELS_JOB = "tenant_models_job"
WRITEBACK_JOB = "opportunity_writeback_job"


class RunFailedError(RuntimeError):
    """A run ended in failure; the message carries Dagster's failure description."""


def definitions() -> dg.Definitions:
    from routiine_pipeline.definitions import defs

    return defs


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """Join the descriptions of the run's failed steps, or the root cause of their errors.

    Dagster wraps an exception raised in an op in "Error occurred while
    executing op ...", so the innermost cause is the message a user can act on.
    """
    messages = []
    for event in result.all_events:
        if not event.is_step_failure or event.step_failure_data is None:
            continue
        user = event.step_failure_data.user_failure_data
        if user and user.description:
            messages.append(user.description)
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        messages.append(error.message.strip() if error else event.message)
    return "; ".join(filter(None, messages)) or "run failed"


def run_job(
    instance: dg.DagsterInstance,
    job_name: str,
    partition_key: str,
    *,
    tags: dict[str, str],
    run_config: dict | None = None,
    console_level: str = "WARNING",
    raise_on_failure: bool = True,
) -> dg.ExecuteInProcessResult:
    job = definitions().resolve_job_def(job_name)
    # The console shows warnings and errors only; every event still lands in the instance.
    config = {
        "loggers": {"console": {"config": {"log_level": console_level}}},
        **(run_config or {}),
    }
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        tags=tags,
        run_config=config,
        raise_on_error=False,
    )
    if raise_on_failure and not result.success:
        raise RunFailedError(
            f"{job_name} for partition {partition_key} failed: {failure_message(result)}"
        )
    return result


def extract_run_config(
    run_start: datetime | None = None, *, full_refresh: bool = False
) -> dict:
    config: dict = {"full_refresh": full_refresh}
    if run_start is not None:
        config["run_start"] = run_start.isoformat()
    return {"ops": {"salesforce_raw": {"config": config}}}


def month_partition_key(tenant: str, month: str) -> str:
    return str(dg.MultiPartitionKey({"tenant": tenant, "month": month}))
