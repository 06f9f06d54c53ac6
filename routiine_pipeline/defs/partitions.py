"""Partitions: tenants are dynamic, raw extracts are tenant x month of SystemModstamp."""

from __future__ import annotations

import dagster as dg

from routiine_pipeline.settings import history_start

TENANT_PARTITIONS_NAME = "routiine_tenants"

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS_NAME)

# end_offset=1 adds the current, still open month, which incremental cycles write to.
month_partitions = dg.MonthlyPartitionsDefinition(
    start_date=history_start(), end_offset=1
)

tenant_month_partitions = dg.MultiPartitionsDefinition(
    {"tenant": tenant_partitions, "month": month_partitions}
)

# Downstream models read every month of one tenant.
tenant_from_tenant_month = dg.MultiToSingleDimensionPartitionMapping(
    partition_dimension_name="tenant"
)
