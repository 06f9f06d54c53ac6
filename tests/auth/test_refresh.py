"""Refreshing on 401 INVALID_SESSION_ID: once per expiry, stored atomically, safe across threads and processes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auth.helpers import CLIENT_ID, CLIENT_SECRET, make_setup
from routiine_pipeline.control.store import CONNECTED
from routiine_pipeline.emulator import Clock, Org
from routiine_pipeline.salesforce.client import SalesforceClient
from routiine_pipeline.salesforce.errors import SessionExpiredError
from routiine_pipeline.salesforce.ids import make_id

WORKER = Path(__file__).with_name("refresh_worker.py")
STAMPS = [datetime(2024, 3, 1, 9, minute, tzinfo=UTC) for minute in (1, 2, 3, 4)]


def _opportunities() -> list[dict]:
    return [
        {
            "Id": make_id("Opportunity", number),
            "Name": f"Deal {number}",
            "StageName": "Prospecting",
            "CloseDate": datetime(2024, 6, 30).date(),
            "IsClosed": False,
            "IsWon": False,
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        for number, stamp in enumerate(STAMPS, start=1)
    ]


@pytest.fixture
def paged(emulator_env, redirect_uri):
    """An emulator that serves 2 records per page over 4 Opportunities, with tenant alpha connected."""
    org = Org(clock=Clock(datetime(2024, 3, 1, 10, 0, tzinfo=UTC), frozen=True))
    org.load({"Opportunity": _opportunities()})
    setup = make_setup(org, emulator_env, redirect_uri)
    setup.server.page_size = 2
    setup.connect("alpha")
    yield setup
    setup.server.stop()


def _client(setup) -> SalesforceClient:
    return SalesforceClient(
        instance_url=setup.server.url, tokens=setup.tokens("alpha"), tenant="alpha"
    )


def test_expiry_mid_query_refreshes_once(paged):
    client = _client(paged)
    token_a1 = paged.tokens("alpha").access_token()
    first = client.query(
        "SELECT Id, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id"
    )
    assert len(first["records"]) == 2
    assert first["done"] is False
    paged.org.faults.add_request_fault(
        "invalid_session", path_contains="/query/", count=1
    )
    before = paged.token_requests()
    second = client.query_more(first["nextRecordsUrl"])
    token_a2 = paged.tokens("alpha").access_token()
    assert paged.token_requests() - before == 1
    assert token_a2 != token_a1
    assert second["done"] is True
    assert len(second["records"]) == 2
    records = first["records"] + second["records"]
    assert len({record["Id"] for record in records}) == 4
    assert (
        max(record["SystemModstamp"] for record in records)
        == "2024-03-01T09:04:00.000+0000"
    )
    assert [event.kind for event in client.events] == ["refresh"]


def test_second_401_after_refresh_fails(paged):
    client = _client(paged)
    first = client.query(
        "SELECT Id, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id"
    )
    paged.org.faults.add_request_fault(
        "invalid_session", path_contains="/query/", count=2
    )
    before = paged.token_requests()
    with pytest.raises(SessionExpiredError, match="INVALID_SESSION_ID"):
        client.query_more(first["nextRecordsUrl"])
    assert paged.token_requests() - before == 1


def test_patch_resent_with_identical_body(paged):
    client = _client(paged)
    records = [
        {
            "attributes": {"type": "Opportunity"},
            "id": make_id("Opportunity", 1),
            "Name": "Renamed 1",
        },
        {
            "attributes": {"type": "Opportunity"},
            "id": make_id("Opportunity", 2),
            "Name": "Renamed 2",
        },
    ]
    paged.org.faults.add_request_fault(
        "invalid_session", path_contains="/composite/sobjects", count=1
    )
    before = paged.token_requests()
    results = client.update_records(records)
    assert paged.token_requests() - before == 1
    assert [result["success"] for result in results] == [True, True]
    log = paged.org.write_log
    assert len(log) == 1
    assert log[0]["body"] == {"allOrNone": False, "records": records}


def test_rotated_refresh_token_stored_with_access(emulator_env, redirect_uri):
    org = Org(clock=Clock(), rotate_refresh_tokens=True)
    setup = make_setup(org, emulator_env, redirect_uri)
    try:
        setup.connect("alpha")
        tokens = setup.tokens("alpha")
        old_access, old_refresh = tokens.access_token(), tokens.refresh_token()
        new_access = tokens.refresh(old_access)
        new_refresh = tokens.refresh_token()
        assert new_access == tokens.access_token()
        assert new_refresh != old_refresh
        assert org.tokens._refresh[old_refresh].revoked is True
        assert org.tokens._refresh[new_refresh].revoked is False
        # The stored, rotated refresh token works for the next expiry.
        assert tokens.refresh(new_access) != new_access
        assert setup.token_requests() == 3
    finally:
        setup.server.stop()


def test_threads_share_one_refresh(emulator_env, redirect_uri):
    org = Org(clock=Clock(), rotate_refresh_tokens=True)
    setup = make_setup(org, emulator_env, redirect_uri)
    try:
        setup.connect("alpha")
        rejected = setup.tokens("alpha").access_token()
        before = setup.token_requests()
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(lambda _: setup.tokens("alpha").refresh(rejected), range(8))
            )
        assert setup.token_requests() - before == 1
        assert len(set(results)) == 1
        assert setup.store.get_tenant("alpha").status == CONNECTED
    finally:
        setup.server.stop()


def _two_process_refresh(setup, store_url: str, home: Path) -> None:
    setup.connect("alpha")
    rejected = setup.tokens("alpha").access_token()
    rejected_file = home / "rejected.txt"
    rejected_file.write_text(rejected)
    before = setup.token_requests()
    start_at = str(time.time() + 4.0)
    args = [
        store_url,
        str(home),
        "alpha",
        str(rejected_file),
        start_at,
        CLIENT_ID,
        CLIENT_SECRET,
    ]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr
    hashes = {stdout.split()[0] for stdout, _ in outputs}
    refreshes = sorted(int(stdout.split()[1]) for stdout, _ in outputs)
    stored = setup.tokens("alpha")
    assert setup.token_requests() - before == 1
    assert refreshes == [0, 1]
    assert hashes == {hashlib.sha256(stored.access_token().encode()).hexdigest()}
    assert setup.store.get_tenant("alpha").status == CONNECTED
    # The rotated refresh token that was stored is the live one: the next refresh succeeds.
    refresh = stored.refresh_token()
    assert setup.org.tokens._refresh[refresh].revoked is False
    assert stored.refresh(stored.access_token())


def test_two_processes_keep_rotated_token_sqlite(emulator_env, redirect_uri):
    org = Org(clock=Clock(), rotate_refresh_tokens=True)
    setup = make_setup(org, emulator_env, redirect_uri)
    try:
        _two_process_refresh(
            setup, f"sqlite:///{emulator_env / 'control.db'}", emulator_env
        )
    finally:
        setup.server.stop()


def test_two_processes_keep_rotated_token_postgres(
    emulator_env, redirect_uri, postgres_url
):
    org = Org(clock=Clock(), rotate_refresh_tokens=True)
    setup = make_setup(org, emulator_env, redirect_uri, store_url=postgres_url)
    try:
        _two_process_refresh(setup, postgres_url, emulator_env)
    finally:
        setup.server.stop()
        setup.store.engine.dispose()


def test_lease_of_crashed_holder_expires(emulator_env, redirect_uri):
    setup = make_setup(Org(clock=Clock()), emulator_env, redirect_uri)
    try:
        setup.connect("alpha")
        rejected = setup.tokens("alpha").access_token()
        from routiine_pipeline.control import tables
        from routiine_pipeline.control.store import utcnow

        with setup.store.engine.begin() as conn:
            conn.execute(
                tables.tokens.update().values(
                    refresh_lease_owner="crashed-process",
                    refresh_lease_until=utcnow() - timedelta(seconds=1),
                )
            )
        assert setup.tokens("alpha").refresh(rejected) != rejected
        assert setup.token_requests() == 2
    finally:
        setup.server.stop()
