"""The momentum score: a transparent 0-100 score per open deal, with factors and one action."""

from routiine_pipeline.scoring.actions import ACTION_LABELS, Recommendation
from routiine_pipeline.scoring.factors import FactorResult
from routiine_pipeline.scoring.score import (
    DealScore,
    score_deal,
    score_deals_as_of,
    score_open_deals,
)
from routiine_pipeline.scoring.store import (
    HISTORY_TABLE,
    SCORE_TABLE,
    ScoreWriteSummary,
    write_scores,
)
from routiine_pipeline.scoring.weights import MomentumWeights

__all__ = [
    "ACTION_LABELS",
    "HISTORY_TABLE",
    "SCORE_TABLE",
    "DealScore",
    "FactorResult",
    "MomentumWeights",
    "Recommendation",
    "ScoreWriteSummary",
    "score_deal",
    "score_deals_as_of",
    "score_open_deals",
    "write_scores",
]
