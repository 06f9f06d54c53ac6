"""An emulated org served over HTTP, a client for it and a DuckDB file, for extract tests.

The org records every SOQL text it runs, decoded as the server decoded it,
so tests can check what was really sent. The clock starts frozen at
2024-03-01T10:00:00Z and moves only when a test moves it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import requests

from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from routiine_pipeline.extract.cycle import ExtractPass, ObjectOutcome
from routiine_pipeline.extract.plan import FieldPlan, plan_fields
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.mapping import default_fields
from routiine_pipeline.salesforce.client import SalesforceClient
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.storage.raw_writer import Watermark, read_watermarks
from routiine_pipeline.storage.warehouse import open_database

START = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
FEBRUARY = MonthWindow.from_key("2024-02-01")
MARCH = MonthWindow.from_key("2024-03-01")

# Values every record of a type needs besides its Id and system stamps.
_REQUIRED_VALUES: dict[str, dict[str, Any]] = {
    "User": {"LastName": "Rep", "IsActive": True},
    "Account": {"Name": "Account"},
    "Contact": {"LastName": "Contact"},
    "Opportunity": {
        "StageName": "Prospecting",
        "CloseDate": date(2024, 6, 30),
        "IsClosed": False,
        "IsWon": False,
    },
    "OpportunityHistory": {"StageName": "Prospecting"},
    "Task": {"Status": "Completed", "IsClosed": True},
    "Event": {"IsAllDayEvent": False},
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def record_id(sobject: str, number: int) -> str:
    """Return the 18-character Id of record `number`, for example OPP-1 = 006000000000001AAA."""
    return make_id(sobject, number)


def record(sobject: str, number: int, stamp: datetime, **values: Any) -> dict[str, Any]:
    """Build a complete record for Org.load whose three system stamps are `stamp`."""
    built = {
        "Id": record_id(sobject, number),
        "IsDeleted": False,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
        **_REQUIRED_VALUES[sobject],
    }
    if sobject == "Opportunity":
        built["Name"] = f"Deal {number}"
        built["Amount"] = 1000.0 * number
    if STANDARD_SCHEMAS[sobject].field_named("LastModifiedDate") is None:
        # OpportunityHistory rows are never modified, so that type has no LastModifiedDate.
        del built["LastModifiedDate"]
    built.update(values)
    return built


class RecordingOrg(Org):
    """An emulated org that also keeps each SOQL text it ran and whether it was a queryAll."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.soql_log: list[tuple[str, bool]] = []

    def run_query(self, soql: str, *, include_deleted: bool):
        self.soql_log.append((soql, include_deleted))
        return super().run_query(soql, include_deleted=include_deleted)


class IssuedTokens:
    """A token source that takes tokens straight from the emulated org, skipping the browser flow."""

    def __init__(self, org: Org, client_id: str) -> None:
        self.org = org
        self.client_id = client_id
        self.token = org.issue_tokens(client_id)[0]

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str) -> str:
        self.token = self.org.issue_tokens(self.client_id)[0]
        return self.token


