"""A simulated day of adaptive scheduling against the emulator.

The emulator's clock runs through 24 hours in 15-minute ticks while other
apps consume the org's daily API allocation along a curve. At each tick the
real schedule logic (`due_tenants`, which chooses the interval from the
ledger) decides whether the tenant syncs, and a due tenant gets a real
incremental pass over HTTP into a real DuckDB file. The same day is then run
at a fixed 15-minute cadence without the adaptive interval, for comparison.

Run it with `python bench/simulated_day.py`; it writes
docs/budget-simulated-day.png and reports the figures as metadata of the
`budget_simulated_day` asset in the Dagster instance under DAGSTER_HOME
(an ephemeral instance when unset).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from routiine_pipeline import settings  # noqa: E402
from routiine_pipeline.budget import BudgetGuard, BudgetPolicy  # noqa: E402
from routiine_pipeline.control import budget_tables, tables  # noqa: E402
from routiine_pipeline.control.store import CONNECTED, open_control_store  # noqa: E402
from routiine_pipeline.salesforce.client import SalesforceClient  # noqa: E402
from routiine_pipeline.salesforce.errors import BudgetExhaustedError  # noqa: E402

TENANT = "simday"
DAY_START = datetime(2024, 3, 4, 0, 0, tzinfo=UTC)
TICK = timedelta(minutes=15)
DAILY_LIMIT = 15_000
CEILING = 0.90


@dataclass(frozen=True)
class UsageCurve:
    """Calls per hour that other apps make, yesterday and on the simulated day.

    Rolling usage only moves when today differs from yesterday: a heavier
    business-hours peak today pushes it up, and yesterday's evening batch,
    which does not recur, lets it fall again.
    """

    base_per_hour: float = 150.0
    yesterday_batch: tuple[float, float, float] = (
        18.0,
        24.0,
        900.0,
    )  # start hour, end hour, calls per hour
    today_peak: tuple[float, float, float] = (
        8.0,
        17.0,
        942.0,
    )  # start hour, end hour, peak calls per hour

    def yesterday(self, hour: float) -> float:
        start, end, rate = self.yesterday_batch
        return self.base_per_hour + (rate if start <= hour < end else 0.0)

    def today(self, hour: float) -> float:
        start, end, peak = self.today_peak
        bump = (
            peak * math.sin(math.pi * (hour - start) / (end - start))
            if start <= hour < end
            else 0.0
        )
        return self.base_per_hour + bump


@dataclass
class TickRecord:
    at: datetime
    mode: str
    interval_minutes: int
    ran: bool
    pipeline_calls: int
    org_used: int


@dataclass
class DayResult:
    adaptive: bool
    ticks: list[TickRecord] = field(default_factory=list)
    pipeline_calls: int = 0
    calls_above_ceiling: int = 0
    calls_crossing_ceiling: int = 0
    max_org_fraction: float = 0.0

    def figures(self) -> dict:
        modes = []
        for tick in self.ticks:
            if not modes or modes[-1][1] != tick.mode:
                modes.append((f"{tick.at:%H:%M}", tick.mode, tick.interval_minutes))
        return {
            "pipeline_api_calls": self.pipeline_calls,
            "runs": sum(tick.ran for tick in self.ticks),
            "pipeline_calls_above_ceiling": self.calls_above_ceiling,
            "pipeline_calls_crossing_ceiling": self.calls_crossing_ceiling,
            "max_org_usage_fraction": round(self.max_org_fraction, 4),
            "interval_changes": [
                {"at": at, "mode": mode, "interval_minutes": m} for at, mode, m in modes
            ],
        }


def _seed_org(org) -> None:
    from routiine_pipeline.salesforce.ids import make_id

    stamp = DAY_START - timedelta(days=2)
    accounts = [
        {
            "Id": make_id("Account", n),
            "Name": f"Account {n}",
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        for n in range(1, 21)
    ]
    deals = [
        {
            "Id": make_id("Opportunity", n),
            "Name": f"Deal {n}",
            "StageName": "Prospecting",
            "AccountId": make_id("Account", 1 + n % 20),
            "Amount": 1000.0 * n,
            "IsClosed": False,
            "IsWon": False,
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        for n in range(1, 41)
    ]
    org.load({"Account": accounts, "Opportunity": deals})


def _pass(world, run_id: str, policy: BudgetPolicy) -> int:
    """Run one real incremental pass; return the calls it made."""
    guard = BudgetGuard(
        world.store,
        TENANT,
        policy,
        run_id=run_id,
        phase="incremental",
        clock=world.clock.now,
    )
    client = SalesforceClient(
        world.server.url, world.tokens, guard=guard, tenant=TENANT
    )
    try:
        guard.start_run(client)
        world.run_extract(client)
    except BudgetExhaustedError:
        pass  # the guard stopped the run before a call; nothing to commit
    return guard.total_calls


@dataclass
class _World:
    org: object
    clock: object
    server: object
    store: object
    tokens: object

    def run_extract(self, client) -> None:
        from routiine_pipeline.extract.cycle import CycleStoppedError, ExtractPass
        from routiine_pipeline.extract.describe import load_describes
        from routiine_pipeline.extract.plan import plan_fields
        from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
        from routiine_pipeline.mapping import EXTRACT_OBJECTS, default_fields
        from routiine_pipeline.storage.warehouse import open_database

        now = self.clock.now()
        objects = list(EXTRACT_OBJECTS)
        with open_database(settings.tenant_database_path(TENANT)) as conn:
            describes = load_describes(client, conn, objects, now=now)
            plans = [
                plan_fields(s, default_fields(s), describes.get(s)) for s in objects
            ]
            window = MonthWindow.containing(now)
            extract = ExtractPass(
                client,
                conn,
                tenant=TENANT,
                run_start=now,
                settings=ExtractSettings(lag=timedelta(0), restart_backoff=0.0),
            )
            try:
                extract.run(plans, [window.previous(), window])
            except CycleStoppedError:
                pass


class _Token:
    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str) -> str:
        return self.token


def simulate(
    hours: float = 24.0, *, adaptive: bool = True, curve: UsageCurve | None = None
) -> DayResult:
    """Run the day in a fresh ROUTIINE_HOME and return what happened at each tick."""
    from routiine_pipeline.defs.automation import due_tenants
    from routiine_pipeline.defs.resources import ApiBudget, ControlPlane
    from routiine_pipeline.emulator import Clock, EmulatorServer, Org

    curve = curve or UsageCurve()
    home = tempfile.mkdtemp(prefix="routiine-simday-")
    saved = {
        name: os.environ.get(name) for name in ("ROUTIINE_HOME", "ROUTIINE_CONTROL_URL")
    }
    os.environ["ROUTIINE_HOME"] = home
    os.environ.pop("ROUTIINE_CONTROL_URL", None)
    open_control_store.cache_clear()
    clock = Clock(DAY_START - timedelta(hours=24), frozen=True)
    org = Org(
        clock=clock,
        daily_api_limit=DAILY_LIMIT,
        access_token_lifetime=timedelta(days=7),
    )
    _seed_org(org)
    server = EmulatorServer(org).start()
    try:
        token, _ = org.issue_tokens(server.client.client_id)
        store = open_control_store(settings.control_store_url())
        store.add_tenant(TENANT, org_type="production", login_url=server.url)
        store.update_tenant(TENANT, status=CONNECTED, instance_url=server.url)
        world = _World(org, clock, server, store, _Token(token))
        # Yesterday fills the rolling window, so the day starts at a steady usage.
        while clock.now() < DAY_START:
            org.add_other_app_usage(
                round(curve.yesterday(clock.now().hour + clock.now().minute / 60) / 4)
            )
            clock.advance(TICK.total_seconds())
        budget = ApiBudget(control=ControlPlane(), ceiling=CEILING)
        policy = (
            budget.policy(TENANT) if adaptive else BudgetPolicy(ceiling=1.0, share=1.0)
        )
        result = DayResult(adaptive)
        deal = 0
        while clock.now() < DAY_START + timedelta(hours=hours):
            now = clock.now()
            hour = (now - DAY_START).total_seconds() / 3600
            org.add_other_app_usage(round(curve.today(hour) / 4))
            deal = deal % 40 + 1
            org.update("Opportunity", _deal_id(deal), {"Amount": 1000.0 * deal + hour})
            clock.advance(60)
            now = clock.now()
            if adaptive:
                due, _ = due_tenants(now, {TENANT}, budget, mark_requested=True)
            else:
                due = [TENANT]
            calls = _pass(world, f"sim-{now:%H%M}", policy) if due else 0
            mode, minutes = _mode(store) if adaptive else ("fixed", 15)
            result.ticks.append(
                TickRecord(now, mode, minutes, bool(due), calls, org.api_usage_used)
            )
            result.max_org_fraction = max(
                result.max_org_fraction, org.api_usage_used / DAILY_LIMIT
            )
            clock.advance(TICK.total_seconds() - 60)
        _ceiling_proof(store, result)
        return result
    finally:
        server.stop()
        open_control_store.cache_clear()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _deal_id(number: int) -> str:
    from routiine_pipeline.salesforce.ids import make_id

    return make_id("Opportunity", number)


def _mode(store) -> tuple[str, int]:
    table = budget_tables.budget_state
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(table.c.mode, table.c.interval_minutes)).first()
    return (row[0], row[1]) if row else ("normal", 15)


def _ceiling_proof(store, result: DayResult) -> None:
    """Count pipeline calls answered above the ceiling, and those that crossed it.

    Each ledger row holds the org's usage including that call, so a call
    crossed the ceiling when usage minus one was at or under it.
    """
    column = tables.api_calls.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(column.org_used, column.org_max).where(column.tenant_id == TENANT)
        ).all()
    result.pipeline_calls = len(rows)
    for used, maximum in rows:
        if used is None:
            continue
        limit = CEILING * maximum
        if used > limit:
            result.calls_above_ceiling += 1
            if used - 1 <= limit:
                result.calls_crossing_ceiling += 1


def plot(adaptive: DayResult, fixed: DayResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [(t.at - DAY_START).total_seconds() / 3600 for t in adaptive.ticks]
    figure, (usage_axis, interval_axis, calls_axis) = plt.subplots(
        3, 1, figsize=(10, 9), sharex=True
    )
    usage_axis.plot(
        hours,
        [100 * t.org_used / DAILY_LIMIT for t in adaptive.ticks],
        label="org usage (adaptive run)",
    )
    for level, name in (
        (70, "15-min threshold"),
        (80, "30-min threshold"),
        (90, "ceiling"),
    ):
        usage_axis.axhline(level, linestyle="--", linewidth=0.8, color="grey")
        usage_axis.text(0.1, level + 0.5, name, fontsize=8, color="grey")
    usage_axis.set_ylabel("rolling 24 h usage, % of limit")
    usage_axis.legend(loc="upper left")
    interval_axis.step(
        hours,
        [0 if t.mode == "paused" else t.interval_minutes for t in adaptive.ticks],
        where="post",
    )
    interval_axis.set_yticks([0, 15, 30, 60], ["paused", "15", "30", "60"])
    interval_axis.set_ylabel("sync interval, minutes")
    calls_axis.plot(
        hours, _cumulative(adaptive), label=f"adaptive: {adaptive.pipeline_calls} calls"
    )
    calls_axis.plot(
        hours, _cumulative(fixed), label=f"fixed 15 min: {fixed.pipeline_calls} calls"
    )
    calls_axis.set_ylabel("pipeline API calls, cumulative")
    calls_axis.set_xlabel(f"hours since {DAY_START:%Y-%m-%d %H:%M} UTC (emulated)")
    calls_axis.legend(loc="upper left")
    figure.suptitle(
        f"Simulated day: {DAILY_LIMIT:,} calls/day org, ceiling {CEILING:.0%}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _cumulative(result: DayResult) -> list[int]:
    total, series = 0, []
    for tick in result.ticks:
        total += tick.pipeline_calls
        series.append(total)
    return series


def report_to_dagster(adaptive: DayResult, fixed: DayResult, instance=None) -> dict:
    """Record the figures as a materialization of the external asset `budget_simulated_day`."""
    import dagster as dg

    metadata = {
        "adaptive": dg.MetadataValue.json(adaptive.figures()),
        "fixed_15_minutes": dg.MetadataValue.json(fixed.figures()),
        "pipeline_api_calls": adaptive.pipeline_calls,
        "fixed_cadence_api_calls": fixed.pipeline_calls,
        "pipeline_calls_crossing_ceiling": adaptive.calls_crossing_ceiling,
        "max_org_usage_fraction": round(adaptive.max_org_fraction, 4),
        "plot": dg.MetadataValue.path(str(REPO / "docs" / "budget-simulated-day.png")),
    }
    instance = (
        instance or dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else instance
    )
    if instance is None:
        instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="budget_simulated_day", metadata=metadata)
    )
    return metadata


def main() -> None:
    adaptive = simulate(adaptive=True)
    fixed = simulate(adaptive=False)
    path = REPO / "docs" / "budget-simulated-day.png"
    plot(adaptive, fixed, path)
    report_to_dagster(adaptive, fixed)
    for name, result in (("adaptive", adaptive), ("fixed 15 min", fixed)):
        figures = result.figures()
        print(
            f"{name}: {figures['pipeline_api_calls']} API calls in {figures['runs']} runs, "
            f"{figures['pipeline_calls_crossing_ceiling']} crossed the ceiling, "
            f"{figures['pipeline_calls_above_ceiling']} answered above it, "
            f"max org usage {figures['max_org_usage_fraction']:.1%}"
        )
    for change in adaptive.figures()["interval_changes"]:
        print(f"  {change['at']} {change['mode']} ({change['interval_minutes']} min)")
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
