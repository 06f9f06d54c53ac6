from datetime import UTC, datetime, timedelta

import pytest

from routiine_pipeline.extract.records import parse_datetime
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow, query_bounds
from routiine_pipeline.storage.raw_writer import Watermark

UTC = UTC


def _mark(key: str, value: datetime | None, sealed: bool = False) -> Watermark:
    return Watermark("Opportunity", key, value, None, sealed, 0)


def test_month_window_bounds():
    window = MonthWindow.from_key("2024-12-01")
    assert window.start == datetime(2024, 12, 1, tzinfo=UTC)
    assert window.end == datetime(2025, 1, 1, tzinfo=UTC)
    assert window.previous().key == "2024-11-01"


def test_first_pass_starts_at_window_start():
    bounds = query_bounds(
        [MonthWindow.from_key("2024-03-01")],
        {},
        run_start=datetime(2024, 3, 10, tzinfo=UTC),
        settings=ExtractSettings(),
    )
    assert bounds.lower == datetime(2024, 3, 1, tzinfo=UTC)
    assert bounds.upper == datetime(2024, 3, 9, 23, 59, tzinfo=UTC)


def test_watermark_minus_overlap_is_lower_bound():
    mark = datetime(2024, 3, 1, 10, 4, 59, tzinfo=UTC)
    bounds = query_bounds(
        [MonthWindow.from_key("2024-03-01")],
        {"2024-03-01": _mark("2024-03-01", mark)},
        run_start=datetime(2024, 3, 1, 10, 15, tzinfo=UTC),
        settings=ExtractSettings(),
    )
    assert bounds.lower == datetime(2024, 3, 1, 9, 59, 59, tzinfo=UTC)
    assert bounds.lower <= datetime(2024, 3, 1, 10, 4, 57, tzinfo=UTC)


def test_overlap_never_reaches_before_window_start():
    mark = datetime(2024, 3, 1, 0, 1, tzinfo=UTC)
    bounds = query_bounds(
        [MonthWindow.from_key("2024-03-01")],
        {"2024-03-01": _mark("2024-03-01", mark)},
        run_start=datetime(2024, 3, 2, tzinfo=UTC),
        settings=ExtractSettings(),
    )
    assert bounds.lower == datetime(2024, 3, 1, tzinfo=UTC)


def test_two_windows_share_one_query():
    windows = [MonthWindow.from_key("2024-02-01"), MonthWindow.from_key("2024-03-01")]
    marks = {
        "2024-02-01": _mark("2024-02-01", datetime(2024, 2, 29, 23, 58, tzinfo=UTC))
    }
    run_start = datetime(2024, 3, 1, 0, 20, tzinfo=UTC)
    bounds = query_bounds(
        windows, marks, run_start=run_start, settings=ExtractSettings()
    )
    assert bounds.lower == datetime(2024, 2, 29, 23, 53, tzinfo=UTC)
    assert bounds.upper == datetime(2024, 3, 1, 0, 19, tzinfo=UTC)
    assert bounds.seals(windows[0])
    assert not bounds.seals(windows[1])


def test_window_not_yet_open_is_not_due():
    bounds = query_bounds(
        [MonthWindow.from_key("2024-04-01")],
        {},
        run_start=datetime(2024, 3, 31, 23, 0, tzinfo=UTC),
        settings=ExtractSettings(),
    )
    assert bounds is None


def test_overlap_below_a_minute_rejected():
    with pytest.raises(ValueError, match="overlap"):
        ExtractSettings(overlap=timedelta(seconds=30))


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-01T10:00:00.000+0000",
        "2024-03-01T10:00:00.000Z",
        "2024-03-01T10:00:00Z",
        "2024-03-01T05:00:00.000-0500",
    ],
)
def test_parse_datetime_forms_are_one_instant(text):
    assert parse_datetime(text) == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert parse_datetime(text).timestamp() == 1709287200
