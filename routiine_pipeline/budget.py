"""The API budget guard: counts every Salesforce call and stops before a cap breaks.

The org's daily allocation is shared with every other app in the org over a
rolling 24 hours. The guard keeps this pipeline within its share, never lets
a call push the org past the ceiling, and caps each run, so that a runaway
run stops cleanly with its committed work kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.store import ControlStore, utcnow
from routiine_pipeline.salesforce.errors import BudgetExhaustedError
from routiine_pipeline.salesforce.limits import ApiUsage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BudgetPolicy:
    """Caps of one tenant's API use.

    share: the fraction of the org's daily limit this pipeline may spend.
    ceiling: the fraction of the daily limit the whole org may reach before
        this pipeline stops calling (room kept for the customer's other apps).
    run_cap: the most calls one run may make.
    """

    share: float = 0.25
    ceiling: float = 0.90
    run_cap: int = 2_000

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"share {self.share} must be in (0, 1]")
        if not 0 < self.ceiling <= 1:
            raise ValueError(f"ceiling {self.ceiling} must be in (0, 1]")
        if self.run_cap < 1:
            raise ValueError(f"run_cap {self.run_cap} must be at least 1")


@dataclass
class BudgetGuard:
    """Per-run guard that the Salesforce client consults before and after each call."""

    store: ControlStore
    tenant: str
    policy: BudgetPolicy
    run_id: str | None = None
    phase: str | None = None
    calls: Counter = field(default_factory=Counter)
    last_usage: ApiUsage | None = None

    def __post_init__(self) -> None:
        latest = self.store.latest_usage(self.tenant)
        if latest:
            self.last_usage = ApiUsage(latest[0], latest[1])
        self._pipeline_calls_24h = self._count_recent_calls()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def before_call(self, kind: str) -> None:
        if self.total_calls >= self.policy.run_cap:
            raise BudgetExhaustedError(
                f"run cap of {self.policy.run_cap} API calls reached; finished work is committed and the "
                "next run continues from the watermarks",
                error_code="RUN_CAP_REACHED",
                tenant=self.tenant,
            )
        usage = self.last_usage
        if usage is None:
            return
        if usage.used + 1 > self.policy.ceiling * usage.max:
            raise BudgetExhaustedError(
                f"org API usage {usage.used}/{usage.max} is at the ceiling of {self.policy.ceiling:.0%}; "
                "this pipeline stops so the customer's other apps keep their calls",
                error_code="ORG_CEILING_REACHED",
                tenant=self.tenant,
            )
        if self._pipeline_calls_24h + 1 > self.policy.share * usage.max:
            raise BudgetExhaustedError(
                f"this pipeline made {self._pipeline_calls_24h} calls in 24 hours, its share of "
                f"{self.policy.share:.0%} of {usage.max}",
                error_code="SHARE_REACHED",
                tenant=self.tenant,
            )

    def after_call(self, kind: str, status: int, usage: ApiUsage | None) -> None:
        self.calls[kind] += 1
        self._pipeline_calls_24h += 1
        if usage is not None:
            self.last_usage = usage
        self.store.record_call(
            self.tenant,
            kind=kind,
            status=status,
            org_used=usage.used if usage else None,
            org_max=usage.max if usage else None,
            run_id=self.run_id,
            phase=self.phase,
        )

    def _count_recent_calls(self) -> int:
        column = tables.api_calls.c
        since = utcnow() - timedelta(hours=24)
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(column.tenant_id == self.tenant, column.at >= since)
            ).scalar_one()

    def summary(self) -> dict:
        usage = self.last_usage
        return {
            "api_calls": self.total_calls,
            "api_calls_by_kind": dict(self.calls),
            "org_api_usage": f"{usage.used}/{usage.max}" if usage else "unknown",
        }
