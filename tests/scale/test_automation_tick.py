"""The model automation sensor at 1,000 tenants: model runs only for tenants whose raw data changed.

The sensor's conditions are evaluated the way the daemon evaluates them, on
a real instance holding 1,000 tenant partitions. Raw materializations are
recorded as backfills and syncs would record them. An evaluation must
request model and score runs for exactly the tenants whose raw data changed,
and read no tenant file.
"""

from __future__ import annotations

import dagster as dg
import pytest

from routiine_pipeline.defs.extract import RAW_ASSET_KEYS
from routiine_pipeline.defs.partitions import month_partitions, tenant_partitions

TENANTS = [f"tenant-{number:04d}" for number in range(1000)]
BACKFILLED = ["tenant-0007", "tenant-0500", "tenant-0999"]
WATCHED = (
    dg.AssetKey("stg_opportunity"),
    dg.AssetKey("event"),
    dg.AssetKey("deal"),
    dg.AssetKey("momentum_score"),
)


@pytest.fixture
def definitions(monkeypatch):
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_SECRET", "tick-test")
    from routiine_pipeline.definitions import defs

    return defs


def _record_raw(instance: dg.DagsterInstance, tenant: str, months: list[str]) -> None:
    for key in RAW_ASSET_KEYS.values():
        for month in months:
            partition = dg.MultiPartitionKey({"tenant": tenant, "month": month})
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=partition)
            )


def _requested(result) -> dict[str, set[str]]:
    return {
        key.to_user_string(): set(result.get_requested_partitions(key))
        for key in WATCHED
    }


def test_models_requested_only_for_changed_tenants(
    tmp_path, routiine_home, definitions
):
    months = month_partitions.get_partition_keys()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, TENANTS)
        quiet = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
        assert quiet.total_requested == 0

        # Three tenants backfilled every month; a fourth only half of them.
        for tenant in BACKFILLED:
            _record_raw(instance, tenant, months)
        _record_raw(instance, "tenant-0123", months[: len(months) // 2])
        after_backfill = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, cursor=quiet.cursor
        )
        for asset, partitions in _requested(after_backfill).items():
            assert partitions == set(BACKFILLED), asset

        # The requested runs materialize the models of those tenants.
        for key in definitions.resolve_all_asset_keys():
            for partition in after_backfill.get_requested_partitions(key):
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(key, partition=partition)
                )

        settled = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, cursor=after_backfill.cursor
        )
        assert settled.total_requested == 0

        # A sync of one tenant's current month: only that tenant rebuilds.
        _record_raw(instance, "tenant-0500", months[-1:])
        after_sync = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, cursor=settled.cursor
        )
        for asset, partitions in _requested(after_sync).items():
            assert partitions == {"tenant-0500"}, asset

    tenant_files = routiine_home / "tenants"
    assert not tenant_files.exists() or not any(tenant_files.iterdir())
