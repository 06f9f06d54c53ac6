"""A fleet of 1,000 tenants in the control store and a Dagster instance, in known states.

Each tenant gets one kind (see KINDS), and the kinds are spread over the id
order by a seeded shuffle, so a test can name the tenants a tick must request.
Connected tenants hold real encrypted tokens and point at a loopback
emulator, so a tick that called Salesforce would reach it and be counted.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from routiine_pipeline import settings
from routiine_pipeline.budget_state import set_budget_overrides
from routiine_pipeline.control import budget_tables, tables
from routiine_pipeline.control.store import (
    CONNECTED,
    NEEDS_REAUTHORIZATION,
    PAUSED,
    PENDING,
    ControlStore,
)
from routiine_pipeline.control.tokens import save_tokens
from routiine_pipeline.control.vault import TokenVault, load_keys
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from routiine_pipeline.salesforce.oauth import TokenResponse

# The schedule's tick time. Month partitions start at ROUTIINE_HISTORY_START
# (2025-01 by default), so the tick's month must come after that.
NOW = datetime(2025, 6, 15, 10, 0, tzinfo=UTC)
MONTH = "2025-06-01"
DAILY_LIMIT = 15_000

# Kinds of tenant and how many of each. The counts add up to 1,000.
DUE_NEW = "due_new"  # connected, never requested, no usage reading
DUE = "due"  # connected, requested 20 minutes ago, 30% usage
DUE_PROBE = "due_probe"  # paused by the budget, requested 61 minutes ago: one probe run
BACK_TO_NORMAL = (
    "back_to_normal"  # stored pressure mode, usage fell to 30%: due and notified
)
RECENT = "recent"  # requested 5 minutes ago
PRESSURE = "pressure"  # 73% usage gives a 30-minute interval, requested 20 minutes ago
BUDGET_PAUSED = "budget_paused"  # 95% usage, paused, requested 20 minutes ago
CEILING_OVERRIDE = "ceiling_override"  # 30% usage over a stored ceiling of 20%
STATUS_PAUSED = "status_paused"  # paused by an operator
REAUTH = "reauth"  # needs re-authorization
NOT_CONNECTED = "not_connected"  # added, never connected
NO_PARTITION = "no_partition"  # connected, but its Dagster partition is missing

KINDS = {
    DUE_NEW: 100,
    DUE: 190,
    DUE_PROBE: 20,
    BACK_TO_NORMAL: 10,
    RECENT: 180,
    PRESSURE: 100,
    BUDGET_PAUSED: 30,
    CEILING_OVERRIDE: 20,
    STATUS_PAUSED: 100,
    REAUTH: 100,
    NOT_CONNECTED: 100,
    NO_PARTITION: 50,
}
DUE_KINDS = (DUE_NEW, DUE, DUE_PROBE, BACK_TO_NORMAL)
CONNECTED_KINDS = (
    *DUE_KINDS,
    RECENT,
    PRESSURE,
    BUDGET_PAUSED,
    CEILING_OVERRIDE,
    NO_PARTITION,
)

# Minutes since the last request, usage fraction of the daily limit, stored budget mode.
_SETUP = {
    DUE_NEW: (None, None, None),
    DUE: (20, 0.30, None),
    DUE_PROBE: (61, 0.95, "paused"),
    BACK_TO_NORMAL: (20, 0.30, "pressure"),
    RECENT: (5, 0.30, "normal"),
    PRESSURE: (20, 0.73, "pressure"),
    BUDGET_PAUSED: (20, 0.95, "paused"),
    CEILING_OVERRIDE: (20, 0.30, "paused"),
    NO_PARTITION: (600, None, None),
}
_MODE_MINUTES = {"normal": 15, "pressure": 30, "paused": 60}
REAUTH_REASON = "Salesforce rejected the refresh token (invalid_grant)"
OPERATOR_REASON = "paused by the operator"


class CountingEmulator(EmulatorServer):
    """The Salesforce emulator, counting every HTTP request it receives, whatever the path."""

    def __init__(self, org: Org, **options) -> None:
        super().__init__(org, **options)
        self.requests = 0
        self._count_lock = threading.Lock()

    def handle(self, request):
        with self._count_lock:
            self.requests += 1
        return super().handle(request)


def start_counting_emulator() -> CountingEmulator:
    org = Org(clock=Clock(NOW, frozen=True), daily_api_limit=DAILY_LIMIT)
    return CountingEmulator(org).start()


@dataclass
class Fleet:
    """The registered tenants, their kinds, and the stores they live in."""

    store: ControlStore
    instance: dg.DagsterInstance
    kinds: dict[str, str]
    last_requested: dict[str, datetime | None] = field(default_factory=dict)

    def of(self, *kinds: str) -> list[str]:
        """Return the tenants of the given kinds, sorted by id."""
        return sorted(tenant for tenant, kind in self.kinds.items() if kind in kinds)

    @property
    def partitions(self) -> set[str]:
        return set(self.kinds) - set(self.of(NO_PARTITION))


def tenant_ids(count: int = 1000) -> list[str]:
    return [f"t{number:04d}" for number in range(count)]


def build_fleet(
    store: ControlStore, instance: dg.DagsterInstance, emulator_url: str
) -> Fleet:
    """Register 1,000 tenants in `store` and `instance` and put each in its kind's state."""
    kinds_in_order = [kind for kind, count in KINDS.items() for _ in range(count)]
    random.Random(20250615).shuffle(kinds_in_order)
    fleet = Fleet(store, instance, dict(zip(tenant_ids(), kinds_in_order)))
    assert Counter(fleet.kinds.values()) == Counter(KINDS)

    for tenant in fleet.kinds:
        store.add_tenant(tenant, org_type="production", login_url=emulator_url)
    _set_statuses(fleet, emulator_url)
    _store_tokens(fleet, emulator_url)
    _store_budget_rows(fleet)
    for tenant in fleet.of(CEILING_OVERRIDE):
        set_budget_overrides(store, tenant, ceiling=0.20)
    instance.add_dynamic_partitions(tenant_partitions.name, sorted(fleet.partitions))
    return fleet


