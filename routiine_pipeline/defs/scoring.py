"""The momentum_score asset: score every open deal of a tenant and keep the history."""

from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.resources import TenantWarehouse
from routiine_pipeline.scoring import (
    SCORE_TABLE,
    MomentumWeights,
    score_open_deals,
    write_scores,
)
from routiine_pipeline.scoring.inputs import score_column_inputs

SCORING_GROUP = "scoring"
SCORE_RANGE_CHECK = "score_range"
_DEFAULT_WEIGHTS = MomentumWeights()


class MomentumScoreConfig(dg.Config):
    """Run configuration: the scoring time and the factor weights (relative, >= 0)."""

    as_of: str | None = Field(
        default=None,
        description="ISO 8601 time to score as of, with a zone offset; now in UTC when unset.",
    )
    recency: float = _DEFAULT_WEIGHTS.recency
    activity_trend: float = _DEFAULT_WEIGHTS.activity_trend
    two_way_engagement: float = _DEFAULT_WEIGHTS.two_way_engagement
    contact_breadth: float = _DEFAULT_WEIGHTS.contact_breadth
    stage_velocity: float = _DEFAULT_WEIGHTS.stage_velocity
    stage_age: float = _DEFAULT_WEIGHTS.stage_age
    close_date_pushes: float = _DEFAULT_WEIGHTS.close_date_pushes
    amount_change: float = _DEFAULT_WEIGHTS.amount_change

    def weights(self) -> MomentumWeights:
        return MomentumWeights(
            **{f.name: getattr(self, f.name) for f in fields(MomentumWeights)}
        )

    def as_of_time(self, now: datetime) -> datetime:
        """Return the configured as_of in UTC, or `now` when unset."""
        if not self.as_of:
            return now
        parsed = datetime.fromisoformat(self.as_of)
        if parsed.tzinfo is None:
            raise ValueError(
                f"as_of {self.as_of!r} has no zone offset; add one, for example '+00:00'"
            )
        return parsed.astimezone(UTC)


_PREVIEW_SQL = f"""
select s.deal_id, d.name, s.score, s.recommended_action, s.top_factors[1] as top_factor
from {SCORE_TABLE} as s
left join deal as d on d.deal_id = s.deal_id
order by s.score desc nulls last, s.deal_id
limit 10
"""


def score_column_lineage() -> dg.TableColumnLineage:
    """Build the asset's column lineage from the declared score inputs (scoring/inputs.py)."""
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(
                    asset_key=dg.AssetKey([s.table]), column_name=s.column
                )
                for s in inputs
            ]
            for column, inputs in score_column_inputs().items()
            if inputs
        }
    )


def score_column_schema(conn) -> dg.TableSchema:
    """Describe the momentum_score table as DuckDB stores it."""
    rows = conn.execute(f"DESCRIBE {SCORE_TABLE}").fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(row[0], row[1]) for row in rows])


def _preview_markdown(rows: list[tuple]) -> str:
    lines = ["| deal | name | score | action | top factor |", "|---|---|---|---|---|"]
    for deal_id, name, score, action, top_factor in rows:
        lines.append(
            f"| {deal_id} | {name or ''} | {score} | {action} | {top_factor or ''} |"
        )
    return "\n".join(lines)


@dg.asset(
    name="momentum_score",
    group_name=SCORING_GROUP,
    partitions_def=tenant_partitions,
    deps=[
        dg.AssetKey(["deal"]),
        dg.AssetKey(["event"]),
        dg.AssetKey(["deal_change"]),
        dg.AssetKey(["deal_stage_history"]),
    ],
    kinds={"duckdb", "python"},
    metadata={
        "dagster/column_lineage": dg.MetadataValue.column_lineage(
            score_column_lineage()
        ),
    },
    check_specs=[
        dg.AssetCheckSpec(
            SCORE_RANGE_CHECK,
            asset=dg.AssetKey(["momentum_score"]),
            description="every score is an integer from 0 to 100, or NULL with a reason",
            blocking=True,
            partitions_def=tenant_partitions,
        )
    ],
)
def momentum_score(
    context: dg.AssetExecutionContext,
    config: MomentumScoreConfig,
    warehouse: TenantWarehouse,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Score every open deal of the tenant from 0 to 100, with its top factors and one action.

    Writes `momentum_score` (one row per open deal, replaced each run) and
    appends the same rows to `momentum_score_history`. The metadata value
    `changed_scores` counts deals whose score or action changed since the
    previous run; the Salesforce write-back reads it.
    """
    tenant = context.partition_key
    computed_at = datetime.now(UTC)
    as_of = config.as_of_time(computed_at)
    weights = config.weights()
    with warehouse.connect(
        tenant, holder=context.run_id, instance=context.instance
    ) as conn:
        scores = score_open_deals(conn, as_of, weights)
        summary = write_scores(conn, scores, computed_at)
        preview = conn.execute(_PREVIEW_SQL).fetchall()
        schema = score_column_schema(conn)
        out_of_range = conn.execute(
            f"SELECT count(*) FROM {SCORE_TABLE} WHERE (score IS NULL AND "
            "score_null_reason IS NULL) OR score < 0 OR score > 100"
        ).fetchone()[0]
    context.log.info(
        f"tenant {tenant}: scored {summary.deals_scored} open deals as of "
        f"{as_of.isoformat()}, {summary.changed_scores} changed"
    )
    if summary.null_scores:
        context.log.warning(
            f"tenant {tenant}: {summary.null_scores} deals have no score"
        )
    yield dg.MaterializeResult(
        metadata={
            "deals_scored": summary.deals_scored,
            "null_scores": summary.null_scores,
            "changed_scores": summary.changed_scores,
            "score_min": dg.MetadataValue.int(summary.min_score)
            if summary.min_score is not None
            else dg.MetadataValue.null(),
            "score_median": dg.MetadataValue.float(summary.median_score)
            if summary.median_score is not None
            else dg.MetadataValue.null(),
            "score_max": dg.MetadataValue.int(summary.max_score)
            if summary.max_score is not None
            else dg.MetadataValue.null(),
            "action_counts": dg.MetadataValue.json(summary.action_counts),
            "as_of": dg.MetadataValue.timestamp(as_of),
            "weights": dg.MetadataValue.json(weights.as_dict()),
            "top_deals": dg.MetadataValue.md(_preview_markdown(preview)),
            "dagster/row_count": summary.deals_scored,
            "dagster/table_name": SCORE_TABLE,
            "dagster/column_schema": dg.MetadataValue.table_schema(schema),
            "dagster/column_lineage": dg.MetadataValue.column_lineage(
                score_column_lineage()
            ),
        }
    )
    yield dg.AssetCheckResult(
        check_name=SCORE_RANGE_CHECK,
        passed=out_of_range == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"invalid_rows": out_of_range},
    )
