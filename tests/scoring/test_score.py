"""Scores of the open deals in the scoring scenario, and scoring at past times."""

from __future__ import annotations

import json
import math

import pytest
from scoring_scenario import AS_OF, days_before

from routiine_pipeline.scoring import (
    MomentumWeights,
    score_deals_as_of,
    score_open_deals,
)


def by_id(scores):
    return {score.deal_id: score for score in scores}


def test_scores_exact(scored_db):
    scores = by_id(score_open_deals(scored_db, AS_OF))
    assert {deal_id: s.score for deal_id, s in scores.items()} == {
        "006ACTIVE": 76,
        "006NULLS": 76,
        "006PUSHED": 71,
        "006QUIET": 47,
    }


def test_quiet_below_active(scored_db):
    scores = by_id(score_open_deals(scored_db, AS_OF))
    assert scores["006QUIET"].score < scores["006ACTIVE"].score


def test_pushes_lower_score(scored_db):
    scores = by_id(score_open_deals(scored_db, AS_OF))
    assert scores["006PUSHED"].score < scores["006ACTIVE"].score
    assert scores["006PUSHED"].recommended_action == "update_close_date"


def test_missing_values_flagged_not_nan(scored_db):
    deal = by_id(score_open_deals(scored_db, AS_OF))["006NULLS"]
    factors = json.loads(deal.factors_json())
    assert deal.flags == ["amount_missing", "close_date_missing"]
    assert factors["amount_change"]["skipped_reason"] == "amount is missing"
    assert factors["close_date_pushes"]["skipped_reason"] == "close date is missing"
    assert factors["amount_change"]["contribution"] == 0.0
    assert isinstance(deal.score, int)
    numbers = [f["contribution"] for f in factors.values()]
    numbers += [
        f["normalised"] for f in factors.values() if f["normalised"] is not None
    ]
    assert all(math.isfinite(n) for n in numbers)
    assert deal.recommended_action == "update_close_date"


def test_top_factors_text(scored_db):
    quiet = by_id(score_open_deals(scored_db, AS_OF))["006QUIET"]
    assert quiet.top_factors == [
        "No stakeholder engaged in the last 30 days",
        "In Qualification for 6 days (won deals: median 10)",
        "Reached Qualification 1.2x slower than won deals",
    ]
    assert quiet.recommended_action == "involve_stakeholders"
    assert (
        quiet.next_best_action
        == "Involve more stakeholders: no stakeholder engaged in 30 days."
    )


def test_factor_record_fields(scored_db):
    active = by_id(score_open_deals(scored_db, AS_OF))["006ACTIVE"]
    recency = json.loads(active.factors_json())["recency"]
    assert recency == {
        "raw": {"days_since_last_event": 1.0, "has_events": True},
        "normalised": 0.9034,
        "weight": 0.25,
        "contribution": 11.29,
        "text": "Last contact 1 day ago",
        "skipped_reason": None,
    }


def test_scoring_is_deterministic(scored_db):
    first = score_open_deals(scored_db, AS_OF)
    second = score_open_deals(scored_db, AS_OF)
    assert [
        (s.deal_id, s.score, s.factors_json(), s.next_best_action) for s in first
    ] == [(s.deal_id, s.score, s.factors_json(), s.next_best_action) for s in second]


def test_weights_change_score(scored_db):
    only_recency = MomentumWeights(
        **{name: 0.0 for name in MomentumWeights().as_dict()} | {"recency": 1.0}
    )
    scores = by_id(score_open_deals(scored_db, AS_OF, only_recency))
    assert scores["006ACTIVE"].score == 95
    # The quiet deal was never contacted, so recency is capped at neutral.
    assert scores["006QUIET"].score == 50


def test_all_weights_zero_gives_null(scored_db):
    zero = MomentumWeights(**{name: 0.0 for name in MomentumWeights().as_dict()})
    deal = score_open_deals(scored_db, AS_OF, zero)[0]
    assert deal.score is None
    assert (
        deal.score_null_reason == "no factor with a positive weight could be computed"
    )


def test_negative_weight_rejected():
    with pytest.raises(ValueError, match="recency=-1"):
        MomentumWeights(recency=-1)


def test_naive_as_of_rejected(scored_db):
    with pytest.raises(ValueError, match="timezone-aware"):
        score_open_deals(scored_db, AS_OF.replace(tzinfo=None))


def test_as_of_past_scores_closed_deals(scored_db):
    scores = by_id(score_deals_as_of(scored_db, AS_OF))
    assert sorted(scores) == [
        "006ACTIVE",
        "006NULLS",
        "006PUSHED",
        "006QUIET",
        "006W1",
        "006W2",
        "006W3",
    ]
    assert scores["006W1"].is_open is False
    assert scores["006W1"].recommended_action is None
    assert isinstance(scores["006W1"].score, int)


def test_as_of_rebuilds_past_stage(scored_db):
    # Nine days before AS_OF the open deals were still in Prospecting, and the
    # won deals had already been won, so the benchmarks exist.
    scores = by_id(score_deals_as_of(scored_db, days_before(9)))
    age = json.loads(scores["006QUIET"].factors_json())["stage_age"]
    assert age["raw"] == {
        "stage": "Prospecting",
        "days_in_stage": 3.0,
        "won_median_days": 5.0,
    }
    assert age["normalised"] == 0.4
    assert "006ACTIVE" in scores
    before_creation = score_deals_as_of(scored_db, days_before(13))
    assert [s.deal_id for s in before_creation] == ["006W1", "006W2", "006W3"]