def _set_statuses(fleet: Fleet, emulator_url: str) -> None:
    rows = []
    for tenant, kind in fleet.kinds.items():
        minutes = _SETUP.get(kind, (600, None, None))[0]
        last = NOW - timedelta(minutes=minutes) if minutes is not None else None
        fleet.last_requested[tenant] = last
        status, reason = CONNECTED, None
        if kind == STATUS_PAUSED:
            status, reason = PAUSED, OPERATOR_REASON
        elif kind == REAUTH:
            status, reason = NEEDS_REAUTHORIZATION, REAUTH_REASON
        elif kind == NOT_CONNECTED:
            status, last = PENDING, None
            fleet.last_requested[tenant] = None
        connected = status != PENDING
        rows.append(
            {
                "key": tenant,
                "status": status,
                "status_reason": reason,
                "instance_url": emulator_url if connected else None,
                "last_requested_at": last,
                "connected_at": NOW - timedelta(days=30) if connected else None,
            }
        )
    column = tables.tenants.c
    with fleet.store.engine.begin() as conn:
        conn.execute(
            tables.tenants.update().where(column.tenant_id == sa.bindparam("key")),
            rows,
        )


def _store_tokens(fleet: Fleet, emulator_url: str) -> None:
    """Give connected tenants encrypted tokens, as the OAuth flow stores them."""
    vault = TokenVault(load_keys(settings.routiine_home()))
    for tenant in fleet.of(*CONNECTED_KINDS):
        response = TokenResponse(
            access_token=f"access-{tenant}",
            refresh_token=f"refresh-{tenant}",
            instance_url=emulator_url,
            identity_url=None,
            issued_at=None,
        )
        save_tokens(fleet.store, vault, tenant, response)


def _store_budget_rows(fleet: Fleet) -> None:
    """Write usage readings to the ledger and stale figures to the stored budget modes."""
    calls, states = [], []
    for tenant, kind in sorted(fleet.kinds.items()):
        _, usage, mode = _SETUP.get(kind, (None, None, None))
        if usage is not None:
            calls.extend(_ledger_rows(tenant, round(usage * DAILY_LIMIT)))
        if mode is not None:
            states.append(
                {
                    "tenant_id": tenant,
                    "mode": mode,
                    "interval_minutes": _MODE_MINUTES[mode],
                    "reason": "figures of an earlier tick",
                    "org_used": 1,
                    "org_max": DAILY_LIMIT,
                    "projected": 1,
                    "changed_at": NOW - timedelta(days=1),
                }
            )
    with fleet.store.engine.begin() as conn:
        conn.execute(tables.api_calls.insert(), calls)
        conn.execute(budget_tables.budget_state.insert(), states)


def _ledger_rows(tenant: str, used: int) -> list[dict]:
    """Return a tenant's ledger: an old reading, a one-off backfill, and one 3-call sync.

    The first sync call reads 99% usage and the last reads `used`, so a tick
    that took any reading but the latest would choose another mode.
    """

    def row(minutes_ago: int, used: int | None, phase: str, run_id: str) -> dict:
        return {
            "tenant_id": tenant,
            "at": NOW - timedelta(minutes=minutes_ago),
            "run_id": run_id,
            "phase": phase,
            "kind": "composite",
            "status": 200,
            "org_used": used,
            "org_max": DAILY_LIMIT if used is not None else None,
        }

    sync = f"sync-{tenant}"
    return [
        row(3 * 24 * 60, 100, "incremental", f"old-{tenant}"),
        row(60, None, "backfill", f"backfill-{tenant}"),
        row(4, round(0.99 * DAILY_LIMIT), "incremental", sync),
        row(3, None, "incremental", sync),
        row(2, used, "incremental", sync),
    ]
