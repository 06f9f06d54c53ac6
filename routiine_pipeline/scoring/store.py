"""Store scores in `momentum_score` (latest) and `momentum_score_history` (every run)."""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from routiine_pipeline.scoring.score import DealScore

log = logging.getLogger(__name__)

SCORE_TABLE = "momentum_score"
HISTORY_TABLE = "momentum_score_history"

_COLUMNS = """
    deal_id VARCHAR NOT NULL,
    score INTEGER,
    score_null_reason VARCHAR,
    factors JSON NOT NULL,
    top_factors VARCHAR[] NOT NULL,
    recommended_action VARCHAR,
    next_best_action VARCHAR,
    flags VARCHAR[] NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
"""


# Casts make the column types explicit, because a DataFrame column of None
# values alone has no type DuckDB could infer.
_INSERT_SELECT = """
SELECT
    deal_id::VARCHAR, score::INTEGER, score_null_reason::VARCHAR, factors::JSON,
    top_factors::VARCHAR[], recommended_action::VARCHAR, next_best_action::VARCHAR,
    flags::VARCHAR[], as_of::TIMESTAMPTZ, computed_at::TIMESTAMPTZ
FROM _new_scores
"""


@dataclass(frozen=True)
class ScoreWriteSummary:
    """Counts and spread of one write, for run metadata."""

    deals_scored: int
    null_scores: int
    changed_scores: int
    min_score: int | None
    median_score: float | None
    max_score: int | None
    action_counts: dict[str, int]


def ensure_score_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the score tables if they do not exist."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {SCORE_TABLE} ({_COLUMNS}, PRIMARY KEY (deal_id))"
    )
    conn.execute(f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ({_COLUMNS})")


def previous_scores(
    conn: duckdb.DuckDBPyConnection,
) -> dict[str, tuple[int | None, str | None]]:
    """Return the (score, action) of each deal in the current momentum_score table."""
    ensure_score_tables(conn)
    rows = conn.execute(
        f"SELECT deal_id, score, recommended_action FROM {SCORE_TABLE}"
    ).fetchall()
    return {deal_id: (score, action) for deal_id, score, action in rows}


def count_changed(
    scores: list[DealScore], previous: dict[str, tuple[int | None, str | None]]
) -> int:
    """Count deals that are new or whose score or action differs from `previous`.

    Deals that left the table (closed or deleted) are not counted, because
    the write-back has nothing to send for them.
    """
    return sum(
        1
        for s in scores
        if previous.get(s.deal_id, ("missing", "missing"))
        != (s.score, s.recommended_action)
    )


def _score_frame(scores: list[DealScore], computed_at: datetime) -> pd.DataFrame:
    """Build one DataFrame of score rows, inserted in one statement.

    executemany inserts row by row, which takes minutes for a million deals.
    """
    columns = {
        "deal_id": [s.deal_id for s in scores],
        "score": [s.score for s in scores],
        "score_null_reason": [s.score_null_reason for s in scores],
        "factors": [s.factors_json() for s in scores],
        "top_factors": [list(s.top_factors) for s in scores],
        "recommended_action": [s.recommended_action for s in scores],
        "next_best_action": [s.next_best_action for s in scores],
        "flags": [list(s.flags) for s in scores],
        "as_of": [s.as_of for s in scores],
        "computed_at": [computed_at] * len(scores),
    }
    return pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in columns.items()}
    )


def write_scores(
    conn: duckdb.DuckDBPyConnection, scores: list[DealScore], computed_at: datetime
) -> ScoreWriteSummary:
    """Replace momentum_score with `scores` and append them to momentum_score_history.

    Args:
        conn: The tenant's DuckDB connection.
        scores: The deals scored in this run.
        computed_at: When this run computed them (UTC).

    Returns:
        The summary, including how many deals changed since the last write.
    """
    previous = previous_scores(conn)
    changed = count_changed(scores, previous)
    frame = _score_frame(scores, computed_at)
    conn.register("_new_scores", frame)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {SCORE_TABLE}")
        if scores:
            conn.execute(f"INSERT INTO {SCORE_TABLE} {_INSERT_SELECT}")
            conn.execute(f"INSERT INTO {HISTORY_TABLE} {_INSERT_SELECT}")
        conn.execute("COMMIT")
    except duckdb.Error:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_new_scores")

    values = [s.score for s in scores if s.score is not None]
    actions = Counter(s.recommended_action for s in scores if s.recommended_action)
    summary = ScoreWriteSummary(
        deals_scored=len(scores),
        null_scores=len(scores) - len(values),
        changed_scores=changed,
        min_score=min(values) if values else None,
        median_score=float(statistics.median(values)) if values else None,
        max_score=max(values) if values else None,
        action_counts=dict(sorted(actions.items())),
    )
    log.info(
        "wrote %d scores, %d changed", summary.deals_scored, summary.changed_scores
    )
    return summary
