"""Measures for comparing past scores with outcomes: ROC AUC and win rate per score bucket."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUCKET_WIDTH = 10


@dataclass(frozen=True)
class Bucket:
    """Scored deals whose score fell in [low, high], and how many of them were won."""

    low: int
    high: int
    deals: int
    won: int

    @property
    def win_rate(self) -> float | None:
        return self.won / self.deals if self.deals else None


def roc_auc(scores: list[float], won: list[bool]) -> float:
    """Compute the ROC AUC with the rank-sum (Mann-Whitney U) formula.

    The AUC is the chance that a won deal scored higher than a lost one,
    with ties counted as one half (tied scores get their average rank).

    Args:
        scores: One score per deal.
        won: Whether each deal was won.

    Returns:
        The AUC in [0, 1].

    Raises:
        ValueError: the lists differ in length, or either outcome is missing.
    """
    if len(scores) != len(won):
        raise ValueError(f"{len(scores)} scores but {len(won)} outcomes")
    values = np.asarray(scores, dtype=float)
    positive = np.asarray(won, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(values) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs at least one won and one lost deal")
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    # Tied scores share the mean of the ranks they span.
    unique, inverse = np.unique(values, return_inverse=True)
    mean_rank = np.bincount(inverse, weights=ranks) / np.bincount(inverse)
    ranks = mean_rank[inverse]
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def score_buckets(
    scores: list[int], won: list[bool], width: int = BUCKET_WIDTH
) -> list[Bucket]:
    """Group scores 0-100 into buckets of `width` points and count wins in each.

    The last bucket includes 100 (with width 10: 0-9, 10-19, ..., 90-100).

    Args:
        scores: One integer score per deal, 0 to 100.
        won: Whether each deal was won.
        width: Points per bucket.

    Returns:
        Every bucket in order, empty ones included.
    """
    if len(scores) != len(won):
        raise ValueError(f"{len(scores)} scores but {len(won)} outcomes")
    count = -(-100 // width)
    deals = [0] * count
    wins = [0] * count
    for score, outcome in zip(scores, won, strict=True):
        if not 0 <= score <= 100:
            raise ValueError(f"score {score} is outside 0..100")
        index = min(score // width, count - 1)
        deals[index] += 1
        wins[index] += int(outcome)
    return [
        Bucket(
            i * width, 100 if i == count - 1 else (i + 1) * width - 1, deals[i], wins[i]
        )
        for i in range(count)
    ]
