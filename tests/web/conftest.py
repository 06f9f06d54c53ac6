"""A connect page served by uvicorn on loopback, in front of an emulator that shows its approval page."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pytest
import requests
from auth.helpers import CLIENT_ID, CLIENT_SECRET, free_port

from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.web.server import build_context, uvicorn_server


@dataclass
class ConnectPage:
    url: str
    emulator: EmulatorServer
    context: object


@pytest.fixture
def connect_page(routiine_home, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ROUTIINE_ALLOW_LOOPBACK", "1")
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv(
        "ROUTIINE_SF_REDIRECT_URI", f"http://127.0.0.1:{port}/oauth/callback"
    )
    org = Org(clock=Clock())
    stamp = datetime.now(UTC)
    org.load(
        {
            "Opportunity": [
                {
                    "Id": make_id("Opportunity", 1),
                    "Name": "Deal 1",
                    "StageName": "Prospecting",
                    "CloseDate": stamp.date(),
                    "IsClosed": False,
                    "IsWon": False,
                    "IsDeleted": False,
                    "CreatedDate": stamp,
                    "LastModifiedDate": stamp,
                    "SystemModstamp": stamp,
                }
            ]
        }
    )
    emulator = EmulatorServer(
        org, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, auto_approve=False
    ).start()
    (tmp_path / "dagster_home").mkdir()
    context = build_context(
        dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    )
    server = uvicorn_server(context, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the connect page did not start within 10 s"
        time.sleep(0.05)
    yield ConnectPage(f"http://127.0.0.1:{port}", emulator, context)
    server.should_exit = True
    thread.join(10)
    emulator.stop()


def csrf_of(session: requests.Session, page_url: str) -> str:
    """Load a page and return the CSRF token of its first form."""
    html = session.get(page_url, timeout=10).text
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
