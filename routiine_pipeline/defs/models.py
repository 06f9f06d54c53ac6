"""One Dagster asset per SQL model in `dbt_like_sql/`, partitioned by tenant.

Each asset writes the tenant's mapping tables, rebuilds its table with
`CREATE OR REPLACE TABLE ... AS <sql>` and runs the header's data tests as
asset checks in the same step, so the checks see exactly the table that was
just built. Dependencies come from the tables the SQL reads.
"""

import logging
from collections.abc import Iterator

import dagster as dg

from routiine_pipeline.defs.partitions import (
    tenant_from_tenant_month,
    tenant_partitions,
)
from routiine_pipeline.defs.resources import TenantWarehouse
from routiine_pipeline.mapping import TenantMapping, default_mapping
from routiine_pipeline.models import (
    ModelProject,
    ModelRunResult,
    SqlModel,
    load_models,
    run_model,
    run_model_tests,
    write_mapping_tables,
)
from routiine_pipeline.models.checks import check_descriptions
from routiine_pipeline.models.runner import reports_unmapped_first, unmapped_warning
from routiine_pipeline.models.sources import is_raw_table, raw_asset_path

log = logging.getLogger(__name__)

MODELS_GROUP = "models"


def load_tenant_mapping(tenant: str) -> TenantMapping:
    """Return the tenant's mapping from the control store, or the default mapping.

    Args:
        tenant: The tenant id (partition key).

    Returns:
        The TenantMapping that the SQL models should use.
    """
    # TODO: import routiine_pipeline.control at module level and drop this
    # fallback, which only serves checkouts without the control store.
    try:
        from routiine_pipeline.control import load_tenant_mapping as load_from_control
    except ImportError:
        log.warning(
            "control store not available; tenant %s uses the default mapping", tenant
        )
        return default_mapping()
    return load_from_control(tenant)


def _model_deps(project: ModelProject, model: SqlModel) -> list[dg.AssetDep]:
    deps = []
    for table in model.upstream_tables:
        if table in project.models:
            deps.append(dg.AssetDep(dg.AssetKey([table])))
        elif is_raw_table(table):
            deps.append(
                dg.AssetDep(
                    dg.AssetKey(raw_asset_path(table)),
                    partition_mapping=tenant_from_tenant_month,
                )
            )
        # map_* tables are written by the asset itself, so they are no dependency.
    return deps


def _asset_key_of(project: ModelProject, table: str) -> dg.AssetKey | None:
    if table in project.models:
        return dg.AssetKey([table])
    if is_raw_table(table):
        return dg.AssetKey(raw_asset_path(table))
    return None


def column_lineage(project: ModelProject, model: SqlModel) -> dg.TableColumnLineage:
    """Build Dagster column lineage from the model's sqlglot lineage.

    Args:
        project: The loaded models, to map tables to asset keys.
        model: The model whose output columns are described.

    Returns:
        Lineage to raw and model assets; mapping-table sources are left out
        because they are not assets.
    """
    deps_by_column = {}
    for column in model.output_columns:
        deps = []
        for source in model.column_lineage.get(column, ()):
            key = _asset_key_of(project, source.table)
            if key is not None:
                deps.append(dg.TableColumnDep(asset_key=key, column_name=source.column))
        deps_by_column[column] = deps
    return dg.TableColumnLineage(deps_by_column=deps_by_column)


