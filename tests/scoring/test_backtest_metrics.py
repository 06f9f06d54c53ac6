"""ROC AUC by the rank formula and win rate per score bucket, on hand-checked cases."""

from __future__ import annotations

import pytest

from routiine_pipeline.scoring.backtest import Bucket, roc_auc, score_buckets


@pytest.mark.parametrize(
    ("scores", "won", "expected"),
    [
        ([10, 20, 30, 40], [False, False, True, True], 1.0),
        ([10, 20, 30, 40], [True, True, False, False], 0.0),
        ([50, 50, 50, 50], [True, False, True, False], 0.5),
        # Pairs (won, lost): (30,10) (30,20) (15,10) (15,20) -> 3 of 4 ordered.
        ([10, 30, 20, 15], [False, True, False, True], 0.75),
        # A tie between a won and a lost deal counts one half: (40,40) and (40,10).
        ([40, 40, 10], [True, False, False], 0.75),
    ],
)
def test_roc_auc_cases(scores, won, expected):
    assert roc_auc(scores, won) == expected


def test_roc_auc_needs_both_outcomes():
    with pytest.raises(ValueError, match="at least one won and one lost"):
        roc_auc([1, 2], [True, True])


def test_buckets_count_wins():
    buckets = score_buckets(
        [0, 9, 10, 55, 59, 90, 100], [True, False, False, True, True, False, True]
    )
    assert buckets[0] == Bucket(0, 9, 2, 1)
    assert buckets[1] == Bucket(10, 19, 1, 0)
    assert buckets[5] == Bucket(50, 59, 2, 2)
    assert buckets[9] == Bucket(90, 100, 2, 1)
    assert [b.deals for b in buckets] == [2, 1, 0, 0, 0, 2, 0, 0, 0, 2]
    assert buckets[0].win_rate == 0.5
    assert buckets[2].win_rate is None


def test_buckets_reject_out_of_range():
    with pytest.raises(ValueError, match="score 101 is outside 0..100"):
        score_buckets([101], [True])
