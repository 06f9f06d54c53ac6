"""Incremental passes against the emulator over HTTP: nothing lost, nothing doubled.

Each test loads an org, runs ExtractPass with a fixed run start against a
frozen emulator clock, and reads the real DuckDB file afterwards.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import requests
from emulated_org import (
    FEBRUARY,
    MARCH,
    START,
    emulated_org,
    iso,
    minutes,
    record,
    record_id,
    utc,
)

from routiine_pipeline.extract.windows import ExtractSettings

OPPORTUNITY = "Opportunity"
FIVE_OBJECTS = ("User", "Account", "Contact", "Opportunity", "Task")
SEVEN_OBJECTS = (
    "User",
    "Account",
    "Contact",
    "Opportunity",
    "OpportunityHistory",
    "Task",
    "Event",
)
NO_LAG = ExtractSettings(lag=timedelta(0))


@pytest.mark.parametrize(
    ("sharing", "pages"),
    [(1_999, 1), (2_000, 2), (2_001, 2), (4_500, 3)],
)
def test_shared_stamp_across_page_boundary(tmp_path, sharing, pages):
    shared = utc(2024, 3, 1, 9, 30)
    newest = shared + timedelta(seconds=1)
    records = [record(OPPORTUNITY, n, shared) for n in range(1, sharing + 1)]
    records.append(record(OPPORTUNITY, sharing + 1, newest))
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: records})

        outcome = env.extract(START)[OPPORTUNITY]
        assert outcome.error is None
        assert outcome.pages == pages
        assert outcome.received == sharing + 1
        assert env.rows("SELECT count(*), count(DISTINCT id) FROM raw_opportunity") == [
            (sharing + 1, sharing + 1)
        ]
        mark = env.watermark(OPPORTUNITY)
        assert mark.watermark == newest
        assert mark.watermark_id == record_id(OPPORTUNITY, sharing + 1)

        # The overlap reads the whole shared second again; the upsert keeps one row per Id.
        again = env.extract(START + minutes(10))[OPPORTUNITY]
        assert again.received == sharing + 1
        assert env.rows("SELECT count(*), count(DISTINCT id) FROM raw_opportunity") == [
            (sharing + 1, sharing + 1)
        ]
        assert env.watermark(OPPORTUNITY).watermark == newest


@pytest.mark.parametrize(
    ("late_stamp", "picked_up"),
    [
        (
            utc(2024, 3, 1, 10, 4, 57),
            True,
        ),  # 2 s older than the newest record already read
        (
            utc(2024, 3, 1, 10, 0, 0),
            True,
        ),  # 4 min 59 s older, still inside the 5-minute overlap
        (
            utc(2024, 3, 1, 9, 59, 58),
            False,
        ),  # 5 min 1 s older: outside the overlap, missed
    ],
)
def test_late_commit_within_overlap(tmp_path, late_stamp, picked_up):
    seen_newest = utc(2024, 3, 1, 10, 4, 59)
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, 1, utc(2024, 3, 1, 10, 4, 58)),
                    record(OPPORTUNITY, 2, seen_newest),
                ]
            }
        )
        env.clock.set(utc(2024, 3, 1, 10, 5, 0))
        env.extract(utc(2024, 3, 1, 10, 5, 0), settings=NO_LAG)
        assert env.watermark(OPPORTUNITY).watermark == seen_newest

        env.clock.set(utc(2024, 3, 1, 10, 5, 3))
        late_id = env.org.late_commit(
            OPPORTUNITY,
            {"Name": "Late", "StageName": "Negotiation/Review"},
            stamp=late_stamp,
        )
        env.clock.set(utc(2024, 3, 1, 10, 15, 0))
        env.extract(utc(2024, 3, 1, 10, 15, 0), settings=NO_LAG)

        stored = env.rows(
            "SELECT stagename FROM raw_opportunity WHERE id = ?", [late_id]
        )
        assert stored == ([("Negotiation/Review",)] if picked_up else [])
        assert env.rows(
            "SELECT count(*) = count(DISTINCT id) FROM raw_opportunity"
        ) == [(True,)]
        assert env.watermark(OPPORTUNITY).watermark == seen_newest


@pytest.mark.parametrize(
    ("changed", "page_of_change"),
    [(1, "already read"), (5, "not read yet")],
)
def test_change_during_paging_kept_newest(tmp_path, changed, page_of_change):
    changed_at = utc(2024, 3, 1, 10, 0, 30)
    changed_id = record_id(OPPORTUNITY, changed)
    with emulated_org(tmp_path, page_size=2) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, n, utc(2024, 3, 1, 9, n)) for n in range(1, 6)
                ]
            }
        )
        session = requests.Session()
        composite_calls = []

        def change_after_first_page(
            response: requests.Response, *args, **kwargs
        ) -> None:
            composite_calls.append(response.url)
            if len(composite_calls) == 1:
                env.org.update(
                    OPPORTUNITY,
                    changed_id,
                    {"StageName": "Qualification"},
                    at=changed_at,
                )

        session.hooks["response"].append(change_after_first_page)
        first = env.extract(utc(2024, 3, 1, 10, 2), client=env.client(session))[
            OPPORTUNITY
        ]
        assert first.pages == 3
        assert env.rows(
            "SELECT stagename FROM raw_opportunity WHERE id = ?", [changed_id]
        ) == [("Prospecting",)]

        second = env.extract(utc(2024, 3, 1, 10, 10))[OPPORTUNITY]
        assert second.received == 5
        assert env.rows(
            "SELECT count(*) FROM raw_opportunity WHERE id = ?", [changed_id]
        ) == [(1,)]
        assert env.rows(
            "SELECT stagename FROM raw_opportunity WHERE id = ?", [changed_id]
        ) == [("Qualification",)]
        assert env.rows("SELECT count(*) FROM raw_opportunity") == [(5,)]
        assert env.watermark(OPPORTUNITY).watermark == changed_at
        assert env.watermark(OPPORTUNITY).watermark_id == changed_id


@pytest.mark.parametrize(
    ("first_run", "february_sealed_first"),
    [
        (
            utc(2024, 3, 1, 10, 0),
            True,
        ),  # February closed and had its final pass before the move
        (
            utc(2024, 3, 1, 0, 0, 30),
            False,
        ),  # February still open: one query spans both months
    ],
)
def test_record_moving_between_month_windows(
    tmp_path, first_run, february_sealed_first
):
    moved_id = record_id(OPPORTUNITY, 1)
    moved_at = first_run + minutes(1)
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(
                        OPPORTUNITY, 1, utc(2024, 2, 20, 9, 0), StageName="Prospecting"
                    ),
                    record(OPPORTUNITY, 2, utc(2024, 2, 25, 9, 0)),
                ]
            }
        )
        env.clock.set(first_run)
        env.extract(first_run, windows=(FEBRUARY, MARCH))
        assert env.rows(
            "SELECT _window FROM raw_opportunity WHERE id = ?", [moved_id]
        ) == [("2024-02-01",)]
        assert env.watermark(OPPORTUNITY, FEBRUARY).sealed is february_sealed_first

        env.org.update(OPPORTUNITY, moved_id, {"StageName": "Closed Won"}, at=moved_at)
        env.extract(moved_at + minutes(10), windows=(FEBRUARY, MARCH))

        assert env.rows(
            "SELECT count(*), max(stagename), max(_window) FROM raw_opportunity WHERE id = ?",
            [moved_id],
        ) == [(1, "Closed Won", "2024-03-01")]
        assert env.watermark(OPPORTUNITY, MARCH).watermark == moved_at
        assert env.watermark(OPPORTUNITY, FEBRUARY).watermark == utc(2024, 2, 25, 9, 0)
        assert env.watermark(OPPORTUNITY, FEBRUARY).sealed is True


@pytest.mark.parametrize(
    ("sobjects", "with_records", "quiet_calls"),
    [
        (("Opportunity",), True, 1),
        (FIVE_OBJECTS, True, 1),
        (FIVE_OBJECTS, False, 1),
        (SEVEN_OBJECTS, True, math.ceil(7 / 5)),
    ],
)
def test_empty_cycle_keeps_watermarks(tmp_path, sobjects, with_records, quiet_calls):
    with emulated_org(tmp_path) as env:
        if with_records:
            env.org.load(
                {name: [record(name, 1, utc(2024, 3, 1, 9, 0))] for name in sobjects}
            )
        env.extract(START, sobjects=sobjects)
        before = {name: env.watermark(name) for name in sobjects}
        calls_before = env.calls()
        composite_before = env.org.calls.get("composite", 0)

        env.clock.advance(15 * 60)
        outcomes = env.extract(START + minutes(15), sobjects=sobjects)

        assert env.calls() - calls_before == quiet_calls
        assert env.org.calls.get("composite", 0) - composite_before == quiet_calls
        for name in sobjects:
            assert outcomes[name].error is None
            after = env.watermark(name)
            if not with_records:
                assert after is None or after.watermark is None
                continue
            assert after.watermark == utc(2024, 3, 1, 9, 0)
            assert before[name].watermark == utc(2024, 3, 1, 9, 0)
            assert after.watermark_id == before[name].watermark_id


def test_query_ordered_and_bounded(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: [record(OPPORTUNITY, 1, utc(2024, 3, 1, 9, 0))]})
        env.extract(START)
        env.extract(START + minutes(15))
        first, second = [soql for soql, _ in env.org.soql_log]
    assert (
        "SystemModstamp >= 2024-03-01T00:00:00Z AND SystemModstamp < 2024-03-01T09:59:00Z"
        in first
    )
    assert first.endswith("ORDER BY SystemModstamp ASC, Id ASC")
    assert (
        "SystemModstamp >= 2024-03-01T08:55:00Z AND SystemModstamp < 2024-03-01T10:14:00Z"
        in second
    )
    assert [include_deleted for _, include_deleted in env.org.soql_log] == [True, True]


@pytest.mark.parametrize(
    ("run_start", "february_sealed"),
    [
        (
            utc(2024, 3, 1, 0, 0, 30),
            False,
        ),  # upper bound 23:59:30 on Feb 29: February not fully read
        (utc(2024, 3, 1, 0, 0, 59), False),
        (
            utc(2024, 3, 1, 0, 1, 0),
            True,
        ),  # upper bound reaches March 1 00:00: the final pass
        (utc(2024, 3, 1, 10, 0), True),
    ],
)
def test_previous_month_sealed_after_final_pass(tmp_path, run_start, february_sealed):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: [record(OPPORTUNITY, 1, utc(2024, 2, 29, 23, 58))]})
        env.clock.set(run_start)
        outcome = env.extract(run_start, windows=(FEBRUARY, MARCH))[OPPORTUNITY]
        assert env.watermark(OPPORTUNITY, FEBRUARY).sealed is february_sealed
        assert outcome.sealed == (["2024-02-01"] if february_sealed else [])
        march = env.watermark(OPPORTUNITY, MARCH)
        assert march is None or march.sealed is False


def test_sealed_month_not_queried_again(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: [record(OPPORTUNITY, 1, utc(2024, 2, 29, 23, 58))]})
        env.extract(START, windows=(FEBRUARY, MARCH))
        # A transaction that commits after the final pass with a February stamp is not read:
        # sealing trusts that no transaction stays open longer than the lag.
        late_id = env.org.late_commit(
            OPPORTUNITY, {"Name": "Too late"}, stamp=utc(2024, 2, 29, 23, 59, 59)
        )
        env.extract(START + minutes(15), windows=(FEBRUARY, MARCH))
        assert "SystemModstamp >= 2024-03-01T00:00:00Z" in env.org.soql_log[-1][0]
        assert env.rows(
            "SELECT count(*) FROM raw_opportunity WHERE id = ?", [late_id]
        ) == [(0,)]

        outcome = env.extract(
            START + minutes(30), windows=(FEBRUARY,), full_refresh=True
        )[OPPORTUNITY]
        assert outcome.lower == iso(FEBRUARY.start)
        assert env.rows(
            "SELECT count(*) FROM raw_opportunity WHERE id = ?", [late_id]
        ) == [(1,)]
        assert env.watermark(OPPORTUNITY, FEBRUARY).watermark == utc(
            2024, 2, 29, 23, 59, 59
        )
