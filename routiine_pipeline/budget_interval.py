"""Choosing a tenant's sync interval from projected API usage.

Projected usage at interval I is the org's rolling 24-hour usage now plus the
calls this pipeline would make in the next 24 hours at I:

    projected(I) = used + calls_per_run * (1440 / I)

It over-estimates, because calls older than 24 hours leave the window while
the new ones arrive, and that errs on the side of the customer's other apps.
The interval is the shortest one whose projection stays under its threshold
(fractions of the org's daily limit):

    15 min  while projected(15) <= normal_max (default 70%)
    30 min  while projected(30) <= pressure_max (default 80%)
    60 min  while projected(60) <= the tenant's ceiling (default 90%)
    paused  otherwise; a paused tenant makes one probe per hour

Each interval must also keep the pipeline's own 24-hour calls within its
share. Slowing down happens at once, by as many steps as needed. Speeding up
happens one step per decision and only when the faster interval's projection
is at least `hysteresis` (default 5 points) under its threshold, so the
interval does not flap around a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from routiine_pipeline.salesforce.limits import ApiUsage

NORMAL, PRESSURE, HIGH, PAUSED = "normal", "pressure", "high", "paused"
# Fastest first. A paused tenant is due every 60 minutes for one probe run.
MODES: tuple[str, ...] = (NORMAL, PRESSURE, HIGH, PAUSED)
MODE_MINUTES = {NORMAL: 15, PRESSURE: 30, HIGH: 60, PAUSED: 60}
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class IntervalPolicy:
    """Thresholds of the interval choice, as fractions of the org's daily limit."""

    normal_max: float = 0.70
    pressure_max: float = 0.80
    hysteresis: float = 0.05
    default_calls_per_run: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.normal_max <= self.pressure_max <= 1:
            raise ValueError(
                f"thresholds must satisfy 0 < normal_max ({self.normal_max}) <= pressure_max "
                f"({self.pressure_max}) <= 1"
            )
        if not 0 <= self.hysteresis < self.normal_max:
            raise ValueError(f"hysteresis {self.hysteresis} must be in [0, normal_max)")

    def threshold(self, mode: str, ceiling: float) -> float:
        """Return the highest projected fraction at which `mode` may run."""
        return {NORMAL: self.normal_max, PRESSURE: self.pressure_max, HIGH: ceiling}[
            mode
        ]


@dataclass(frozen=True)
class IntervalDecision:
    """The chosen mode and the figures behind it."""

    mode: str
    interval_minutes: int
    used: int
    max: int
    calls_per_run: float
    projected: int
    reason: str


def projected_usage(used: int, calls_per_run: float, interval_minutes: int) -> int:
    """Return the org's projected 24-hour usage if this pipeline runs every `interval_minutes`."""
    return round(used + calls_per_run * MINUTES_PER_DAY / interval_minutes)


def _fits(
    mode: str,
    usage: ApiUsage,
    calls_per_run: float,
    policy: IntervalPolicy,
    ceiling: float,
    share: float,
    margin: float,
) -> bool:
    minutes = MODE_MINUTES[mode]
    projected = projected_usage(usage.used, calls_per_run, minutes)
    own_calls = calls_per_run * MINUTES_PER_DAY / minutes
    limit = (policy.threshold(mode, ceiling) - margin) * usage.max
    return projected <= limit and own_calls <= share * usage.max


def choose_interval(
    current_mode: str,
    usage: ApiUsage | None,
    calls_per_run: float,
    *,
    policy: IntervalPolicy,
    ceiling: float,
    share: float,
) -> IntervalDecision:
    """Decide the next mode from the current one and the latest usage reading.

    Without a reading the current mode stays: the next run's responses carry one.
    """
    if usage is None or usage.max <= 0:
        return IntervalDecision(
            current_mode,
            MODE_MINUTES[current_mode],
            0,
            0,
            calls_per_run,
            0,
            "no usage reading yet",
        )
    target = next(
        (
            m
            for m in MODES[:-1]
            if _fits(m, usage, calls_per_run, policy, ceiling, share, 0.0)
        ),
        PAUSED,
    )
    current_rank, target_rank = MODES.index(current_mode), MODES.index(target)
    mode = target
    if target_rank < current_rank:
        # Speed up by one step only, and only with a margin under that step's threshold.
        step = MODES[current_rank - 1]
        margin_ok = _fits(
            step, usage, calls_per_run, policy, ceiling, share, policy.hysteresis
        )
        mode = step if margin_ok else current_mode
    minutes = MODE_MINUTES[mode]
    projected = projected_usage(usage.used, calls_per_run, minutes)
    return IntervalDecision(
        mode,
        minutes,
        usage.used,
        usage.max,
        calls_per_run,
        projected,
        _reason(mode, usage, projected, policy, ceiling),
    )


def _reason(
    mode: str, usage: ApiUsage, projected: int, policy: IntervalPolicy, ceiling: float
) -> str:
    figures = (
        f"org API usage {usage.used:,}/{usage.max:,} in the last 24 hours "
        f"({usage.fraction:.0%}), projected {projected:,} ({projected / usage.max:.0%}) "
        f"at a {MODE_MINUTES[mode]}-minute interval"
    )
    if mode == PAUSED:
        return f"{figures}; even hourly syncs would pass the ceiling of {ceiling:.0%}"
    if mode == NORMAL:
        return f"{figures}; under the {policy.normal_max:.0%} threshold"
    return f"{figures}; threshold {policy.threshold(mode, ceiling):.0%}"
