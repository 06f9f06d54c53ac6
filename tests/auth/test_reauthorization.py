"""A dead refresh token: one token request, a fast non-retryable failure, one notification, a skip, a reconnect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from auth.helpers import make_setup
from routiine_pipeline import jobs, settings
from routiine_pipeline.control.store import CONNECTED, NEEDS_REAUTHORIZATION
from routiine_pipeline.definitions import build_resources
from routiine_pipeline.defs.automation import tenant_sync_schedule
from routiine_pipeline.defs.extract import RAW_ASSET_KEYS, salesforce_raw
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.emulator import Clock, Org
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.storage.warehouse import open_database

NOW = datetime.now(UTC).replace(microsecond=0)
MONTH = NOW.strftime("%Y-%m-01")


@pytest.fixture
def revoked(emulator_env, redirect_uri, tmp_path):
    """Tenant alpha connected, then its refresh token revoked and its access token expired at the org."""
    org = Org(clock=Clock())
    stamp = org.clock.now()
    org.load(
        {
            "Opportunity": [
                {
                    "Id": make_id("Opportunity", 1),
                    "Name": "Deal 1",
                    "StageName": "Prospecting",
                    "CloseDate": stamp.date(),
                    "IsClosed": False,
                    "IsWon": False,
                    "IsDeleted": False,
                    "CreatedDate": stamp,
                    "LastModifiedDate": stamp,
                    "SystemModstamp": stamp,
                }
            ]
        }
    )
    setup = make_setup(org, emulator_env, redirect_uri)
    setup.connect("alpha")
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    instance.add_dynamic_partitions(tenant_partitions.name, ["alpha"])
    refresh = setup.tokens("alpha").refresh_token()
    org.tokens.revoke(refresh)
    org.tokens.expire_access_tokens()
    yield setup, instance, refresh
    setup.server.stop()


class RunFailed(Exception):
    """A run of the test ended in failure; the message joins its step failure descriptions."""


def _run(instance, job_name: str, partition_key: str, run_config: dict | None = None):
    result = (
        jobs.definitions()
        .resolve_job_def(job_name)
        .execute_in_process(
            instance=instance,
            partition_key=partition_key,
            tags={"routiine/tenant": "alpha"},
            run_config=run_config or {},
            raise_on_error=False,
        )
    )
    if not result.success:
        descriptions = [
            event.step_failure_data.user_failure_data.description
            for event in result.all_events
            if event.event_type_value == "STEP_FAILURE"
            and event.step_failure_data.user_failure_data
        ]
        raise RunFailed(
            "; ".join(descriptions) or "run failed without a Failure description"
        )
    return result


def _sync(instance):
    # The run starts after the records' stamps, so the extract's lag does not hide them.
    run_start = datetime.now(UTC) + timedelta(minutes=2)
    month = run_start.strftime("%Y-%m-01")
    return _run(
        instance,
        jobs.SYNC_JOB,
        jobs.month_partition_key("alpha", month),
        jobs.extract_run_config(run_start),
    )


def _schedule_context(instance) -> dg.ScheduleEvaluationContext:
    resources = build_resources()
    return dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=NOW,
        resources={"budget": resources["budget"]},
    )


def _raw_row_count() -> int:
    path = settings.tenant_database_path("alpha")
    if not path.exists():
        return 0
    with open_database(path, read_only=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        ]
        return sum(
            conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in tables
            if name.startswith("raw_")
        )


def test_invalid_grant_fails_run_fast(revoked):
    setup, instance, refresh = revoked
    with pytest.raises(RunFailed) as raised:
        _sync(instance)
    message = str(raised.value)
    assert "needs re-authorization" in message
    assert "routiine tenants connect alpha" in message
    assert refresh not in message
    assert setup.token_requests() == 2  # the code exchange, then exactly one refresh
    assert _raw_row_count() == 0
    tenant = setup.store.get_tenant("alpha")
    assert tenant.status == NEEDS_REAUTHORIZATION
    assert "expired access/refresh token" in tenant.status_reason
    assert len(setup.store.notifications("alpha")) == 1
    assert setup.org.write_log == []


def test_later_runs_make_no_request(revoked):
    setup, instance, _ = revoked
    with pytest.raises(RunFailed):
        _sync(instance)
    data_calls = setup.org.data_api_calls
    with pytest.raises(RunFailed, match="routiine tenants connect alpha"):
        _sync(instance)
    with pytest.raises(RunFailed, match="routiine tenants connect alpha"):
        _run(instance, jobs.WRITEBACK_JOB, "alpha")
    assert setup.token_requests() == 2
    assert setup.org.data_api_calls == data_calls
    assert setup.org.write_log == []
    assert len(setup.store.notifications("alpha")) == 1


def test_stored_refresh_token_kept(revoked):
    from routiine_pipeline.control.tokens import read_refresh_token

    setup, instance, refresh = revoked
    with pytest.raises(RunFailed):
        _sync(instance)
    assert read_refresh_token(setup.store, setup.vault, "alpha") == refresh


def test_retry_policy_does_not_rerun(revoked):
    setup, instance, _ = revoked
    retrying = dg.define_asset_job(
        "retrying_sync",
        selection=dg.AssetSelection.assets(*RAW_ASSET_KEYS.values()),
        op_retry_policy=dg.RetryPolicy(max_retries=3),
    )
    definitions = dg.Definitions(
        assets=[salesforce_raw], jobs=[retrying], resources=build_resources()
    )
    result = definitions.resolve_job_def("retrying_sync").execute_in_process(
        instance=instance,
        partition_key=jobs.month_partition_key("alpha", MONTH),
        run_config=jobs.extract_run_config(NOW),
        raise_on_error=False,
    )
    assert not result.success
    assert [
        event
        for event in result.all_events
        if event.event_type_value == "STEP_UP_FOR_RETRY"
    ] == []
    assert setup.token_requests() == 2


def test_schedule_skips_then_includes_after_reconnect(revoked):
    setup, instance, _ = revoked
    with pytest.raises(RunFailed):
        _sync(instance)
    with _schedule_context(instance) as context:
        skipped = tenant_sync_schedule(context)
    assert isinstance(skipped, dg.SkipReason)
    assert (
        "alpha: needs re-authorization: Salesforce rejected the refresh token"
        in skipped.skip_message
    )
    assert "routiine tenants connect alpha" in skipped.skip_message

    state, code = setup.authorize("alpha")
    setup.connector.complete(state=state, code=code, tenant_id="alpha")
    tenant = setup.store.get_tenant("alpha")
    assert tenant.status == CONNECTED
    assert tenant.status_reason is None
    with _schedule_context(instance) as context:
        requests = tenant_sync_schedule(context)
    assert [request.tags["routiine/tenant"] for request in requests] == ["alpha"]
    _sync(instance)
    assert _raw_row_count() == 1
