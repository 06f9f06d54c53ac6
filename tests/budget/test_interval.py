"""The interval choice: thresholds, share, one-step recovery with hysteresis."""

import pytest

from routiine_pipeline.budget_interval import (
    HIGH,
    NORMAL,
    PAUSED,
    PRESSURE,
    IntervalPolicy,
    choose_interval,
    projected_usage,
)
from routiine_pipeline.salesforce.limits import ApiUsage

POLICY = IntervalPolicy()
LIMIT = 10_000

# calls_per_run 3 gives 288 calls a day at 15 minutes, 144 at 30 and 72 at 60.
CASES = [
    # (current mode, org used, calls per run, expected mode)
    (NORMAL, 6_000, 3, NORMAL),  # 6,288 <= 70%
    (NORMAL, 6_800, 3, PRESSURE),  # 7,088 > 70%, 6,944 <= 80%
    (NORMAL, 7_900, 3, HIGH),  # 8,044 > 80%, 7,972 <= 90%
    (NORMAL, 8_950, 3, PAUSED),  # 9,022 > 90% even hourly
    (PAUSED, 8_500, 3, PAUSED),  # 8,572 fits 90% but not 85% (hysteresis)
    (PAUSED, 8_400, 3, HIGH),  # 8,472 <= 85%
    (HIGH, 6_000, 3, PRESSURE),  # recovery moves one step at a time
    (PRESSURE, 6_000, 3, NORMAL),  # 6,288 <= 65%
    (PRESSURE, 6_300, 3, PRESSURE),  # 6,588 fits 70% but not 65%
    (HIGH, 7_900, 3, HIGH),
    (PRESSURE, 8_950, 3, PAUSED),  # slowing down skips steps
    (
        NORMAL,
        1_000,
        100,
        HIGH,
    ),  # own calls 9,600 and 4,800 exceed the 25% share; 2,400 fit
]


@pytest.mark.parametrize(("current", "used", "per_run", "expected"), CASES)
def test_choose_interval_table(current, used, per_run, expected):
    decision = choose_interval(
        current, ApiUsage(used, LIMIT), per_run, policy=POLICY, ceiling=0.90, share=0.25
    )
    assert decision.mode == expected


def test_decision_carries_figures():
    decision = choose_interval(
        NORMAL, ApiUsage(6_800, LIMIT), 3, policy=POLICY, ceiling=0.90, share=0.25
    )
    assert decision.interval_minutes == 30
    assert decision.projected == 6_944
    assert decision.reason == (
        "org API usage 6,800/10,000 in the last 24 hours (68%), projected 6,944 (69%) "
        "at a 30-minute interval; threshold 80%"
    )


def test_no_reading_keeps_mode():
    decision = choose_interval(
        PRESSURE, None, 3, policy=POLICY, ceiling=0.90, share=0.25
    )
    assert (decision.mode, decision.interval_minutes) == (PRESSURE, 30)


@pytest.mark.parametrize(
    ("used", "per_run", "minutes", "expected"),
    [
        (1_000, 3, 15, 1_288),
        (1_000, 3, 30, 1_144),
        (1_000, 3, 60, 1_072),
        (0, 0, 15, 0),
    ],
)
def test_projected_usage(used, per_run, minutes, expected):
    assert projected_usage(used, per_run, minutes) == expected


def test_policy_rejects_unordered_thresholds():
    with pytest.raises(ValueError, match="thresholds"):
        IntervalPolicy(normal_max=0.9, pressure_max=0.8)
