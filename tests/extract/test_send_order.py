"""How a pass fills its Composite calls: follow-up pages first, then the largest queries.

The emulator serves 10 records a page, so every query's page count is fixed
by its record count. A query of n pages needs at least n calls, because each page's request
waits for the previous page's nextRecordsUrl, and a call carries at most five
query subrequests.
"""

from __future__ import annotations

import json
from datetime import timedelta

import requests
from emulated_org import (
    FEBRUARY,
    MARCH,
    START,
    emulated_org,
    record,
    recording_session,
)

PAGE_SIZE = 10
SEVEN_OBJECTS = (
    "User",
    "Account",
    "Contact",
    "Opportunity",
    "OpportunityHistory",
    "Task",
    "Event",
)


def _records(counts: dict[str, int], *, first_number: int, month_start) -> dict:
    """Build `counts[sobject]` records per sObject, stamped one minute apart from `month_start`."""
    return {
        sobject: [
            record(
                sobject, first_number + index, month_start + timedelta(minutes=index)
            )
            for index in range(count)
        ]
        for sobject, count in counts.items()
    }


def _calls(sent: list[requests.PreparedRequest]) -> list[list[str]]:
    """Return each Composite call's subrequests as `sObject` (first page) or `sObject+` (follow-up page)."""
    calls = []
    for request in sent:
        if not request.url.endswith("/composite"):
            continue
        subrequests = json.loads(request.body)["compositeRequest"]
        calls.append(
            [
                sub["referenceId"].split("_", 1)[1]
                + ("" if "/queryAll?q=" in sub["url"] else "+")
                for sub in subrequests
            ]
        )
    return calls


def test_empty_file_sends_largest_first(tmp_path):
    # Task and OpportunityHistory take three pages each, and the other five queries one.
    counts = {sobject: 1 for sobject in SEVEN_OBJECTS}
    counts.update(Task=30, OpportunityHistory=30)
    with emulated_org(tmp_path, page_size=PAGE_SIZE) as env:
        env.org.load(_records(counts, first_number=1, month_start=MARCH.start))
        session, sent = recording_session()

        outcomes = env.extract(
            START, sobjects=SEVEN_OBJECTS, client=env.client(session)
        )

        assert all(
            outcome.done and outcome.error is None for outcome in outcomes.values()
        )
        assert outcomes["Task"].pages == 3
        assert outcomes["OpportunityHistory"].pages == 3
        # 11 pages: at least 3 calls of 5, and 3 calls for the 3-page chains.
        assert _calls(sent) == [
            ["Task", "Event", "OpportunityHistory", "Opportunity", "Contact"],
            ["Task+", "OpportunityHistory+", "Account", "User"],
            ["Task+", "OpportunityHistory+"],
        ]


def test_stored_rows_order_first_pages(tmp_path):
    with emulated_org(tmp_path, page_size=PAGE_SIZE) as env:
        env.org.load(
            _records(
                {"User": 25, "Event": 25}, first_number=1, month_start=FEBRUARY.start
            )
        )
        env.extract(START, sobjects=SEVEN_OBJECTS, windows=(FEBRUARY,))

        # In March, User and Event take three pages each, as their stored rows predict.
        march = {sobject: 1 for sobject in SEVEN_OBJECTS}
        march.update(User=25, Event=25)
        env.org.load(_records(march, first_number=101, month_start=MARCH.start))
        session, sent = recording_session()
        composite_before = env.org.calls.get("composite", 0)

        outcomes = env.extract(
            START, sobjects=SEVEN_OBJECTS, client=env.client(session)
        )

        assert all(
            outcome.done and outcome.error is None for outcome in outcomes.values()
        )
        assert env.org.calls.get("composite", 0) - composite_before == 3
        # Equal stored rows: the default order puts Event before User.
        assert _calls(sent) == [
            ["Event", "User", "Task", "OpportunityHistory", "Opportunity"],
            ["Event+", "User+", "Contact", "Account"],
            ["Event+", "User+"],
        ]
        assert env.rows("SELECT count(*) FROM raw_user") == [(50,)]
        assert env.rows("SELECT count(*) FROM raw_event") == [(50,)]


def test_longest_follow_up_chain_first(tmp_path):
    # Seven queries of several pages: Account and User start once follow-up pages
    # leave slots free, and Task, with the most records left, is in every call.
    counts = {sobject: 20 for sobject in SEVEN_OBJECTS}
    counts.update(Task=50)
    with emulated_org(tmp_path, page_size=PAGE_SIZE) as env:
        env.org.load(_records(counts, first_number=1, month_start=MARCH.start))
        session, sent = recording_session()

        outcomes = env.extract(
            START, sobjects=SEVEN_OBJECTS, client=env.client(session)
        )

        assert all(
            outcome.done and outcome.error is None for outcome in outcomes.values()
        )
        assert outcomes["Task"].pages == 5
        calls = _calls(sent)
        # Task's five pages bound the pass at five calls, although 17 pages would fit in four.
        assert len(calls) == 5
        assert all(call[0].startswith("Task") for call in calls)
        assert calls[1] == [
            "Task+",
            "Event+",
            "OpportunityHistory+",
            "Opportunity+",
            "Contact+",
        ]
