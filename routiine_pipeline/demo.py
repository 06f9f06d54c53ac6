"""`routiine demo`: the whole main job on the bundled demo org, end to end.

The demo starts the emulator with the demo org and connects tenant `demo`
through the OAuth web-server flow. It backfills the tenant's history through
Dagster, builds the models and scores, and writes the scores back. Then the
emulator changes some records, and the demo runs one incremental cycle, its
write-back and a quiet cycle before it prints a summary.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import requests

from routiine_pipeline import jobs, oauth_settings, settings, summary
from routiine_pipeline.cli.instance import dagster_instance

log = logging.getLogger("routiine.demo")

TENANT = "demo"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _configure_environment() -> str:
    """Switch on emulator mode and give the demo its own connected-app secret."""
    client_secret = secrets.token_urlsafe(24)
    os.environ[settings.ALLOW_LOOPBACK_ENV] = "1"
    os.environ[oauth_settings.CLIENT_ID_ENV] = oauth_settings.DEFAULT_CLIENT_ID
    os.environ[oauth_settings.CLIENT_SECRET_ENV] = client_secret
    os.environ[oauth_settings.REDIRECT_URI_ENV] = (
        f"http://127.0.0.1:{_free_port()}/oauth/callback"
    )
    return client_secret


def _reset_tenant(instance: dg.DagsterInstance) -> None:
    from routiine_pipeline.control.store import TenantNotFoundError
    from routiine_pipeline.tenants import control_store

    store = control_store()
    try:
        store.get_tenant(TENANT)
        store.remove_tenant(TENANT)
    except TenantNotFoundError:
        pass
    path = settings.tenant_database_path(TENANT)
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)


def _connect(emulator_url: str, instance: dg.DagsterInstance) -> None:
    from routiine_pipeline.tenants import LoopbackCallback, add_tenant, connector

    # Each demo starts the tenant afresh and runs every step itself.
    add_tenant(
        instance, TENANT, org_type="production", login=emulator_url, reuse_history=True
    )
    tenant_connector = connector()
    with LoopbackCallback(tenant_connector) as callback:
        authorize_url = tenant_connector.start(TENANT)
        # The emulator approves at once in demo mode and redirects to the loopback callback.
        response = requests.get(authorize_url, timeout=30)
        response.raise_for_status()
        tenant = callback.wait(timeout=30)
    _step(
        f"Tenant {TENANT} is {tenant.status}; its tokens are stored encrypted in the control store"
    )


def _verify_connection(instance: dg.DagsterInstance) -> None:
    """Read /limits once: proves the tokens work and seeds the budget's usage reading."""
    from routiine_pipeline.definitions import build_resources

    resources = build_resources()
    client, guard = resources["salesforce"].client(TENANT, run_id=None, phase="connect")
    limits = client.limits()["DailyApiRequests"]
    _step(
        f"Org API usage: {limits['Max'] - limits['Remaining']:,} of {limits['Max']:,} daily calls used"
    )


@dataclass
class DemoResult:
    """Result of a demo run, for a caller to inspect: the summary and the emulated org."""

    summary: dict
    org: Any
    changes: dict


def run_demo(summary_json: Path | None = None) -> DemoResult:
    """Run the demo and return its summary (also written to `summary_json` when given)."""
    from routiine_pipeline.emulator import Clock, EmulatorServer, Org
    from routiine_pipeline.emulator.demo_org import (
        INTEGRATION_USER_ID,
        apply_demo_changes,
        build_demo_records,
    )

    started = time.monotonic()
    started_at = datetime.now(UTC)
    client_secret = _configure_environment()
    instance = dagster_instance()
    _reset_tenant(instance)

    clock = Clock()
    _step("Building the demo org from the Maven CRM sample data")
    org = Org(clock=clock, integration_user_id=INTEGRATION_USER_ID)
    org.load(build_demo_records(anchor=clock.now()))
    counts = {
        sobject: len(org.records(sobject))
        for sobject in ("Account", "Contact", "Opportunity", "Task", "Event")
    }
    _step(
        "Demo org: " + ", ".join(f"{count:,} {name}" for name, count in counts.items())
    )

    with EmulatorServer(
        org,
        client_id=oauth_settings.DEFAULT_CLIENT_ID,
        client_secret=client_secret,
        auto_approve=True,
    ) as emulator:
        _step(f"Salesforce emulator listening on {emulator.url}")
        _connect(emulator.url, instance)
        _verify_connection(instance)

        months = _history_months(clock.now())
        _step(
            f"Backfilling {len(months)} months of history ({months[0]} to {months[-1]})"
        )
        for index, month in enumerate(months, start=1):
            result = jobs.run_job(
                instance,
                jobs.SYNC_JOB,
                jobs.month_partition_key(TENANT, month),
                tags={"routiine/tenant": TENANT, "routiine/phase": "backfill"},
                run_config=jobs.extract_run_config(clock.now()),
            )
            records, calls = _extract_figures(result)
            print(
                f"    month {month}: {records:,} records, {calls} API calls ({index}/{len(months)}, run {result.run_id[:8]})",
                flush=True,
            )

        _rebuild_models("backfill", instance, clock.now())
        written = {"initial": _write_back(instance)}

        _step("Emulator: time passes, sales reps change records")
        clock.advance(20 * 60)
        changes = apply_demo_changes(org)
        _describe_changes(changes)

        _step("Incremental cycle")
        _incremental(instance, clock, phase="incremental")
        _rebuild_models("incremental", instance, clock.now())
        written["incremental"] = _write_back(instance)

        _step("Quiet cycle: nothing changed in Salesforce since the last cycle")
        clock.advance(60)
        _incremental(instance, clock, phase="quiet")
        _rebuild_models("quiet", instance, clock.now())
        written["quiet"] = _write_back(instance)
        if written["quiet"]:
            print(
                f"    {written['quiet']} score(s) moved only because time passed (recency and the "
                "7- and 30-day activity windows); no other value was sent",
                flush=True,
            )

        emulator_stats = org.stats()

    result = summary.build_summary(
        tenant=TENANT,
        instance=instance,
        emulator_stats=emulator_stats,
        written=written,
        changes=changes,
        elapsed_seconds=time.monotonic() - started,
        since=started_at,
    )
    print(summary.render(result), flush=True)
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(result, indent=2, default=str))
        _step(f"Summary written to {summary_json}")
    return DemoResult(summary=result, org=org, changes=changes)


