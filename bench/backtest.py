"""Backtest the momentum score on the demo org's closed deals.

Builds the demo org's records, loads them into the raw tables of a fresh
DuckDB file, builds the SQL models, then scores every closed deal with
`score_deals_as_of` at 25%, 50% and 75% of the way from its creation to
its close. It compares the scores with the outcome (won or lost) by ROC AUC
and by win rate per 10-point score bucket, prints the figures and draws
docs/momentum-backtest.png.

    python bench/backtest.py [--plot docs/momentum-backtest.png]

Each scoring time is rounded down to the start of its UTC day, so deals
closing around the same days share one `score_deals_as_of` call. Rounding
down never lets information from after the exact point in.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from routiine_pipeline.emulator.demo_org import build_demo_records
from routiine_pipeline.mapping import default_mapping
from routiine_pipeline.models import load_models, run_models
from routiine_pipeline.models.raw_rows import create_raw_tables, insert_raw
from routiine_pipeline.scoring import score_deals_as_of
from routiine_pipeline.scoring.backtest import roc_auc, score_buckets
from routiine_pipeline.storage.raw_tables import column_name, raw_table_name

ANCHOR = datetime(2018, 1, 1, tzinfo=UTC)
POINTS = (0.25, 0.50, 0.75)
DEFAULT_PLOT = Path(__file__).resolve().parents[1] / "docs" / "momentum-backtest.png"

# Close time: when the deal first entered a won or lost stage, else its close date.
_CLOSED_DEALS_SQL = """
select d.deal_id, d.created_at, d.stage_category = 'won' as won,
    coalesce(
        (select min(h.entered_at) from deal_stage_history as h
         where h.deal_id = d.deal_id and h.stage_category in ('won', 'lost')),
        d.close_date::timestamptz
    ) as closed_at
from deal as d
where d.stage_category in ('won', 'lost')
order by d.deal_id
"""


def build_demo_tenant(path: Path) -> duckdb.DuckDBPyConnection:
    """Load the demo org into the raw tables of a new DuckDB file and build the models."""
    conn = duckdb.connect(str(path))
    conn.execute("SET TimeZone = 'UTC'")
    create_raw_tables(conn)
    for sobject, records in build_demo_records(ANCHOR).items():
        table = raw_table_name(sobject)
        columns = {row[0] for row in conn.execute(f"DESCRIBE {table}").fetchall()}
        # Formula fields such as Days_Open__c are never extracted, so raw tables lack them.
        kept = [
            {k: v for k, v in r.items() if column_name(k) in columns} for r in records
        ]
        insert_raw(conn, sobject, kept)
    run_models(conn, load_models(), "demo", default_mapping())
    return conn


def score_closed_deals(
    conn: duckdb.DuckDBPyConnection,
) -> dict[float, list[tuple[int, bool]]]:
    """Score each closed deal at each point of its life.

    Returns:
        (score, won) pairs per point. Deals with a NULL score at a point,
        or created after the rounded scoring time, are left out of it.
    """
    requests: dict[datetime, list[tuple[float, str, bool]]] = defaultdict(list)
    for deal_id, created_at, won, closed_at in conn.execute(
        _CLOSED_DEALS_SQL
    ).fetchall():
        if closed_at is None or closed_at <= created_at:
            continue
        for point in POINTS:
            moment = created_at + (closed_at - created_at) * point
            day = moment.astimezone(UTC).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
            requests[day].append((point, deal_id, won))
    results: dict[float, list[tuple[int, bool]]] = {point: [] for point in POINTS}
    for day in sorted(requests):
        scores = {s.deal_id: s.score for s in score_deals_as_of(conn, day)}
        for point, deal_id, won in requests[day]:
            score = scores.get(deal_id)
            if score is not None:
                results[point].append((score, won))
    return results


def plot(results: dict[float, list[tuple[int, bool]]], path: Path) -> None:
    """Draw win rate per score bucket for each point, with the deal counts, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rates, counts) = plt.subplots(1, 2, figsize=(11, 4.2))
    for point, pairs in results.items():
        buckets = score_buckets([s for s, _ in pairs], [w for _, w in pairs])
        centres = [(b.low + b.high) / 2 for b in buckets if b.deals >= 20]
        rate = [b.win_rate for b in buckets if b.deals >= 20]
        auc = roc_auc([s for s, _ in pairs], [w for _, w in pairs])
        rates.plot(
            centres, rate, marker="o", label=f"{point:.0%} of life (AUC {auc:.3f})"
        )
        counts.plot(
            [(b.low + b.high) / 2 for b in buckets],
            [b.deals for b in buckets],
            marker=".",
            label=f"{point:.0%} of life",
        )
    rates.set(
        xlabel="momentum score bucket",
        ylabel="win rate",
        xlim=(0, 100),
        ylim=(0, 1),
        title="Win rate per 10-point bucket (buckets with 20+ deals)",
    )
    counts.set(
        xlabel="momentum score bucket",
        ylabel="closed deals",
        xlim=(0, 100),
        title="Deals per bucket",
    )
    rates.legend(fontsize=8)
    counts.legend(fontsize=8)
    rates.grid(alpha=0.3)
    counts.grid(alpha=0.3)
    figure.suptitle("Momentum score backtest on the demo org's closed deals")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="PNG to write")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="routiine-backtest-") as folder:
        conn = build_demo_tenant(Path(folder) / "demo.duckdb")
        results = score_closed_deals(conn)
        conn.close()
    for point, pairs in results.items():
        scores = [s for s, _ in pairs]
        won = [w for _, w in pairs]
        print(
            f"\n{point:.0%} of life: {len(pairs)} deals, {sum(won)} won, "
            f"ROC AUC {roc_auc(scores, won):.3f}"
        )
        print("bucket   deals   won  win rate")
        for bucket in score_buckets(scores, won):
            rate = "" if bucket.win_rate is None else f"{bucket.win_rate:.2f}"
            print(
                f"{bucket.low:>3}-{bucket.high:<3} {bucket.deals:>7} {bucket.won:>5}  {rate:>8}"
            )
    everything = [pair for pairs in results.values() for pair in pairs]
    print(
        f"\nall points: {len(everything)} scores, ROC AUC "
        f"{roc_auc([s for s, _ in everything], [w for _, w in everything]):.3f}"
    )
    plot(results, args.plot)
    print(f"plot written to {args.plot}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
