"""The API budget guard: counts every Salesforce call and stops before a cap breaks.

The org's daily allocation is shared with every other app in the org over a
rolling 24 hours. The guard keeps this pipeline within its share, never lets
a call push the org past the ceiling, and caps each run, so that a runaway
run stops cleanly with its committed work kept. After an HTTP 403 it makes no
further call in the run and pauses the tenant (see budget_interval for how
the pause lifts).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from routiine_pipeline import budget_state
from routiine_pipeline.control import tables
from routiine_pipeline.control.store import ControlStore, utcnow
from routiine_pipeline.salesforce.errors import BudgetExhaustedError
from routiine_pipeline.salesforce.limits import ApiUsage

log = logging.getLogger(__name__)

# Intervals are decided from the ledger's last 24 hours. Older rows are kept
# this long for reports of API spend per tenant and phase, then runs delete them.
LEDGER_RETENTION = timedelta(days=35)


@dataclass(frozen=True)
class BudgetPolicy:
    """Caps of one tenant's API use.

    share: the fraction of the org's daily limit this pipeline may spend.
    ceiling: the fraction of the daily limit the whole org may reach before
        this pipeline stops calling (room kept for the customer's other apps).
    run_cap: the maximum number of calls in one run.
    stale_after: age after which the last usage reading is re-read from /limits at run start.
    """

    share: float = 0.25
    ceiling: float = 0.90
    run_cap: int = 2_000
    stale_after: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"share {self.share} must be in (0, 1]")
        if not 0 < self.ceiling <= 1:
            raise ValueError(f"ceiling {self.ceiling} must be in (0, 1]")
        if self.run_cap < 1:
            raise ValueError(f"run_cap {self.run_cap} must be at least 1")


@dataclass
class BudgetGuard:
    """Per-run guard that the Salesforce client consults before and after each call.

    `clock` returns the current UTC time; the simulated day passes the
    emulator's clock so the ledger and the 24-hour window follow emulated time.
    """

    store: ControlStore
    tenant: str
    policy: BudgetPolicy
    run_id: str | None = None
    phase: str | None = None
    clock: Callable[[], datetime] = utcnow
    calls: Counter = field(default_factory=Counter)
    last_usage: ApiUsage | None = None
    last_usage_at: datetime | None = None
    limit_hit: bool = False

    def __post_init__(self) -> None:
        reading = budget_state.latest_reading(self.store, self.tenant)
        if reading is not None:
            self.last_usage, self.last_usage_at = reading.usage, reading.at
        self._stale_at_start = self.reading_is_stale()
        self._pipeline_calls_24h = self._count_recent_calls()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def reading_is_stale(self) -> bool:
        if self.last_usage_at is None:
            return True
        return self.clock() - self.last_usage_at > self.policy.stale_after

    def start_run(self, client: Any) -> ApiUsage | None:
        """Prune old ledger rows, read /limits when the last usage reading is stale, and return the reading in use."""
        pruned = self.store.prune_api_calls(
            self.tenant, before=self.clock() - LEDGER_RETENTION
        )
        if pruned:
            log.info(
                "Tenant %s: deleted %d API-call ledger rows older than %d days",
                self.tenant,
                pruned,
                LEDGER_RETENTION.days,
            )
        if not self.reading_is_stale():
            return self.last_usage
        body = client.limits()
        daily = (body or {}).get("DailyApiRequests") or {}
        if "Max" in daily and "Remaining" in daily:
            self.last_usage = ApiUsage(daily["Max"] - daily["Remaining"], daily["Max"])
            self.last_usage_at = self.clock()
        return self.last_usage

    def before_call(self, kind: str) -> None:
        if self.limit_hit:
            raise self._exhausted(
                "Salesforce returned HTTP 403 REQUEST_LIMIT_EXCEEDED earlier in this run; no further "
                "call is made and the tenant is paused until usage falls",
                "REQUEST_LIMIT_EXCEEDED",
            )
        if self.total_calls >= self.policy.run_cap:
            raise self._exhausted(
                f"run cap of {self.policy.run_cap} API calls reached; finished work is committed and the "
                "next run continues from the watermarks",
                "RUN_CAP_REACHED",
            )
        usage = self.last_usage
        # The first call of a run with a stale reading is the probe that refreshes it: its
        # response carries Sforce-Limit-Info. start_run makes that probe a /limits call.
        if usage is None or (self.total_calls == 0 and self._stale_at_start):
            return
        if usage.used + 1 > self.policy.ceiling * usage.max:
            raise self._exhausted(
                f"org API usage {usage.used}/{usage.max} is at the ceiling of {self.policy.ceiling:.0%}; "
                "this pipeline stops so the customer's other apps keep their calls",
                "ORG_CEILING_REACHED",
            )
        if self._pipeline_calls_24h + 1 > self.policy.share * usage.max:
            raise self._exhausted(
                f"this pipeline made {self._pipeline_calls_24h} calls in 24 hours, its share of "
                f"{self.policy.share:.0%} of {usage.max}",
                "SHARE_REACHED",
            )

    def after_call(self, kind: str, status: int, usage: ApiUsage | None) -> None:
        now = self.clock()
        self.calls[kind] += 1
        self._pipeline_calls_24h += 1
        if usage is not None:
            self.last_usage, self.last_usage_at = usage, now
        with self.store.engine.begin() as conn:
            conn.execute(
                tables.api_calls.insert().values(
                    tenant_id=self.tenant,
                    at=now,
                    kind=kind,
                    status=status,
                    org_used=usage.used if usage else None,
                    org_max=usage.max if usage else None,
                    run_id=self.run_id,
                    phase=self.phase,
                )
            )
        if status == 403:
            # NOTE: the client passes only the HTTP status here, so any whole-request 403 is
            # treated as REQUEST_LIMIT_EXCEEDED; the hourly probe lifts a pause that had another cause.
            self.limit_hit = True
            log.error(
                "Tenant %s: HTTP 403 on %s; stopping this run and pausing the tenant",
                self.tenant,
                kind,
            )
            budget_state.pause_for_limit(
                self.store, self.tenant, at=now, usage=usage, kind=kind
            )

    def _exhausted(self, message: str, code: str) -> BudgetExhaustedError:
        return BudgetExhaustedError(message, error_code=code, tenant=self.tenant)

    def _count_recent_calls(self) -> int:
        column = tables.api_calls.c
        now = self.clock()
        since = now - timedelta(hours=24)
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(
                    column.tenant_id == self.tenant,
                    column.at >= since,
                    column.at <= now,
                )
            ).scalar_one()

    def summary(self) -> dict:
        usage = self.last_usage
        return {
            "api_calls": self.total_calls,
            "api_calls_by_kind": dict(self.calls),
            "org_api_usage": f"{usage.used}/{usage.max}" if usage else "unknown",
        }
