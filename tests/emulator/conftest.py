"""Fixtures that run the Salesforce emulator on a free loopback port with a small org."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests

from routiine_pipeline.emulator import Clock, EmulatorServer, Org

START = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
API = "/services/data/v62.0"


@dataclass
class Emulator:
    """A running server, its org and an authorized session for the tests to use."""

    org: Org
    server: EmulatorServer
    clock: Clock
    access_token: str
    refresh_token: str | None
    session: requests.Session

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    def query(
        self, soql: str, *, all_rows: bool = False, **kwargs: Any
    ) -> requests.Response:
        resource = "queryAll" if all_rows else "query"
        return self.get(f"{API}/{resource}", params={"q": soql}, **kwargs)

    def patch(self, path: str, body: Any) -> requests.Response:
        return self.session.patch(self.url + path, json=body, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=10)


def opportunity(number: int, stamp: datetime, **values: Any) -> dict[str, Any]:
    """Build a complete Opportunity record for Org.load, numbered like OPP-n."""
    from routiine_pipeline.salesforce.ids import make_id

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


def start_emulator(org: Org, clock: Clock, **server_options: Any) -> Emulator:
    server = EmulatorServer(org, **server_options).start()
    access, refresh = org.issue_tokens(server.client.client_id)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access}"
    return Emulator(org, server, clock, access, refresh, session)


@pytest.fixture
def clock() -> Clock:
    return Clock(START, frozen=True)


@pytest.fixture
def org(clock: Clock) -> Org:
    return Org(clock=clock)


@pytest.fixture
def emulator(org: Org, clock: Clock) -> Iterator[Emulator]:
    running = start_emulator(org, clock)
    yield running
    running.session.close()
    running.server.stop()
