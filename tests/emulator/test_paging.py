"""Query paging: nextRecordsUrl, batch sizes, snapshots, locator expiry and paging faults."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from routiine_pipeline.salesforce.ids import make_id
from tests.emulator.conftest import API, START, Emulator, opportunity, start_emulator

MASS_UPDATE = START + timedelta(minutes=5)


@pytest.fixture
def big_org(emulator: Emulator) -> Emulator:
    """Load 4,500 opportunities. Numbers 1000-3499 share one SystemModstamp, as after a mass update."""
    records = []
    for number in range(1, 4501):
        stamp = (
            MASS_UPDATE
            if 1000 <= number < 3500
            else START + timedelta(minutes=10, seconds=number)
        )
        records.append(opportunity(number, stamp))
    emulator.org.load({"Opportunity": records})
    return emulator


def fetch_all(emulator: Emulator, soql: str, **kwargs) -> tuple[list[dict], list[dict]]:
    """Follow nextRecordsUrl to the end, and return (pages, records)."""
    first = emulator.query(soql, **kwargs)
    assert first.status_code == 200, first.text
    pages = [first.json()]
    while not pages[-1]["done"]:
        response = emulator.get(pages[-1]["nextRecordsUrl"], **kwargs)
        assert response.status_code == 200, response.text
        pages.append(response.json())
    return pages, [record for page in pages for record in page["records"]]


SOQL = "SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp >= 2024-03-01T10:00:00Z ORDER BY SystemModstamp, Id"


def test_paging_across_2000_record_boundary(big_org: Emulator) -> None:
    pages, records = fetch_all(big_org, SOQL)
    assert [len(page["records"]) for page in pages] == [2000, 2000, 500]
    assert all(page["totalSize"] == 4500 for page in pages)
    ids = [record["Id"] for record in records]
    assert len(set(ids)) == 4500
    stamps = [record["SystemModstamp"] for record in records]
    assert stamps == sorted(stamps)
    assert stamps.count("2024-03-01T10:05:00.000+0000") == 2500
    assert pages[0]["nextRecordsUrl"].startswith(f"{API}/query/01g")
    assert pages[0]["nextRecordsUrl"].endswith("-2000")
    assert "nextRecordsUrl" not in pages[-1]
    assert list(pages[0]) == ["totalSize", "done", "nextRecordsUrl", "records"]


def test_each_page_is_one_api_call(big_org: Emulator) -> None:
    fetch_all(big_org, SOQL)
    assert big_org.org.data_api_calls == 3
    assert big_org.org.calls["query"] == 1
    assert big_org.org.calls["query_more"] == 2


def test_batch_size_header(big_org: Emulator) -> None:
    headers = {"Sforce-Query-Options": "batchSize=1000"}
    pages, records = fetch_all(big_org, SOQL, headers=headers)
    assert [len(page["records"]) for page in pages] == [1000] * 4 + [500]
    assert len(records) == 4500
    # Below the documented minimum of 200, the batch size is raised to 200.
    first = big_org.query(SOQL, headers={"Sforce-Query-Options": "batchSize=50"}).json()
    assert len(first["records"]) == 200


def test_query_all_locator_path(big_org: Emulator) -> None:
    first = big_org.query(SOQL, all_rows=True).json()
    assert "/query/" in first["nextRecordsUrl"]
    via_query_all = big_org.get(
        first["nextRecordsUrl"].replace("/query/", "/queryAll/")
    )
    via_query = big_org.get(first["nextRecordsUrl"])
    assert via_query_all.status_code == 200
    assert via_query_all.json() == via_query.json()


def test_locator_keeps_query_time_snapshot(big_org: Emulator) -> None:
    first = big_org.query("SELECT Id, Amount FROM Opportunity ORDER BY Id").json()
    later_id = make_id("Opportunity", 2001)
    big_org.org.update("Opportunity", later_id, {"Amount": 1.0})
    big_org.org.delete("Opportunity", make_id("Opportunity", 2002))
    second = big_org.get(first["nextRecordsUrl"]).json()
    assert second["records"][0]["Id"] == later_id
    assert second["records"][0]["Amount"] == 2001000.0
    assert second["records"][1]["Id"] == make_id("Opportunity", 2002)


def test_locator_expires_after_two_days(big_org: Emulator) -> None:
    first = big_org.query(SOQL).json()

    def fetch_with_fresh_token() -> requests.Response:
        # Access tokens live 2 hours, so each jump of the clock needs a new one.
        access, _ = big_org.org.issue_tokens(big_org.server.client.client_id)
        return big_org.get(
            first["nextRecordsUrl"], headers={"Authorization": f"Bearer {access}"}
        )

    big_org.clock.advance(timedelta(days=2).total_seconds() - 1)
    assert fetch_with_fresh_token().status_code == 200
    big_org.clock.advance(2)
    response = fetch_with_fresh_token()
    assert response.status_code == 400
    assert response.json() == [
        {"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}
    ]


def test_unknown_locator(big_org: Emulator) -> None:
    response = big_org.get(f"{API}/query/01g000000000000AAA-2000")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_skip_page_fault_drops_one_page(clock, org) -> None:
    org.load(
        {
            "Opportunity": [
                opportunity(n, START + timedelta(seconds=n)) for n in range(1, 6)
            ]
        }
    )
    emulator = start_emulator(org, clock, page_size=2)
    try:
        org.inject_fault("skip_page")
        pages, records = fetch_all(emulator, "SELECT Id FROM Opportunity ORDER BY Id")
        assert pages[0]["totalSize"] == 5
        assert pages[0]["nextRecordsUrl"].endswith("-4")
        assert [int(r["Id"][3:15]) for r in records] == [1, 2, 5]
        # The fault fired once, so the next run pages normally.
        pages, records = fetch_all(emulator, "SELECT Id FROM Opportunity ORDER BY Id")
        assert [len(page["records"]) for page in pages] == [2, 2, 1]
    finally:
        emulator.server.stop()


def test_invalid_query_locator_fault(big_org: Emulator) -> None:
    big_org.org.inject_fault("invalid_query_locator")
    first = big_org.query(SOQL)
    assert first.status_code == 200
    response = big_org.get(first.json()["nextRecordsUrl"])
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert big_org.get(first.json()["nextRecordsUrl"]).status_code == 200


def test_expired_session_mid_paging_then_refresh(big_org: Emulator) -> None:
    first = big_org.query(SOQL).json()
    big_org.org.expire_access_tokens()
    response = big_org.get(first["nextRecordsUrl"])
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    token = requests.post(
        f"{big_org.url}/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": big_org.refresh_token,
            "client_id": "routiine-demo-client",
        },
        timeout=10,
    ).json()["access_token"]
    retry = big_org.get(
        first["nextRecordsUrl"], headers={"Authorization": f"Bearer {token}"}
    )
    assert retry.status_code == 200
    assert len(retry.json()["records"]) == 2000
