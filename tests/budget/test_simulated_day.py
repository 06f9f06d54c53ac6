"""The simulated day's logic on a four-hour horizon with a steep usage curve."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "simulated_day", REPO / "bench" / "simulated_day.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulated_day"] = (
        module  # dataclasses resolve annotations through sys.modules
    )
    spec.loader.exec_module(module)
    return module


def test_short_day_slows_then_pauses(routiine_home):
    bench = _bench()
    # Yesterday used 9,000 calls (60%); today other apps add up to 2,000 calls an hour from midnight.
    curve = bench.UsageCurve(today_peak=(0.0, 4.0, 2_000.0))
    adaptive = bench.simulate(hours=4, adaptive=True, curve=curve)
    fixed = bench.simulate(hours=4, adaptive=False, curve=curve)

    modes = [change["mode"] for change in adaptive.figures()["interval_changes"]]
    assert modes == ["normal", "pressure", "high", "paused"]
    assert adaptive.calls_crossing_ceiling == 0
    assert adaptive.pipeline_calls < fixed.pipeline_calls
    assert fixed.figures()["runs"] == 16
    assert (
        sum(tick.pipeline_calls for tick in adaptive.ticks) == adaptive.pipeline_calls
    )

    with dg.instance_for_test() as instance:
        bench.report_to_dagster(adaptive, fixed, instance=instance)
        event = instance.get_latest_materialization_event(
            dg.AssetKey("budget_simulated_day")
        )
        metadata = event.asset_materialization.metadata
    assert metadata["pipeline_api_calls"].value == adaptive.pipeline_calls
    assert metadata["fixed_cadence_api_calls"].value == fixed.pipeline_calls
    assert metadata["pipeline_calls_crossing_ceiling"].value == 0
