"""Writing momentum_score and its history, and counting changed scores."""

from __future__ import annotations

from scoring_scenario import AS_OF, utc

from routiine_pipeline.scoring import MomentumWeights, score_open_deals, write_scores


def test_write_then_rewrite(scored_db):
    scores = score_open_deals(scored_db, AS_OF)
    first = write_scores(scored_db, scores, utc(2025, 6, 1, 13))
    assert first.deals_scored == 4
    assert first.changed_scores == 4
    assert (first.min_score, first.median_score, first.max_score) == (47, 73.5, 76)
    assert first.action_counts == {
        "involve_stakeholders": 1,
        "keep_momentum": 1,
        "update_close_date": 2,
    }
    second = write_scores(scored_db, scores, utc(2025, 6, 1, 14))
    assert second.changed_scores == 0
    assert scored_db.execute("select count(*) from momentum_score").fetchone() == (4,)
    assert scored_db.execute(
        "select count(*) from momentum_score_history"
    ).fetchone() == (8,)


def test_changed_scores_counted(scored_db):
    write_scores(scored_db, score_open_deals(scored_db, AS_OF), utc(2025, 6, 1, 13))
    heavy_pushes = MomentumWeights(close_date_pushes=1.0)
    summary = write_scores(
        scored_db, score_open_deals(scored_db, AS_OF, heavy_pushes), utc(2025, 6, 1, 14)
    )
    rows = scored_db.execute(
        "select deal_id, score from momentum_score order by deal_id"
    ).fetchall()
    assert rows == [
        ("006ACTIVE", 64),
        ("006NULLS", 64),
        ("006PUSHED", 37),
        ("006QUIET", 48),
    ]
    assert summary.changed_scores == 4


def test_stored_row(scored_db):
    write_scores(scored_db, score_open_deals(scored_db, AS_OF), utc(2025, 6, 1, 13))
    row = scored_db.execute(
        "select score, top_factors, recommended_action, flags, as_of, computed_at, "
        "factors->>'$.recency.weight' from momentum_score where deal_id = '006NULLS'"
    ).fetchone()
    assert row == (
        76,
        [
            "Last contact 1 day ago",
            "3 stakeholders engaged in the last 30 days",
            "2 inbound replies or meetings in the last 30 days",
        ],
        "update_close_date",
        ["amount_missing", "close_date_missing"],
        AS_OF,
        utc(2025, 6, 1, 13),
        "0.25",
    )
