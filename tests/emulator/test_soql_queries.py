"""SOQL parsing and evaluation, checked through GET /query over HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from routiine_pipeline.salesforce.ids import make_id
from tests.emulator.conftest import API, START, Emulator, opportunity


@pytest.fixture
def loaded(emulator: Emulator) -> Emulator:
    emulator.org.load(
        {
            "Opportunity": [
                opportunity(1, START),
                opportunity(
                    2, START + timedelta(milliseconds=900), StageName="Qualification"
                ),
                opportunity(
                    3,
                    START + timedelta(seconds=7),
                    StageName="Closed Won",
                    IsClosed=True,
                    IsWon=True,
                    Amount=None,
                    Name="O'Brien deal",
                ),
                opportunity(
                    4,
                    datetime(2024, 3, 2, tzinfo=UTC),
                    StageName="Negotiation/Review",
                    CloseDate=date(2024, 4, 15),
                ),
                opportunity(5, START + timedelta(hours=1), IsDeleted=True),
            ]
        }
    )
    return emulator


def numbers(response_json: dict) -> list[int]:
    return [int(record["Id"][3:15]) for record in response_json["records"]]


WHERE = "SELECT Id FROM Opportunity WHERE "
QUERY_CASES = [
    ("SELECT Id FROM Opportunity", [1, 2, 3, 4]),
    (
        WHERE + "SystemModstamp >= 2024-03-01T10:00:00Z ORDER BY SystemModstamp, Id",
        [1, 2, 3, 4],
    ),
    # OPP-2 is 900 ms after 10:00:00, which compares equal at whole-second granularity.
    (WHERE + "SystemModstamp > 2024-03-01T10:00:00.000Z", [3, 4]),
    (WHERE + "SystemModstamp = 2024-03-01T10:00:00Z", [1, 2]),
    (WHERE + "SystemModstamp < 2024-03-01T05:00:07-05:00", [1, 2]),
    (WHERE + "SystemModstamp <= 2024-03-01T10:00:07+00:00", [1, 2, 3]),
    (WHERE + "SystemModstamp <= 2024-03-01T10:00:07.000+0000", [1, 2, 3]),
    (WHERE + "CloseDate < 2024-06-30", [4]),
    (WHERE + "StageName IN ('Prospecting', 'closed won')", [1, 3]),
    (WHERE + "StageName NOT IN ('Prospecting')", [2, 3, 4]),
    (WHERE + "Amount = null", [3]),
    (WHERE + "Amount != null AND Amount > 1500", [2, 4]),
    (WHERE + "Amount <> 2000", [1, 3, 4]),
    (
        WHERE
        + "(StageName = 'Prospecting' OR StageName = 'Qualification') AND Amount >= 2000",
        [2],
    ),
    (WHERE + "Name = 'O\\'Brien deal'", [3]),
    (WHERE + "IsWon = true", [3]),
    (WHERE + "IsWon = false AND IsClosed = FALSE", [1, 2, 4]),
    (WHERE + "Id = '006000000000002'", [2]),
    (WHERE + "Id IN ('006000000000002AAA', '006000000000004AAA')", [2, 4]),
    (WHERE + "NOT (StageName = 'Prospecting')", [2, 3, 4]),
    (WHERE + "Amount > -1", [1, 2, 4]),
    ("SELECT Id FROM Opportunity ORDER BY Amount DESC", [4, 2, 1, 3]),
    ("SELECT Id FROM Opportunity ORDER BY Amount ASC NULLS LAST", [1, 2, 4, 3]),
    ("SELECT Id FROM Opportunity ORDER BY Amount", [3, 1, 2, 4]),
    ("SELECT Id FROM Opportunity ORDER BY SystemModstamp DESC LIMIT 2", [4, 3]),
    ("SELECT Id FROM Opportunity ORDER BY Id LIMIT 2 OFFSET 1", [2, 3]),
    ("select id from OPPORTUNITY where stagename = 'Qualification'", [2]),
    ("SELECT Id FROM Opportunity WHERE StageName = 'Nothing'", []),
]


@pytest.mark.parametrize(("soql", "expected"), QUERY_CASES)
def test_query_returns_expected_records(
    loaded: Emulator, soql: str, expected: list[int]
) -> None:
    response = loaded.query(soql)
    assert response.status_code == 200, response.text
    body = response.json()
    assert numbers(body) == expected
    assert body["totalSize"] == len(expected)
    assert body["done"] is True


ERROR_CASES = [
    (WHERE + "SystemModstamp > 2024-03-01T10:00:00.123456Z", "MALFORMED_QUERY"),
    (WHERE + "SystemModstamp > 2024-03-01 10:00:00Z", "MALFORMED_QUERY"),
    (WHERE + "SystemModstamp > 2024-03-01T10:00:00", "MALFORMED_QUERY"),
    (WHERE + "SystemModstamp > '2024-03-01T10:00:00Z'", "INVALID_FIELD"),
    (WHERE + "CloseDate > 2024-03-01T10:00:00Z", "INVALID_FIELD"),
    (WHERE + "Amount > '5'", "INVALID_FIELD"),
    (WHERE + "StageName = 5", "INVALID_FIELD"),
    ("SELECT Region__c FROM Opportunity", "INVALID_FIELD"),
    (WHERE + "Region__c = 'EU'", "INVALID_FIELD"),
    ("SELECT Id FROM Opportunity ORDER BY Region__c", "INVALID_FIELD"),
    ("SELECT Id FROM Lead", "INVALID_TYPE"),
    ("SELECT Id Opportunity", "MALFORMED_QUERY"),
    ("SELECT FROM Opportunity", "MALFORMED_QUERY"),
    (WHERE + "Amount > 1 AND Amount < 5 OR Amount = 3", "MALFORMED_QUERY"),
    (WHERE + "Name = 'unterminated", "MALFORMED_QUERY"),
    (WHERE + "Amount > 1 LIMIT", "MALFORMED_QUERY"),
    (WHERE + "Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Opportunity OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
    ("SELECT Id, id FROM Opportunity", "MALFORMED_QUERY"),
]


@pytest.mark.parametrize(("soql", "error_code"), ERROR_CASES)
def test_query_rejected_with_error_code(
    loaded: Emulator, soql: str, error_code: str
) -> None:
    response = loaded.query(soql)
    assert response.status_code == 400
    errors = response.json()
    assert isinstance(errors, list)
    assert errors[0]["errorCode"] == error_code
    assert errors[0]["message"]


def test_invalid_field_message_layout(loaded: Emulator) -> None:
    response = loaded.query("SELECT Id, Region__c FROM Opportunity")
    assert response.json() == [
        {
            "message": "\nSELECT Id, Region__c FROM Opportunity\n           ^\nERROR at Row:1:Column:12\n"
            "No such column 'Region__c' on entity 'Opportunity'. If you are attempting to use a custom "
            "field, be sure to append the '__c' after the custom field name. Please reference your WSDL "
            "or the describe call for the appropriate names.",
            "errorCode": "INVALID_FIELD",
        }
    ]


def test_hidden_field_is_invalid_field(loaded: Emulator) -> None:
    loaded.org.set_field_visibility("Opportunity", "Momentum_Score__c", visible=False)
    response = loaded.query("SELECT Id, Momentum_Score__c FROM Opportunity")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"
    assert (
        "No such column 'Momentum_Score__c' on entity 'Opportunity'"
        in response.json()[0]["message"]
    )
    describe = loaded.get(f"{API}/sobjects/Opportunity/describe").json()
    assert "Momentum_Score__c" not in [field["name"] for field in describe["fields"]]
    loaded.org.set_field_visibility("Opportunity", "Momentum_Score__c", visible=True)
    assert (
        loaded.query("SELECT Id, Momentum_Score__c FROM Opportunity").status_code == 200
    )


def test_record_encoding(loaded: Emulator) -> None:
    response = loaded.query(
        "SELECT Id, Name, Amount, CloseDate, SystemModstamp, IsWon, NextStep FROM Opportunity WHERE Id = '006000000000002AAA'"
    )
    assert response.text.startswith(
        '{"totalSize":1,"done":true,"records":[{"attributes":'
    )
    assert response.json()["records"] == [
        {
            "attributes": {
                "type": "Opportunity",
                "url": f"{API}/sobjects/Opportunity/006000000000002AAA",
            },
            "Id": "006000000000002AAA",
            "Name": "Deal 2",
            "Amount": 2000.0,
            "CloseDate": "2024-06-30",
            "SystemModstamp": "2024-03-01T10:00:00.900+0000",
            "IsWon": False,
            "NextStep": None,
        }
    ]


def test_select_fields_keep_select_order(loaded: Emulator) -> None:
    record = loaded.query(
        "SELECT stagename, ID, amount FROM Opportunity LIMIT 1"
    ).json()["records"][0]
    assert list(record) == ["attributes", "StageName", "Id", "Amount"]


def test_count_query(loaded: Emulator) -> None:
    response = loaded.query("SELECT COUNT() FROM Opportunity WHERE Amount > 1500")
    assert response.json() == {"totalSize": 2, "done": True, "records": []}


def test_query_excludes_deleted_query_all_includes(loaded: Emulator) -> None:
    soql = "SELECT Id, IsDeleted FROM Opportunity WHERE IsDeleted = true"
    assert loaded.query(soql).json()["records"] == []
    rows = loaded.query(soql, all_rows=True).json()["records"]
    assert [row["Id"] for row in rows] == [make_id("Opportunity", 5)]
    assert rows[0]["IsDeleted"] is True


def test_raw_plus_in_literal_is_malformed(loaded: Emulator) -> None:
    soql = "SELECT Id FROM Opportunity WHERE SystemModstamp >= 2024-03-01T10:00:00.000+0000"
    # A raw "+" in the query string decodes to a space, which breaks the literal.
    raw = soql.replace(" ", "+")
    response = loaded.session.get(f"{loaded.url}{API}/query?q={raw}", timeout=10)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"
    encoded = soql.replace("+", "%2B").replace(" ", "+")
    response = loaded.session.get(f"{loaded.url}{API}/query?q={encoded}", timeout=10)
    assert response.status_code == 200, response.text
    assert numbers(response.json()) == [1, 2, 3, 4]


def test_where_clause_over_4000_characters(loaded: Emulator) -> None:
    ids = ", ".join(f"'{make_id('Opportunity', n)}'" for n in range(1, 200))
    soql = f"SELECT Id FROM Opportunity WHERE Id IN ({ids})"
    assert len(soql) < 16_000
    response = loaded.query(soql)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"
    short = ", ".join(f"'{make_id('Opportunity', n)}'" for n in range(1, 150))
    assert (
        loaded.query(f"SELECT Id FROM Opportunity WHERE Id IN ({short})").status_code
        == 200
    )


def test_soql_over_100000_characters(loaded: Emulator) -> None:
    soql = "SELECT Id FROM Opportunity WHERE " + " OR ".join(["Amount = 1"] * 9100)
    assert len(soql) > 100_000
    body = {
        "compositeRequest": [
            {"method": "GET", "url": f"{API}/query?q={soql}", "referenceId": "long"}
        ]
    }
    entry = loaded.post(f"{API}/composite", body).json()["compositeResponse"][0]
    assert entry["httpStatusCode"] == 400
    assert entry["body"][0]["errorCode"] == "MALFORMED_QUERY"
    assert "100000" in entry["body"][0]["message"]


def test_uri_over_16384_bytes_is_414(loaded: Emulator) -> None:
    soql = "SELECT Id FROM Opportunity WHERE Name = '" + "x" * 17_000 + "'"
    assert loaded.query(soql).status_code == 414
