"""The budget guard over real HTTP: every call counted, caps enforced, 403 stops the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sf_world import TENANT, opportunity

from routiine_pipeline.budget import BudgetPolicy
from routiine_pipeline.budget_state import set_budget_overrides
from routiine_pipeline.control import budget_tables, tables
from routiine_pipeline.defs.resources import ApiBudget, ControlPlane
from routiine_pipeline.extract.describe import load_describes
from routiine_pipeline.salesforce.errors import BudgetExhaustedError
from routiine_pipeline.salesforce.ids import make_id


def _ledger(world) -> list[dict]:
    column = tables.api_calls.c
    with world.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(tables.api_calls)
            .where(column.tenant_id == TENANT)
            .order_by(column.id)
        )
        return [dict(row._mapping) for row in rows]


def test_every_call_kind_counted(world):
    world.org.load(
        {"Opportunity": [opportunity(n, world.clock.now()) for n in range(1, 4)]}
    )
    client, guard = world.client()
    client.limits()
    client.describe("Opportunity")
    client.query("SELECT Id FROM Opportunity")
    client.composite(
        [
            {
                "method": "GET",
                "url": client.query_url("SELECT Id FROM Account"),
                "referenceId": "a",
            }
        ]
    )
    client.update_records(
        [
            {
                "attributes": {"type": "Opportunity"},
                "id": make_id("Opportunity", 1),
                "Momentum_Score__c": 50,
            }
        ]
    )
    ledger = _ledger(world)
    assert [row["kind"] for row in ledger] == [
        "limits",
        "describe",
        "query",
        "composite",
        "collections",
    ]
    assert len(ledger) == world.org.data_api_calls == guard.total_calls == 5
    assert [row["org_used"] for row in ledger] == [1, 2, 3, 4, 5]
    assert {row["org_max"] for row in ledger} == {15_000}


@pytest.mark.parametrize(
    ("age_minutes", "stale_after_minutes", "limits_calls"),
    [(0, 15, 0), (14, 15, 0), (16, 15, 1), (16, 30, 0), (31, 30, 1)],
)
def test_limits_read_only_when_stale(
    world, age_minutes, stale_after_minutes, limits_calls
):
    client, _ = world.client()
    client.query("SELECT Id FROM Account")  # leaves a fresh reading in the ledger
    world.clock.advance(age_minutes * 60)
    policy = BudgetPolicy(stale_after=timedelta(minutes=stale_after_minutes))
    client, guard = world.client(policy, run_id="run-2")
    guard.start_run(client)
    assert guard.calls["limits"] == limits_calls
    assert world.org.calls.get("limits", 0) == limits_calls


def test_limits_read_without_reading(world):
    client, guard = world.client()
    usage = guard.start_run(client)
    assert (usage.used, usage.max) == (1, 15_000)
    assert world.org.data_api_calls == 1


def test_ceiling_blocks_before_request(world):
    world.org.add_other_app_usage(13_499)
    client, _ = world.client()
    client.query("SELECT Id FROM Account")  # usage 13,500 of 15,000: the 90% ceiling
    calls_before = world.org.data_api_calls
    with pytest.raises(BudgetExhaustedError) as raised:
        client.query("SELECT Id FROM Account")
    assert raised.value.error_code == "ORG_CEILING_REACHED"
    assert world.org.data_api_calls == calls_before


def test_share_blocks_pipeline_calls(world):
    client, _ = world.client(BudgetPolicy(share=2 / 15_000))
    client.query("SELECT Id FROM Account")
    client.query("SELECT Id FROM Account")
    with pytest.raises(BudgetExhaustedError) as raised:
        client.query("SELECT Id FROM Account")
    assert raised.value.error_code == "SHARE_REACHED"
    assert world.org.data_api_calls == 2


def test_tenant_overrides_defaults(world):
    budget = ApiBudget(control=ControlPlane())
    assert budget.policy(TENANT) == BudgetPolicy(
        share=0.25, ceiling=0.90, run_cap=2_000
    )
    set_budget_overrides(world.store, TENANT, ceiling=0.5, run_cap=10)
    assert budget.policy(TENANT) == BudgetPolicy(share=0.25, ceiling=0.5, run_cap=10)
    assert budget.policy("other") == BudgetPolicy()


def test_run_cap_stops_extract_cleanly(world):
    objects = [
        "User",
        "Account",
        "Contact",
        "Opportunity",
        "OpportunityHistory",
        "Task",
        "Event",
    ]
    client, _ = world.client(run_id="warm-up")
    world.extract(
        client, objects
    )  # caches the describes, so the next run makes only composite calls
    world.clock.advance(60)
    world.org.insert("Account", {"Name": "Late Account"})
    world.org.insert("Event", {"Subject": "Late meeting"})
    world.clock.advance(60)
    calls_before = world.org.data_api_calls

    client, guard = world.client(BudgetPolicy(run_cap=1), run_id="capped")
    extract, stopped = world.extract(client, objects)
    assert stopped is not None
    assert stopped.error_code == "RUN_CAP_REACHED"
    assert world.org.data_api_calls - calls_before == 1
    # The one call allowed carries five queries; the pass sends the two left over next.
    done = [name for name in objects if extract.outcomes[name].done]
    assert len(done) == 5
    for name in set(objects) - set(done):
        assert "RUN_CAP_REACHED" in extract.outcomes[name].error
    late_rows = {
        "Account": "SELECT count(*) FROM raw_account WHERE name = 'Late Account'",
        "Event": "SELECT count(*) FROM raw_event WHERE subject = 'Late meeting'",
    }
    with world.duck() as conn:
        for name, sql in late_rows.items():
            expected = 1 if name in done else 0
            assert conn.execute(sql).fetchone() == (expected,), name

    client, _ = world.client(run_id="resumed")
    extract, stopped = world.extract(client, objects)
    assert stopped is None
    with world.duck() as conn:
        for name, sql in late_rows.items():
            assert conn.execute(sql).fetchone() == (1,), name


def test_limit_mid_run_stops_and_resumes(routiine_home):
    """A 403 REQUEST_LIMIT_EXCEEDED in the middle of a pass, then the next pass.

    Objects run in the order Account, Contact, Opportunity, Task, Event. The
    extract sends up to five queries per composite call, so the first call
    carries the first page of all five objects (Salesforce counts it as one
    call). The 403 arrives on the second call, the one carrying Contact's
    page 2. Nothing follows it: no retry, no sleep, no other request.
    """
    from sf_world import start_world

    world = start_world(page_size=2)
    try:
        _run_limit_scenario(world)
    finally:
        world.server.stop()


def _run_limit_scenario(world) -> None:
    stamp = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    account = make_id("Account", 1)
    world.org.load(
        {
            "Account": [
                {
                    "Id": account,
                    "Name": "Acme",
                    "IsDeleted": False,
                    "CreatedDate": stamp,
                    "LastModifiedDate": stamp,
                    "SystemModstamp": stamp,
                }
            ],
            "Contact": [
                {
                    "Id": make_id("Contact", n),
                    "LastName": f"CON-{n}",
                    "AccountId": account,
                    "IsDeleted": False,
                    "CreatedDate": stamp + timedelta(minutes=9 + n),
                    "LastModifiedDate": stamp + timedelta(minutes=9 + n),
                    "SystemModstamp": stamp + timedelta(minutes=9 + n),
                }
                for n in range(1, 6)
            ],
        }
    )
    objects = ["Account", "Contact", "Opportunity", "Task", "Event"]
    client, _ = world.client(run_id="describe")
    with world.duck() as conn:
        load_describes(
            client, conn, objects, now=world.clock.now()
        )  # cached, so the pass makes no describe call
    world.org.inject_fault("request_limit", path_contains="/composite", skip=1)
    calls_before = dict(world.org.calls)
    data_before = world.org.data_api_calls

    client, guard = world.client(run_id="limited")
    extract, stopped = world.extract(client, objects)

    assert stopped is not None
    assert stopped.error_code == "REQUEST_LIMIT_EXCEEDED"
    # The 403 is not counted by Salesforce; the first composite is the only counted call.
    assert world.org.data_api_calls - data_before == 1
    assert world.org.calls.get("composite", 0) - calls_before.get("composite", 0) == 1
    assert guard.calls == {"composite": 2}
    assert guard.limit_hit is True
    with pytest.raises(BudgetExhaustedError):
        client.query("SELECT Id FROM Account")
    assert world.org.data_api_calls - data_before == 1
    assert (
        extract.outcomes["Account"].watermarks["2024-03-01"]
        == "2024-03-01T09:00:00.000Z"
    )
    assert extract.outcomes["Contact"].done is False
    with world.duck() as conn:
        contacts = conn.execute(
            "SELECT lastname FROM raw_contact ORDER BY lastname"
        ).fetchall()
        marks = dict(
            conn.execute(
                "SELECT sobject, watermark FROM _watermarks WHERE window_key = '2024-03-01'"
            ).fetchall()
        )
    assert contacts == [("CON-1",), ("CON-2",)]
    assert "Contact" not in marks or marks["Contact"] is None
    with world.store.engine.connect() as conn:
        state = conn.execute(sa.select(budget_tables.budget_state)).mappings().one()
    assert state["mode"] == "paused"
    assert "REQUEST_LIMIT_EXCEEDED" in state["reason"]
    assert [n["kind"] for n in world.store.notifications(TENANT)] == ["sync_interval"]

    world.clock.advance(3600)
    client, _ = world.client(run_id="next")
    extract, stopped = world.extract(client, objects)
    assert stopped is None
    with world.duck() as conn:
        contacts = conn.execute(
            "SELECT lastname, count(*) FROM raw_contact GROUP BY 1 ORDER BY 1"
        ).fetchall()
        mark = conn.execute(
            "SELECT watermark FROM _watermarks WHERE sobject = 'Contact' AND window_key = '2024-03-01'"
        ).fetchone()
    assert contacts == [(f"CON-{n}", 1) for n in range(1, 6)]
    assert mark[0] == datetime(2024, 3, 1, 9, 14, tzinfo=UTC)