@dataclass
class EmulatedOrg:
    """A running emulator, its org and clock, and the tenant's DuckDB file."""

    org: RecordingOrg
    clock: Clock
    server: EmulatorServer
    database: Path
    sessions: list[requests.Session] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, session: requests.Session | None = None) -> SalesforceClient:
        session = session or requests.Session()
        self.sessions.append(session)
        tokens = IssuedTokens(self.org, self.server.client.client_id)
        return SalesforceClient(
            instance_url=self.url, tokens=tokens, tenant="acme", session=session
        )

    def extract(
        self,
        run_start: datetime,
        *,
        sobjects: tuple[str, ...] = ("Opportunity",),
        windows: tuple[MonthWindow, ...] = (MARCH,),
        settings: ExtractSettings | None = None,
        full_refresh: bool = False,
        client: SalesforceClient | None = None,
        plans: list[FieldPlan] | None = None,
        connection: duckdb.DuckDBPyConnection | None = None,
    ) -> dict[str, ObjectOutcome]:
        """Run one pass over `sobjects` with their default fields and return its outcomes.

        Without `connection` the pass opens the DuckDB file itself, in a UTC session.
        """
        plans = plans or [
            plan_fields(name, default_fields(name), None) for name in sobjects
        ]
        with ExitStack() as stack:
            conn = connection or stack.enter_context(open_database(self.database))
            extract = ExtractPass(
                client or self.client(),
                conn,
                tenant="acme",
                settings=settings or ExtractSettings(),
                run_start=run_start,
            )
            return extract.run(plans, list(windows), full_refresh=full_refresh)

    def rows(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        with open_database(self.database, read_only=True) as conn:
            return conn.execute(sql, parameters or []).fetchall()

    def watermark(self, sobject: str, window: MonthWindow = MARCH) -> Watermark | None:
        # read_watermarks creates the watermark table when missing, so it needs a writable connection.
        with open_database(self.database) as conn:
            return read_watermarks(conn, sobject).get(window.key)

    def calls(self) -> int:
        """Return the API calls the emulator counted against the daily allocation so far."""
        return self.org.data_api_calls


@contextmanager
def emulated_org(
    tmp_path: Path, *, page_size: int = 2_000, **org_options: Any
) -> Iterator[EmulatedOrg]:
    """Serve a fresh org on a loopback port with a frozen clock at START."""
    clock = Clock(START, frozen=True)
    org = RecordingOrg(clock=clock, **org_options)
    server = EmulatorServer(org, page_size=page_size).start()
    running = EmulatedOrg(org, clock, server, tmp_path / "acme.duckdb")
    try:
        yield running
    finally:
        for session in running.sessions:
            session.close()
        server.stop()


def iso(value: datetime | None) -> str | None:
    """Render a UTC datetime in the canonical form with milliseconds, as watermarks are reported."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect_tenant(instance: Any, tenant: str, emulator_url: str) -> None:
    """Add the tenant and authorize it through the OAuth web-server flow against the emulator.

    The emulator must approve at once (auto_approve), and the environment must
    name the connected app as `oauth_environment` returns it.
    """
    from routiine_pipeline.tenants import LoopbackCallback, add_tenant, connector

    add_tenant(instance, tenant, org_type="production", login=emulator_url)
    tenant_connector = connector()
    with LoopbackCallback(tenant_connector) as callback:
        response = requests.get(tenant_connector.start(tenant), timeout=30)
        response.raise_for_status()
        callback.wait(timeout=30)


def oauth_environment(client_secret: str) -> dict[str, str]:
    """Return the environment that points the pipeline's connected app at the emulator."""
    from routiine_pipeline import oauth_settings, settings

    return {
        settings.ALLOW_LOOPBACK_ENV: "1",
        oauth_settings.CLIENT_ID_ENV: oauth_settings.DEFAULT_CLIENT_ID,
        oauth_settings.CLIENT_SECRET_ENV: client_secret,
        oauth_settings.REDIRECT_URI_ENV: f"http://127.0.0.1:{free_port()}/oauth/callback",
    }


def recording_session() -> tuple[requests.Session, list[requests.PreparedRequest]]:
    """Return a session that keeps every request it sent, in order, and that list."""
    session = requests.Session()
    sent: list[requests.PreparedRequest] = []
    session.hooks["response"].append(
        lambda response, *args, **kwargs: sent.append(response.request)
    )
    return session, sent


def subrequest_urls(sent: list[requests.PreparedRequest]) -> list[str]:
    """Return the URLs of every composite subrequest among `sent`, in order."""
    urls = []
    for request in sent:
        if request.url.endswith("/composite"):
            urls += [sub["url"] for sub in json.loads(request.body)["compositeRequest"]]
    return urls
