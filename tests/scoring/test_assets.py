"""Materialize every model asset and momentum_score for one tenant partition."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from scoring_scenario import AS_OF, TENANT, insert_scoring_scenario

from routiine_pipeline import settings
from routiine_pipeline.defs.models import build_model_assets, model_asset_checks
from routiine_pipeline.defs.partitions import TENANT_PARTITIONS_NAME
from routiine_pipeline.defs.resources import TenantWarehouse
from routiine_pipeline.defs.scoring import momentum_score


@pytest.fixture
def tenant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(settings.HOME_ENV, str(tmp_path))
    path = settings.tenant_database_path(TENANT)
    with duckdb.connect(str(path)) as conn:
        insert_scoring_scenario(conn)
    return path


def test_materialize_models_and_score(tenant_home):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, [TENANT])
    model_assets = build_model_assets()
    result = dg.materialize(
        [*model_assets, momentum_score],
        instance=instance,
        partition_key=TENANT,
        resources={"warehouse": TenantWarehouse(lock_wait_seconds=5)},
        run_config={
            "ops": {"momentum_score": {"config": {"as_of": AS_OF.isoformat()}}}
        },
    )
    assert result.success

    deal = result.asset_materializations_for_node("deal")[0].metadata
    assert deal["dagster/row_count"].value == 7
    assert deal["dagster/table_name"].value == "deal"
    lineage = deal["dagster/column_lineage"].value.deps_by_column["amount"]
    assert [(d.asset_key, d.column_name) for d in lineage] == [
        (dg.AssetKey(["stg_opportunity"]), "amount")
    ]
    columns = [c.name for c in deal["dagster/column_schema"].value.columns]
    assert columns[:3] == ["deal_id", "name", "account_id"]

    scored = result.asset_materializations_for_node("momentum_score")[0].metadata
    assert scored["deals_scored"].value == 4
    assert scored["changed_scores"].value == 4
    assert scored["score_min"].value == 47
    assert scored["score_median"].value == 73.5
    assert scored["score_max"].value == 76
    assert scored["action_counts"].value == {
        "involve_stakeholders": 1,
        "keep_momentum": 1,
        "update_close_date": 2,
    }
    assert (
        "| 006ACTIVE | Deal 006ACTIVE | 76 | keep_momentum |"
        in scored["top_deals"].value
    )

    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(model_asset_checks()) + 1
    assert all(evaluation.passed for evaluation in evaluations)


def test_model_asset_graph():
    assets = {a.key.to_user_string(): a for a in build_model_assets()}
    deal = assets["deal"]
    assert deal.group_names_by_key[dg.AssetKey(["deal"])] == "models"
    assert set(deal.asset_deps[dg.AssetKey(["deal"])]) == {
        dg.AssetKey([name])
        for name in (
            "deal_change",
            "deal_stage_history",
            "stg_account",
            "stg_opportunity",
            "stg_user",
        )
    }
    raw_deps = assets["stg_opportunity"].asset_deps[dg.AssetKey(["stg_opportunity"])]
    assert set(raw_deps) == {dg.AssetKey(["raw", "opportunity"])}
    blocking = {spec.name for spec in model_asset_checks() if spec.blocking}
    assert "unique_deal_id" in blocking
    assert "unique_event_id" in blocking
    assert "unique_account_id" not in blocking


def test_foreign_lock_fails_with_holder_and_advice(tenant_home):
    """A process outside Dagster keeps the file open: the run fails in bounded time, naming it."""
    import subprocess
    import sys

    from routiine_pipeline.jobs import failure_message

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(tenant_home),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(TENANT_PARTITIONS_NAME, [TENANT])
        result = dg.materialize(
            [momentum_score],
            instance=instance,
            partition_key=TENANT,
            resources={"warehouse": TenantWarehouse(lock_wait_seconds=1)},
            raise_on_error=False,
        )
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not result.success
    message = failure_message(result)
    assert f"PID {holder.pid}" in message
    assert "Stop that process, or wait for it, then retry the run." in message
