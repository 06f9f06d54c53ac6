"""A renamed StageName value, materialized through the Dagster assets, with and without an alias."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from scoring_scenario import AS_OF, TENANT, insert_scoring_scenario

from routiine_pipeline import settings
from routiine_pipeline.defs.models import build_model_assets
from routiine_pipeline.defs.resources import TenantWarehouse
from routiine_pipeline.defs.scoring import momentum_score
from routiine_pipeline.mapping import default_mapping
from routiine_pipeline.writeback.changes import ensure_tables, pending_changes

RENAMED = ("006ACTIVE", "006QUIET")
SCORE_SQL = (
    "SELECT deal_id, score, recommended_action, next_best_action, top_factors "
    "FROM momentum_score ORDER BY deal_id"
)


@pytest.fixture
def tenant(routiine_home: Path):
    """The scoring scenario's tenant in the control store and a Dagster instance, scored once."""
    from routiine_pipeline.tenants import add_tenant

    instance = dg.DagsterInstance.ephemeral()
    add_tenant(instance, TENANT, org_type="production")
    with duckdb.connect(str(settings.tenant_database_path(TENANT))) as conn:
        insert_scoring_scenario(conn)
    result = _materialize(instance)
    assert result.success
    with _connect() as conn:
        # Record every score as written to Salesforce, as a write-back run would.
        ensure_tables(conn)
        conn.execute(
            "INSERT INTO writeback_state SELECT deal_id, score, next_best_action, now() "
            "FROM momentum_score WHERE score IS NOT NULL"
        )
        assert pending_changes(conn) == []
        before = conn.execute(SCORE_SQL).fetchall()
        updated = conn.execute(
            "UPDATE raw_opportunity SET stagename = 'Qualifying' WHERE id IN ?",
            [list(RENAMED)],
        ).fetchone()[0]
    assert updated == 2
    return instance, before


def _connect():
    return duckdb.connect(str(settings.tenant_database_path(TENANT)))


def _materialize(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*build_model_assets(), momentum_score],
        instance=instance,
        partition_key=TENANT,
        resources={"warehouse": TenantWarehouse(lock_wait_seconds=5)},
        run_config={
            "ops": {"momentum_score": {"config": {"as_of": AS_OF.isoformat()}}}
        },
    )


def _set_mapping(aliases: dict[str, str]) -> None:
    from routiine_pipeline.tenants import control_store

    mapping = default_mapping()
    mapping.stage_aliases = aliases
    control_store().set_mapping(TENANT, mapping)


def _warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.level == logging.WARNING and entry.dagster_event is None
    ]


def test_alias_keeps_scores(tenant):
    instance, before = tenant
    _set_mapping({"Qualifying": "Qualification"})
    result = _materialize(instance)
    assert result.success
    metadata = result.asset_materializations_for_node("stg_opportunity")[0].metadata
    assert metadata["unmapped_picklist_values"].value == {}
    with _connect() as conn:
        assert conn.execute(SCORE_SQL).fetchall() == before
        assert len(pending_changes(conn)) == 0
        stages = conn.execute(
            "SELECT deal_id, stage_name, canonical_stage FROM deal WHERE deal_id IN ? ORDER BY 1",
            [list(RENAMED)],
        ).fetchall()
    assert stages == [
        ("006ACTIVE", "Qualifying", "Qualification"),
        ("006QUIET", "Qualifying", "Qualification"),
    ]
    assert [m for m in _warnings(instance, result.run_id) if "unmapped" in m] == []


def test_missing_alias_warns_once(tenant):
    instance, _ = tenant
    result = _materialize(instance)
    assert result.success
    staging = result.asset_materializations_for_node("stg_opportunity")[0].metadata
    assert staging["unmapped_picklist_values"].value == {"Opportunity.StageName": 2}
    assert staging["unmapped_picklist_total"].value == 2
    assert staging["unmapped_picklist_value_counts"].value == {
        "Opportunity.StageName": {"Qualifying": 2}
    }
    deal = result.asset_materializations_for_node("deal")[0].metadata
    assert deal["unmapped_picklist_values"].value == {"Opportunity.StageName": 2}
    assert deal["dagster/row_count"].value == 7

    warnings = [
        m for m in _warnings(instance, result.run_id) if "unmapped stage values" in m
    ]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "tenant globex: unmapped stage values in stg_opportunity, 2 records given the "
        "fallback category open (order 1): Opportunity.StageName: 'Qualifying' (2)."
    )
    with _connect() as conn:
        rows = conn.execute(
            "SELECT deal_id, canonical_stage, stage_category, stage_order, is_stage_mapped "
            "FROM deal WHERE deal_id IN ? ORDER BY 1",
            [list(RENAMED)],
        ).fetchall()
        scored = conn.execute(
            "SELECT count(*) FROM momentum_score WHERE deal_id IN ? AND score IS NOT NULL",
            [list(RENAMED)],
        ).fetchone()[0]
    assert rows == [
        ("006ACTIVE", "Qualifying", "open", 1, False),
        ("006QUIET", "Qualifying", "open", 1, False),
    ]
    assert scored == 2