def _history_months(now: datetime) -> list[str]:
    from routiine_pipeline.defs.partitions import month_partitions

    keys = month_partitions.get_partition_keys(current_time=now)
    return [key for key in keys if key <= now.strftime("%Y-%m-01")]


def _incremental(instance: dg.DagsterInstance, clock, *, phase: str) -> None:
    # The run starts two minutes after the emulator's now, so the lag behind
    # the upper bound does not hide the changes just made.
    run_start = clock.now() + timedelta(minutes=2)
    month = run_start.astimezone(UTC).strftime("%Y-%m-01")
    jobs.run_job(
        instance,
        jobs.SYNC_JOB,
        jobs.month_partition_key(TENANT, month),
        tags={"routiine/tenant": TENANT, "routiine/phase": phase},
        run_config=jobs.extract_run_config(run_start),
    )


def _rebuild_models(phase: str, instance: dg.DagsterInstance, as_of: datetime) -> None:
    """Rebuild the models and scores as of the emulator's time, which runs ahead of the wall clock."""
    jobs.run_job(
        instance,
        jobs.MODELS_JOB,
        TENANT,
        tags={"routiine/tenant": TENANT, "routiine/phase": phase},
        run_config={
            "ops": {"momentum_score": {"config": {"as_of": as_of.isoformat()}}}
        },
    )
    print("    models and momentum scores rebuilt", flush=True)


def _write_back(instance: dg.DagsterInstance) -> int:
    """Evaluate the write-back sensor once and run what it requests; return records written."""
    from routiine_pipeline.defs.writeback import writeback_sensor

    cursor_key = "routiine_demo_writeback_cursor"
    cursor = instance.run_storage.get_cursor_values({cursor_key}).get(cursor_key)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=jobs.definitions()
    )
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        evaluation = writeback_sensor.evaluate_tick(context)
    if evaluation.cursor:
        instance.run_storage.set_cursor_values({cursor_key: evaluation.cursor})
    written = 0
    for request in evaluation.run_requests or []:
        result = jobs.run_job(
            instance, jobs.WRITEBACK_JOB, request.partition_key, tags=dict(request.tags)
        )
        materialization = result.asset_materializations_for_node(
            "opportunity_writeback"
        )[0]
        written += materialization.metadata["succeeded"].value
    if not evaluation.run_requests:
        print(
            f"    write-back sensor: {evaluation.skip_message or 'nothing to do'}",
            flush=True,
        )
    else:
        print(
            f"    write-back sensor requested {len(evaluation.run_requests)} run(s): {written} records written",
            flush=True,
        )
    return written


def _extract_figures(result: dg.ExecuteInProcessResult) -> tuple[int, int]:
    """Sum the records received over the raw assets of a run, and read its API calls."""
    records, calls = 0, 0
    for materialization in result.asset_materializations_for_node("salesforce_raw"):
        records += materialization.metadata["records_received"].value
        calls = materialization.metadata["run_api_calls"].value
    return records, calls


def _describe_changes(changes: dict) -> None:
    tasks = changes.get("tasks", [])
    calls = sum(1 for task in tasks if task.get("Type") == "Call")
    lines = [
        f"{len(changes.get('advanced', []))} open deals moved forward one stage",
        f"1 deal closed won ({changes['closed_won']['Id']})"
        if changes.get("closed_won")
        else None,
        f"{calls} calls and {len(tasks) - calls} emails logged",
        f"{len(changes.get('events', []))} meeting booked",
        f"1 deal deleted ({changes['deleted']['Id']})"
        if changes.get("deleted")
        else None,
    ]
    for line in filter(None, lines):
        print(f"    {line}", flush=True)