def materialization_metadata(
    project: ModelProject, model: SqlModel, result: ModelRunResult
) -> dict[str, object]:
    """Build the metadata recorded with each materialization of a model asset."""
    descriptions = model.config.column_descriptions
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, kind, description=descriptions.get(name))
            for name, kind in result.column_types
        ]
    )
    unmapped = result.unmapped_counts()
    metadata: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(result.row_count),
        "dagster/partition_row_count": dg.MetadataValue.int(result.row_count),
        "dagster/table_name": dg.MetadataValue.text(model.name),
        "dagster/column_schema": dg.MetadataValue.table_schema(schema),
        "dagster/column_lineage": dg.MetadataValue.column_lineage(
            column_lineage(project, model)
        ),
        "unmapped_picklist_values": dg.MetadataValue.json(unmapped),
        "unmapped_picklist_total": dg.MetadataValue.int(len(result.unmapped)),
        "unmapped_picklist_value_counts": dg.MetadataValue.json(
            result.unmapped_value_counts()
        ),
    }
    if result.unmapped:
        lines = ["| object | field | record id | value |", "|---|---|---|---|"]
        lines += [
            f"| {v.object} | {v.field} | {v.record_id} | {v.value} |"
            for v in result.unmapped[:20]
        ]
        metadata["unmapped_examples"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


def _check_specs(model: SqlModel) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name,
            asset=dg.AssetKey([model.name]),
            description=description,
            blocking=model.config.blocking,
            partitions_def=tenant_partitions,
        )
        for name, description in check_descriptions(model).items()
    ]


def build_model_asset(project: ModelProject, model: SqlModel) -> dg.AssetsDefinition:
    """Build the asset that rebuilds one model table per tenant, with its checks.

    Args:
        project: The loaded models.
        model: The model to build.

    Returns:
        The AssetsDefinition, keyed by the model name, in group "models".
    """
    severity = (
        dg.AssetCheckSeverity.ERROR
        if model.config.blocking
        else dg.AssetCheckSeverity.WARN
    )

    @dg.asset(
        name=model.name,
        group_name=MODELS_GROUP,
        partitions_def=tenant_partitions,
        deps=_model_deps(project, model),
        description=model.config.description,
        kinds={"duckdb", "sql"},
        check_specs=_check_specs(model),
        metadata={
            "sql_file": dg.MetadataValue.path(str(model.path)),
            "grain": model.config.grain or "",
        },
    )
    def _model_asset(
        context: dg.AssetExecutionContext, warehouse: TenantWarehouse
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        tenant = context.partition_key
        mapping = load_tenant_mapping(tenant)
        with warehouse.connect(
            tenant, holder=context.run_id, instance=context.instance
        ) as conn:
            write_mapping_tables(conn, tenant, mapping)
            result = run_model(conn, model, tenant, mapping)
            outcomes = run_model_tests(conn, model)
        context.log.info(
            f"tenant {tenant}: built {model.name} with {result.row_count} rows"
        )
        message = unmapped_warning(tenant, result, mapping)
        if message and reports_unmapped_first(project, model.name):
            context.log.warning(message)
        elif message:
            context.log.info(
                f"tenant {tenant}: {model.name} carries {len(result.unmapped)} records "
                f"with unmapped values, already reported by its staging model: "
                f"{result.unmapped_counts()}"
            )
        yield dg.MaterializeResult(
            metadata=materialization_metadata(project, model, result)
        )
        for outcome in outcomes:
            if not outcome.passed:
                context.log.warning(
                    f"tenant {tenant}: check {outcome.name} of {model.name} failed on "
                    f"{outcome.failing_rows} rows, for example {list(outcome.examples)}"
                )
            yield dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                severity=severity,
                metadata={
                    "failing_rows": outcome.failing_rows,
                    "examples": dg.MetadataValue.json(list(outcome.examples)),
                },
            )

    return _model_asset


def build_model_assets(
    project: ModelProject | None = None,
) -> list[dg.AssetsDefinition]:
    """Build one asset per SQL model, in dependency order.

    Args:
        project: The loaded models; loads `dbt_like_sql/` when None.

    Returns:
        The model assets, each with its data tests attached as asset checks.
    """
    project = project or load_models()
    return [build_model_asset(project, model) for model in project.models.values()]


def model_asset_checks(project: ModelProject | None = None) -> list[dg.AssetCheckSpec]:
    """List the asset checks of every model asset.

    The checks are already part of the assets from build_model_assets, which
    emit their results; pass these specs to nothing else.

    Args:
        project: The loaded models; loads `dbt_like_sql/` when None.

    Returns:
        One AssetCheckSpec per declared data test.
    """
    project = project or load_models()
    return [spec for model in project.models.values() for spec in _check_specs(model)]
