"""A tenant wired to a running emulator: control store, DuckDB file, client and budget guard.

Shared by the budget and write-back tests. The client uses a token the
emulator issued, so every call is real HTTP with real Sforce-Limit-Info.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from routiine_pipeline import settings
from routiine_pipeline.budget import BudgetGuard, BudgetPolicy
from routiine_pipeline.control.store import CONNECTED, ControlStore, open_control_store
from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from routiine_pipeline.extract.cycle import CycleStoppedError, ExtractPass
from routiine_pipeline.extract.describe import load_describes
from routiine_pipeline.extract.plan import plan_fields
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.mapping import default_fields
from routiine_pipeline.salesforce.client import SalesforceClient
from routiine_pipeline.salesforce.errors import ReauthorizationRequiredError
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.storage.warehouse import open_database

START = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
TENANT = "acme"


class IssuedToken:
    """A token source holding one access token that the emulator issued."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return "IssuedToken(<hidden>)"

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str) -> str:
        raise ReauthorizationRequiredError(
            "the test token cannot be refreshed", tenant=TENANT
        )


@dataclass
class World:
    org: Org
    clock: Clock
    server: EmulatorServer
    store: ControlStore
    # Kept out of repr so a failing assertion never prints the access token.
    token: str = field(repr=False)

    def client(
        self,
        policy: BudgetPolicy | None = None,
        *,
        run_id: str = "run-1",
        phase: str = "incremental",
    ) -> tuple[SalesforceClient, BudgetGuard]:
        guard = BudgetGuard(
            self.store,
            TENANT,
            policy or BudgetPolicy(),
            run_id=run_id,
            phase=phase,
            clock=self.clock.now,
        )
        client = SalesforceClient(
            self.server.url, IssuedToken(self.token), guard=guard, tenant=TENANT
        )
        return client, guard

    @contextmanager
    def duck(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with open_database(
            settings.tenant_database_path(TENANT), read_only=read_only
        ) as conn:
            yield conn

    def extract(
        self,
        client: SalesforceClient,
        sobjects: list[str],
        *,
        run_start: datetime | None = None,
    ) -> tuple[ExtractPass, CycleStoppedError | None]:
        """Run one real incremental pass over `sobjects`, in that order."""
        run_start = run_start or self.clock.now()
        with self.duck() as conn:
            describes = load_describes(client, conn, sobjects, now=run_start)
            plans = [
                plan_fields(s, default_fields(s), describes.get(s)) for s in sobjects
            ]
            window = MonthWindow.containing(run_start)
            extract = ExtractPass(
                client,
                conn,
                tenant=TENANT,
                run_start=run_start,
                settings=ExtractSettings(lag=timedelta(seconds=0), restart_backoff=0.0),
            )
            try:
                extract.run(plans, [window.previous(), window])
            except CycleStoppedError as error:
                return extract, error
        return extract, None

    def calls(self) -> int:
        return self.org.data_api_calls


def start_world(page_size: int = 2_000, daily_limit: int = 15_000) -> World:
    clock = Clock(START, frozen=True)
    org = Org(clock=clock, daily_api_limit=daily_limit)
    server = EmulatorServer(org, page_size=page_size).start()
    token, _ = org.issue_tokens(server.client.client_id)
    store = open_control_store(settings.control_store_url())
    store.add_tenant(TENANT, org_type="production", login_url=server.url)
    store.update_tenant(TENANT, status=CONNECTED, instance_url=server.url)
    return World(org, clock, server, store, token)


def opportunity(number: int, stamp: datetime, **values: Any) -> dict[str, Any]:
    record = {
        "Id": make_id("Opportunity", number),
        "Name": f"Deal {number}",
        "StageName": "Prospecting",
        "Amount": 1000.0 * number,
        "CloseDate": date(2024, 6, 30),
        "IsClosed": False,
        "IsWon": False,
        "IsDeleted": False,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
    }
    record.update(values)
    return record


def load_opportunities(world: World, count: int) -> list[str]:
    """Load `count` Opportunities stamped one minute before now and extract them into DuckDB."""
    stamp = world.clock.now() - timedelta(minutes=1)
    world.org.load(
        {"Opportunity": [opportunity(n, stamp) for n in range(1, count + 1)]}
    )
    client, _ = world.client(run_id="load")
    world.extract(client, ["Opportunity"])
    return [make_id("Opportunity", n) for n in range(1, count + 1)]


def set_scores(world: World, scores: dict[str, tuple[int, str]]) -> None:
    """Replace the current momentum scores, as the scoring asset would."""
    from routiine_pipeline.scoring.store import ensure_score_tables

    with world.duck() as conn:
        ensure_score_tables(conn)
        conn.execute("DELETE FROM momentum_score")
        for deal_id, (score, action) in scores.items():
            conn.execute(
                "INSERT INTO momentum_score (deal_id, score, factors, top_factors, next_best_action, flags, "
                "as_of, computed_at) VALUES (?, ?, '{}', [], ?, [], ?, ?)",
                [deal_id, score, action, world.clock.now(), world.clock.now()],
            )


def write_back(world: World, *, run_id: str = "wb", retry=None):
    """Run one write-back cycle at the emulator's time and return its report."""
    from routiine_pipeline.writeback.changes import pending_changes
    from routiine_pipeline.writeback.queue import publish_due_time
    from routiine_pipeline.writeback.writer import send_changes

    client, _ = world.client(run_id=run_id, phase="writeback")
    with world.duck() as conn:
        changes = pending_changes(conn)
        report = send_changes(
            client,
            conn,
            changes,
            tenant=TENANT,
            run_id=run_id,
            now=world.clock.now(),
            retry=retry,
        )
        publish_due_time(world.store, conn, TENANT, world.clock.now())
    return report


def patches(world: World) -> list[list[str]]:
    """Return the record ids of every sObject Collections PATCH the emulator received, in order."""
    return [
        [record["id"] for record in entry["body"]["records"]]
        for entry in world.org.write_log
        if entry["path"].endswith("/composite/sobjects")
    ]
