"""One schedule tick and one sensor tick over 1,000 tenants: the right run requests, no Salesforce call.

Each test registers the fleet of scale/fleet.py in a real Dagster instance
and a control store on SQLite or PostgreSQL. It evaluates the tick the way
the daemon does, with partition keys resolved against the real job. Then it
checks that the loopback emulator, which every connected tenant points at,
received no request.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg
import requests
import sqlalchemy as sa

from routiine_pipeline.budget_state import decide_interval, load_budget_snapshot
from routiine_pipeline.control import budget_tables
from routiine_pipeline.definitions import defs
from routiine_pipeline.defs.automation import _tenant_policies, tenant_sync_schedule
from routiine_pipeline.defs.extract import PHASE_TAG, TENANT_TAG
from routiine_pipeline.defs.resources import ApiBudget, ControlPlane
from routiine_pipeline.defs.writeback import (
    MOMENTUM_KEY,
    WRITEBACK_KEY,
    writeback_sensor,
)
from scale.fleet import (
    BACK_TO_NORMAL,
    BUDGET_PAUSED,
    CEILING_OVERRIDE,
    CONNECTED_KINDS,
    DAILY_LIMIT,
    DUE,
    DUE_KINDS,
    DUE_NEW,
    DUE_PROBE,
    MONTH,
    NO_PARTITION,
    NOT_CONNECTED,
    NOW,
    OPERATOR_REASON,
    PRESSURE,
    REAUTH,
    REAUTH_REASON,
    RECENT,
    STATUS_PAUSED,
    Fleet,
)

REPOSITORY = defs.get_repository_def()
# Statements of a tick without a change of budget mode: the tenant list, four
# budget reads, the batched refresh and insert, and the request marks.
TICK_STATEMENTS = 8
# Statements of one change of mode: read, conditional update, history row,
# tenant interval and notification.
CHANGE_STATEMENTS = 5


@contextmanager
def counting_statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Collect the SQL statements sent on `engine`. An executemany counts once."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def evaluate_schedule(fleet: Fleet, at: datetime) -> dg.ScheduleExecutionData:
    """Evaluate one tick as the daemon does, with partition keys resolved against the real job."""
    with dg.build_schedule_context(
        instance=fleet.instance,
        instance_ref=fleet.instance.get_ref(),
        scheduled_execution_time=at,
        resources={"budget": ApiBudget(control=ControlPlane())},
        repository_def=REPOSITORY,
    ) as context:
        return tenant_sync_schedule.evaluate_tick(context)


def evaluate_sensor(fleet: Fleet, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=fleet.instance,
        instance_ref=fleet.instance.get_ref(),
        cursor=cursor,
        repository_def=REPOSITORY,
    )
    return writeback_sensor.evaluate_tick(context)


def assert_no_salesforce_call(emulator) -> None:
    assert emulator.requests == 0
    assert emulator.org.data_api_calls == 0
    assert sum(emulator.org.usage.calls.values()) == 0
    # The counter does see traffic to the URL the tenants point at.
    requests.get(f"{emulator.url}/services/data", timeout=10)
    assert emulator.requests == 1


def reasons_by_tenant(skip_message: str) -> dict[str, str]:
    """Split the schedule's skip message into each tenant's reason."""
    body = skip_message.removeprefix("No tenant due: ")
    reasons = {}
    for part in re.split(r"; (?=t\d{4}: )", body):
        tenant, _, reason = part.partition(": ")
        reasons[tenant] = reason
    return reasons


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def test_schedule_tick_requests_due_tenants(fleet, emulator):
    assert_batched_decisions_match(fleet)
    due = fleet.of(*DUE_KINDS)
    with counting_statements(fleet.store.engine) as statements:
        data = evaluate_schedule(fleet, NOW)

    assert data.skip_message is None
    assert [request.tags[TENANT_TAG] for request in data.run_requests] == due
    for tenant, request in zip(due, data.run_requests):
        assert request.partition_key == dg.MultiPartitionKey(
            {"tenant": tenant, "month": MONTH}
        )
        assert request.run_key == f"{tenant}-{NOW:%Y%m%dT%H%M}"
        assert request.tags[PHASE_TAG] == "incremental"
        assert request.tags["dagster/partition/tenant"] == tenant
        assert request.tags["dagster/partition/month"] == MONTH
        assert request.tags["dagster/schedule_name"] == "tenant_sync_schedule"
    changes = len(fleet.of(BACK_TO_NORMAL))
    assert len(statements) <= TICK_STATEMENTS + CHANGE_STATEMENTS * changes

    requested = {
        tenant.tenant_id: tenant.last_requested_at
        for tenant in fleet.store.list_tenants()
    }
    for tenant, before in fleet.last_requested.items():
        expected = NOW if tenant in due else before
        assert requested[tenant] == expected, tenant

    notified = Counter(
        tenant
        for tenant in fleet.kinds
        for note in fleet.store.notifications(tenant)
        if note["kind"] == "sync_interval"
    )
    assert notified == Counter(fleet.of(BACK_TO_NORMAL))
    for tenant in fleet.of(BACK_TO_NORMAL):
        message = fleet.store.notifications(tenant)[0]["message"]
        assert "is back to every 15 minutes (was every 30 minutes)" in message

    states = _budget_states(fleet)
    for tenant in fleet.of(DUE_NEW, DUE, BACK_TO_NORMAL, RECENT):
        assert states[tenant]["mode"] == "normal", tenant
    for tenant in fleet.of(PRESSURE):
        assert states[tenant]["mode"] == "pressure", tenant
        assert states[tenant]["org_used"] == round(0.73 * DAILY_LIMIT), tenant
    for tenant in fleet.of(DUE_PROBE, BUDGET_PAUSED, CEILING_OVERRIDE):
        assert states[tenant]["mode"] == "paused", tenant

    # Evaluated again at the same time, the schedule requests nothing and gives
    # every tenant's reason, because the tenants it requested are not due yet.
    with counting_statements(fleet.store.engine) as statements:
        again = evaluate_schedule(fleet, NOW)
    assert again.run_requests == []
    assert len(statements) <= TICK_STATEMENTS
    assert_skip_reasons(fleet, again.skip_message)
    assert_no_salesforce_call(emulator)


def assert_skip_reasons(fleet: Fleet, skip_message: str) -> None:
    reasons = reasons_by_tenant(skip_message)
    assert sorted(reasons) == sorted(fleet.kinds)
    next_normal = (
        f"not due until {_at(NOW + timedelta(minutes=15))} (interval 15 min, normal: "
    )
    expected = {
        DUE_NEW: next_normal + "no usage reading yet)",
        DUE: next_normal,
        BACK_TO_NORMAL: next_normal,
        DUE_PROBE: "paused by the API budget, next usage check "
        f"{_at(NOW + timedelta(minutes=60))} (interval 60 min, paused: ",
        RECENT: f"not due until {_at(NOW + timedelta(minutes=10))} (interval 15 min, normal: ",
        PRESSURE: f"not due until {_at(NOW + timedelta(minutes=10))} (interval 30 min, pressure: ",
        BUDGET_PAUSED: "paused by the API budget, next usage check "
        f"{_at(NOW + timedelta(minutes=40))} (interval 60 min, paused: ",
        CEILING_OVERRIDE: "paused by the API budget, next usage check "
        f"{_at(NOW + timedelta(minutes=40))} (interval 60 min, paused: ",
        STATUS_PAUSED: f"status paused ({OPERATOR_REASON})",
        REAUTH: f"needs re-authorization: {REAUTH_REASON}",
        NOT_CONNECTED: "status pending_connection (no reason recorded)",
        NO_PARTITION: "no Dagster partition (add it with `routiine tenants add`)",
    }
    for tenant, kind in fleet.kinds.items():
        assert reasons[tenant].startswith(expected[kind]), (tenant, reasons[tenant])
    for tenant in fleet.of(CEILING_OVERRIDE):
        assert "ceiling of 20%" in reasons[tenant], tenant


def assert_batched_decisions_match(fleet: Fleet) -> None:
    """Check that the tick's batched reads give the policies and decisions of the per-tenant functions."""
    budget = ApiBudget(control=ControlPlane())
    snapshot = load_budget_snapshot(fleet.store, now=NOW)
    policies = _tenant_policies(budget, fleet.store, snapshot)
    sample = fleet.of(CEILING_OVERRIDE, BACK_TO_NORMAL, DUE_PROBE, DUE_NEW)[::2]
    sample += fleet.of(*CONNECTED_KINDS)[::25]
    for tenant in sample:
        policy = budget.policy(tenant)
        assert policies(tenant) == policy, tenant
        single = decide_interval(
            fleet.store,
            tenant,
            now=NOW,
            policy=policy,
            interval_policy=budget.interval_policy(),
        )
        batched = snapshot.decide(
            tenant, policy=policy, interval_policy=budget.interval_policy()
        )
        assert batched == single, tenant


