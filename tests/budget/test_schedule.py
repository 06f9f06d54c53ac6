"""The schedule reads intervals from the control store, notifies each change once, and calls no API."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
import sqlalchemy as sa
from sf_world import START, TENANT

from routiine_pipeline.control import budget_tables, tables
from routiine_pipeline.control.notify import WEBHOOK_ENV, Notification, deliver
from routiine_pipeline.defs.automation import due_tenants, tenant_sync_schedule
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.resources import ApiBudget, ControlPlane


def _reading(world, used: int, at) -> None:
    """Store one usage reading in the ledger, as a run's call would."""
    with world.store.engine.begin() as conn:
        conn.execute(
            tables.api_calls.insert().values(
                tenant_id=TENANT,
                at=at,
                kind="composite",
                status=200,
                org_used=used,
                org_max=15_000,
                run_id=f"run-{at:%H%M}",
                phase="incremental",
            )
        )


def _history(world) -> list[tuple]:
    table = budget_tables.interval_history
    with world.store.engine.connect() as conn:
        return conn.execute(
            sa.select(
                table.c.from_minutes, table.c.to_minutes, table.c.to_mode
            ).order_by(table.c.id)
        ).all()


# Readings over a day, one per tick, and the mode each tick must choose (1 call per run).
TICKS = [
    (9_000, "normal"),  # 60%
    (11_000, "pressure"),  # 73%
    (12_300, "high"),  # 82%
    (13_600, "paused"),  # 91%
    (12_600, "high"),  # 84% <= 85%
    (11_600, "high"),  # 77%: one step needs <= 75%
    (11_000, "pressure"),
    (9_000, "normal"),
]


def test_interval_follows_usage(world):
    budget = ApiBudget(control=ControlPlane())
    modes = []
    for tick, (used, _) in enumerate(TICKS):
        now = START + timedelta(minutes=15 * tick)
        _reading(world, used, now - timedelta(minutes=1))
        due_tenants(now, {TENANT}, budget)
        with world.store.engine.connect() as conn:
            modes.append(
                conn.execute(sa.select(budget_tables.budget_state.c.mode)).scalar_one()
            )
    assert modes == [mode for _, mode in TICKS]
    assert _history(world) == [
        (15, 30, "pressure"),
        (30, 60, "high"),
        (60, 60, "paused"),
        (60, 60, "high"),
        (60, 30, "pressure"),
        (30, 15, "normal"),
    ]
    assert world.store.get_tenant(TENANT).interval_minutes == 15
    notes = [n["message"] for n in world.store.notifications(TENANT)]
    assert len(notes) == 6
    assert "slows down from every 15 to every 30 minutes" in notes[0]
    assert "org API usage 11,000/15,000" in notes[0]
    assert "ask Salesforce for a higher daily API request limit" in notes[0]
    assert "reduce the calls other integrations" in notes[0]
    assert "is paused" in notes[2]
    assert "is back to every 15 minutes" in notes[-1]
    assert world.org.data_api_calls == 0


def test_repeated_tick_notifies_once(world):
    _reading(world, 11_000, START)
    for _ in range(3):
        due_tenants(START + timedelta(minutes=1), {TENANT})
    assert len(world.store.notifications(TENANT)) == 1


def test_schedule_skip_names_tenant(world):
    _reading(world, 11_000, START - timedelta(minutes=1))
    world.store.update_tenant(TENANT, last_requested_at=START)
    budget = ApiBudget(control=ControlPlane())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [TENANT])
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=START + timedelta(minutes=15),
            resources={"budget": budget},
        ) as context:
            result = tenant_sync_schedule(context)
    assert isinstance(result, dg.SkipReason)
    assert (
        f"{TENANT}: not due until 2024-03-01 10:30 UTC (interval 30 min, pressure"
        in result.skip_message
    )
    assert world.org.data_api_calls == 0


def test_schedule_requests_due_tenant(world):
    world.store.update_tenant(TENANT, last_requested_at=START)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [TENANT])
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=START + timedelta(minutes=15),
            resources={"budget": ApiBudget(control=ControlPlane())},
        ) as context:
            result = tenant_sync_schedule(context)
    assert [request.tags["routiine/tenant"] for request in result] == [TENANT]
    assert world.store.get_tenant(TENANT).last_requested_at == START + timedelta(
        minutes=15
    )
    assert world.store.get_tenant(TENANT).last_sync_at is None


class _Receiver(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.bodies
    server.shutdown()
    server.server_close()


def test_webhook_receives_interval_change(world, receiver, monkeypatch):
    url, bodies = receiver
    monkeypatch.setenv(WEBHOOK_ENV, url)
    _reading(world, 11_000, START)
    due_tenants(START + timedelta(minutes=1), {TENANT})
    assert len(bodies) == 1
    assert bodies[0]["tenant"] == TENANT
    assert bodies[0]["kind"] == "sync_interval"
    assert bodies[0]["details"]["to_minutes"] == 30
    assert bodies[0]["details"]["org_used"] == 11_000


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("http://127.0.0.1:9/closed", "Webhook delivery to 127.0.0.1 failed"),
        ("ftp://127.0.0.1/hook", "is not an http(s) URL"),
    ],
)
def test_webhook_failure_never_raises(monkeypatch, caplog, url, logged):
    monkeypatch.setenv(WEBHOOK_ENV, url)
    note = Notification(TENANT, "sync_interval", "test", START, {})
    assert deliver(note) is False
    assert logged in caplog.text
