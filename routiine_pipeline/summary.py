"""The summary a demo or sync prints: rows, watermarks, API calls, top deals, write-back."""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg

from routiine_pipeline import settings
from routiine_pipeline.control.store import open_control_store
from routiine_pipeline.storage.warehouse import open_database

MODEL_TABLES = ("deal", "event", "deal_stage_history", "momentum_score")
PHASES = ("connect", "backfill", "incremental", "quiet", "writeback")


def build_summary(
    *,
    tenant: str,
    instance: dg.DagsterInstance,
    emulator_stats: dict,
    written: dict[str, int],
    changes: dict,
    elapsed_seconds: float,
    since: datetime | None = None,
) -> dict:
    store = open_control_store(settings.control_store_url())
    calls = store.calls_by_phase(tenant, since=since)
    usage = store.latest_usage(tenant)
    with open_database(settings.tenant_database_path(tenant), read_only=True) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
        rows = {}
        for name in sorted(tables):
            if name.startswith("raw_"):
                live, deleted = conn.execute(
                    f"SELECT count(*) FILTER (WHERE _deleted_at IS NULL), count(*) FILTER (WHERE _deleted_at IS NOT NULL) FROM {name}"
                ).fetchone()
                rows[name] = {"rows": live, "tombstones": deleted}
            elif name in MODEL_TABLES:
                rows[name] = {
                    "rows": conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                }
        watermarks = {
            sobject: mark.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            for sobject, mark in conn.execute(
                "SELECT sobject, max(watermark) FROM _watermarks GROUP BY sobject ORDER BY sobject"
            ).fetchall()
            if mark is not None
        }
        top = conn.execute(
            """
            SELECT d.deal_id, d.name, d.stage_name, d.amount, m.score, m.top_factors, m.next_best_action
            FROM momentum_score AS m JOIN deal AS d USING (deal_id)
            WHERE m.score IS NOT NULL
            ORDER BY m.score DESC, d.amount DESC NULLS LAST, d.deal_id
            LIMIT 5
            """
        ).fetchall()
    pipeline_calls = sum(calls.values())
    return {
        "tenant": tenant,
        "elapsed_seconds": round(elapsed_seconds, 1),
        "rows": rows,
        "watermarks": watermarks,
        "api_calls": {
            "by_phase": {phase: calls.get(phase, 0) for phase in PHASES},
            "total_counted_by_budget": pipeline_calls,
            "total_counted_by_emulator": emulator_stats.get("data_api_calls"),
            "org_usage": {"used": usage[0], "max": usage[1]} if usage else None,
        },
        "top_deals": [
            {
                "deal_id": deal_id,
                "name": name,
                "stage": stage,
                "amount": amount,
                "score": score,
                "top_factors": _as_list(factors),
                "next_best_action": action,
            }
            for deal_id, name, stage, amount, score, factors, action in top
        ],
        "scores_written_back": written,
        "changes_applied": changes,
        "dagster_home": str(instance.root_directory)
        if instance.root_directory
        else None,
    }


def _as_list(factors) -> list[str]:
    if isinstance(factors, list):
        return factors
    if isinstance(factors, str):
        try:
            value = json.loads(factors)
            return value if isinstance(value, list) else [factors]
        except ValueError:
            return [part.strip() for part in factors.split(";") if part.strip()]
    return []


def render(summary: dict) -> str:
    """Format the summary as the text block the demo prints."""
    lines = [
        "",
        f"Summary for tenant {summary['tenant']} ({summary['elapsed_seconds']} s)",
        "",
    ]

    lines.append("Rows per table:")
    for table, counts in summary["rows"].items():
        extra = (
            f" (+{counts['tombstones']} deleted)" if counts.get("tombstones") else ""
        )
        lines.append(f"  {table:<26} {counts['rows']:>8,}{extra}")
    lines.append("")

    lines.append("Watermarks (newest SystemModstamp committed):")
    for sobject, mark in summary["watermarks"].items():
        lines.append(f"  {sobject:<20} {mark}")

    calls = summary["api_calls"]
    lines.append("")
    usage = calls["org_usage"]
    limit = (
        f" of a daily limit of {usage['max']:,} (org usage now {usage['used']:,})"
        if usage
        else ""
    )
    lines.append(f"API calls spent: {calls['total_counted_by_budget']}{limit}")
    for phase, count in calls["by_phase"].items():
        label = "writeback (all cycles)" if phase == "writeback" else phase
        lines.append(f"  {label:<24} {count}")
    lines.append(f"  counted by the emulator: {calls['total_counted_by_emulator']}")
    lines.append("")

    lines.append("Top deals by momentum:")
    for deal in summary["top_deals"]:
        amount = (
            f"amount {deal['amount']:,.0f}"
            if deal["amount"] is not None
            else "no amount"
        )
        lines.append(
            f"  {deal['score']:>3}  {deal['name']} ({deal['stage']}, {amount})"
        )
        for factor in deal["top_factors"][:3]:
            lines.append(f"         - {factor}")
        lines.append(f"         next: {deal['next_best_action']}")
    lines.append("")

    written = summary["scores_written_back"]
    lines.append(
        "Scores written back: "
        + ", ".join(f"{phase} {count}" for phase, count in written.items())
    )
    return "\n".join(lines)