def test_sensor_tick_requests_scored_and_retried(fleet, emulator):
    tenants = sorted(fleet.partitions)
    random.Random(7).shuffle(tenants)
    scored, tenants = tenants[:60], tenants[60:]
    unchanged, tenants = tenants[:15], tenants[15:]
    written, tenants = tenants[:15], tenants[15:]
    scored_and_retried, tenants = tenants[:10], tenants[10:]
    retried, tenants = tenants[:40], tenants[40:]
    retry_later, tenants = tenants[:20], tenants[20:]
    retry_empty, tenants = tenants[:10], tenants[10:]
    retry_unset = tenants[:10]

    instance = fleet.instance
    # An older write-back does not cover a newer score.
    for tenant in scored[:20]:
        _materialize(instance, WRITEBACK_KEY, tenant)
    for tenant in scored + written + scored_and_retried:
        _materialize(instance, MOMENTUM_KEY, tenant, changed_scores=4)
    for tenant in unchanged:
        _materialize(instance, MOMENTUM_KEY, tenant, changed_scores=0)
    for tenant in written:
        _materialize(instance, WRITEBACK_KEY, tenant)
    # Tenants removed after their score or retry was stored: no partition any more.
    _materialize(instance, MOMENTUM_KEY, "removed-scored", changed_scores=4)
    scores = instance.get_latest_storage_id_by_partition(
        MOMENTUM_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION
    )

    wall = datetime.now(UTC).replace(microsecond=0)
    due_at = wall - timedelta(minutes=5)
    retries = [(tenant, 2, due_at) for tenant in retried + scored_and_retried]
    retries += [(tenant, 2, wall + timedelta(days=1)) for tenant in retry_later]
    retries += [(tenant, 0, due_at) for tenant in retry_empty]
    retries += [(tenant, 3, None) for tenant in retry_unset]
    retries += [("removed-retried", 2, due_at)]
    with fleet.store.engine.begin() as conn:
        conn.execute(
            budget_tables.writeback_retries.insert(),
            [
                {
                    "tenant_id": tenant,
                    "pending": pending,
                    "next_attempt_at": at,
                    "updated_at": wall,
                }
                for tenant, pending, at in retries
            ],
        )

    with counting_statements(fleet.store.engine) as statements:
        data = evaluate_sensor(fleet)

    score_requests = sorted(scored + scored_and_retried)
    retry_requests = sorted(retried)
    expected_keys = [f"writeback-{t}-{scores[t]}" for t in score_requests]
    expected_keys += [
        f"writeback-retry-{t}-{due_at:%Y%m%dT%H%M%S}" for t in retry_requests
    ]
    assert [request.run_key for request in data.run_requests] == expected_keys
    for tenant, request in zip(score_requests + retry_requests, data.run_requests):
        assert request.partition_key == tenant
        assert request.tags["routiine/tenant"] == tenant
        assert request.tags["routiine/phase"] == "writeback"
        assert request.tags["dagster/partition"] == tenant
        assert request.tags["dagster/sensor_name"] == "writeback_sensor"
    assert data.cursor == str(max(scores.values()))
    assert {"removed-scored", "removed-retried"}.isdisjoint(
        request.partition_key for request in data.run_requests
    )
    assert len(statements) == 1

    again = evaluate_sensor(fleet, cursor=data.cursor)
    assert [request.partition_key for request in again.run_requests] == sorted(
        retried + scored_and_retried
    )
    assert_no_salesforce_call(emulator)


def _materialize(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    tenant: str,
    changed_scores: int | None = None,
) -> None:
    metadata = {} if changed_scores is None else {"changed_scores": changed_scores}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(key, partition=tenant, metadata=metadata)
    )


def _budget_states(fleet: Fleet) -> dict[str, dict]:
    table = budget_tables.budget_state
    with fleet.store.engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings()
        return {row["tenant_id"]: dict(row) for row in rows}
