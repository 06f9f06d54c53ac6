"""Combine factors into the 0-100 momentum score of each deal, with its explanation.

score = round(50 + 50 * sum(w_i * v_i) / sum(w_i)), where v_i in [-1, 1] is
a factor's normalised value and w_i its weight. 50 is neutral, and each
factor's contribution is its share of the distance from 50, in score points.
A factor that could not be computed contributes 0 but keeps its weight in
the denominator, so a missing value counts as neutral instead of dropping
out of the average.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from routiine_pipeline.scoring.actions import format_next_best_action, recommend_action
from routiine_pipeline.scoring.factors import FactorResult, compute_factors
from routiine_pipeline.scoring.signals import (
    DealSignals,
    StageBenchmark,
    read_deal_signals,
    read_stage_benchmarks,
)
from routiine_pipeline.scoring.weights import UPCOMING_MEETING_DAYS, MomentumWeights

log = logging.getLogger(__name__)

TOP_FACTOR_COUNT = 3


@dataclass
class DealScore:
    """The momentum score of one deal at one time, with everything needed to explain it."""

    deal_id: str
    as_of: datetime
    is_open: bool
    score: int | None
    score_null_reason: str | None
    factors: list[FactorResult]
    top_factors: list[str]
    recommended_action: str | None
    next_best_action: str | None
    flags: list[str] = field(default_factory=list)

    def factors_json(self) -> str:
        """Serialise each factor's raw value, normalised value, weight and contribution."""
        payload = {
            factor.name: {
                "raw": factor.raw,
                "normalised": None
                if factor.normalised is None
                else round(factor.normalised, 4),
                "weight": factor.weight,
                "contribution": round(factor.contribution, 2),
                "text": factor.text,
                "skipped_reason": factor.skipped_reason,
            }
            for factor in self.factors
        }
        return json.dumps(payload, sort_keys=True, default=str)


def _validate_as_of(as_of: datetime) -> None:
    if as_of.tzinfo is None:
        raise ValueError(f"as_of must be timezone-aware, got naive {as_of.isoformat()}")


def score_deal(
    deal: DealSignals,
    benchmarks: dict[str, StageBenchmark],
    as_of: datetime,
    weights: MomentumWeights,
) -> DealScore:
    """Score one deal from its signals.

    Args:
        deal: The deal's signals as of `as_of`.
        benchmarks: Won-deal medians by canonical stage.
        as_of: The scoring time.
        weights: Relative factor weights.

    Returns:
        The DealScore. Its score is None, with a reason, when no factor with a
        positive weight could be computed. Closed deals get no action.
    """
    factors = compute_factors(deal, benchmarks, as_of)
    weight_of = weights.as_dict()
    usable = [f for f in factors if f.normalised is not None and weight_of[f.name] > 0]
    total_weight = sum(weight_of.values())
    flags = sorted({flag for f in factors for flag in f.flags})

    for factor in factors:
        factor.weight = weight_of[factor.name]
    if not usable:
        score = None
        null_reason = "no factor with a positive weight could be computed"
    else:
        for factor in usable:
            factor.contribution = (
                50.0 * factor.weight * factor.normalised / total_weight
            )
        raw_score = 50.0 + sum(f.contribution for f in usable)
        if not math.isfinite(raw_score):
            # Guard only: factors are clamped, so this means a bug upstream.
            score, null_reason = None, f"score is not a finite number ({raw_score})"
        else:
            score, null_reason = max(0, min(100, round(raw_score))), None

    ranked = sorted(
        (f for f in usable if f.contribution != 0),
        key=lambda f: (-abs(f.contribution), f.name),
    )
    top_factors = [f.text for f in ranked[:TOP_FACTOR_COUNT]]

    action = next_best_action = None
    if deal.is_open:
        recommendation = recommend_action(deal, {f.name: f for f in factors}, as_of)
        action = recommendation.action
        next_best_action = format_next_best_action(recommendation, score, top_factors)
    return DealScore(
        deal_id=deal.deal_id,
        as_of=as_of,
        is_open=deal.is_open,
        score=score,
        score_null_reason=null_reason,
        factors=factors,
        top_factors=top_factors,
        recommended_action=action,
        next_best_action=next_best_action,
        flags=flags,
    )


def score_open_deals(
    conn: duckdb.DuckDBPyConnection,
    as_of: datetime,
    weights: MomentumWeights | None = None,
) -> list[DealScore]:
    """Score every open deal from its current Salesforce values.

    Args:
        conn: The tenant's DuckDB connection with deal, event, deal_change and
            deal_stage_history built.
        as_of: The scoring time, timezone-aware; normally now.
        weights: Factor weights; the defaults when None.

    Returns:
        One DealScore per open deal created by `as_of`, ordered by deal_id.
    """
    _validate_as_of(as_of)
    weights = weights or MomentumWeights()
    deals = read_deal_signals(conn, as_of, False, UPCOMING_MEETING_DAYS)
    benchmarks = read_stage_benchmarks(conn, as_of)
    scores = [score_deal(d, benchmarks, as_of, weights) for d in deals if d.is_open]
    log.info("scored %d open deals as of %s", len(scores), as_of.isoformat())
    return scores


def score_deals_as_of(
    conn: duckdb.DuckDBPyConnection,
    as_of: datetime,
    weights: MomentumWeights | None = None,
) -> list[DealScore]:
    """Score every deal, open or closed, as it stood at a past time.

    Stage, amount and close date come from OpportunityHistory rows written by
    `as_of`; activity, pushes and won-deal medians are cut at `as_of` too. A
    backtest can call this at points in a closed deal's life and compare the
    scores with the outcome.

    Args:
        conn: The tenant's DuckDB connection with the model tables built.
        as_of: The scoring time, timezone-aware.
        weights: Factor weights; the defaults when None.

    Returns:
        One DealScore per deal created by `as_of`, ordered by deal_id.
    """
    _validate_as_of(as_of)
    weights = weights or MomentumWeights()
    deals = read_deal_signals(conn, as_of, True, UPCOMING_MEETING_DAYS)
    benchmarks = read_stage_benchmarks(conn, as_of)
    return [score_deal(d, benchmarks, as_of, weights) for d in deals]
