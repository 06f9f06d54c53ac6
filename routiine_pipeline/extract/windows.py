"""Month windows of SystemModstamp and the query bounds of an incremental pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from routiine_pipeline.storage.raw_writer import Watermark


@dataclass(frozen=True)
class MonthWindow:
    """One month partition: records whose SystemModstamp falls in [start, end)."""

    key: str
    start: datetime
    end: datetime

    @classmethod
    def from_key(cls, key: str) -> MonthWindow:
        start = datetime.fromisoformat(key).replace(tzinfo=UTC)
        end = (start + timedelta(days=32)).replace(day=1)
        return cls(key, start, end)

    @classmethod
    def containing(cls, moment: datetime) -> MonthWindow:
        moment = moment.astimezone(UTC)
        return cls.from_key(moment.strftime("%Y-%m-01"))

    def previous(self) -> MonthWindow:
        return MonthWindow.containing(self.start - timedelta(days=1))

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class ExtractSettings:
    """Tuning of incremental reads.

    `overlap` is subtracted from the watermark so that records committed late
    with an older SystemModstamp, and records sharing the watermark's second,
    are read again (and deduplicated by Id). `lag` keeps the upper bound a
    little behind the run's start, so transactions still in flight at query
    time fall into the next pass rather than being sealed out.
    """

    overlap: timedelta = timedelta(minutes=5)
    lag: timedelta = timedelta(minutes=1)
    window_restarts: int = 2
    # Seconds before a window's first restart, doubled for each further one.
    restart_backoff: float = 1.0
    # Records above which a window is read through a Bulk API 2.0 query job; 0 reads all through REST.
    bulk_threshold: int = 10_000

    def __post_init__(self) -> None:
        if self.overlap < timedelta(minutes=1):
            raise ValueError(
                f"overlap {self.overlap} is below 1 minute; late commits would be missed"
            )
        if self.lag < timedelta(0):
            raise ValueError(f"lag {self.lag} is negative")
        if (
            self.window_restarts < 0
            or self.restart_backoff < 0
            or self.bulk_threshold < 0
        ):
            raise ValueError(
                f"window_restarts {self.window_restarts}, restart_backoff {self.restart_backoff} and "
                f"bulk_threshold {self.bulk_threshold} must not be negative"
            )


@dataclass(frozen=True)
class QueryBounds:
    lower: datetime
    upper: datetime
    windows: tuple[MonthWindow, ...]

    def window_for(self, moment: datetime) -> MonthWindow | None:
        for window in self.windows:
            if window.contains(moment):
                return window
        return None

    def seals(self, window: MonthWindow) -> bool:
        """Tell whether this pass reaches the window's end, which makes it the window's final pass."""
        return self.upper >= window.end


def query_bounds(
    windows: list[MonthWindow],
    watermarks: dict[str, Watermark],
    *,
    run_start: datetime,
    settings: ExtractSettings,
    full_refresh: bool = False,
) -> QueryBounds | None:
    """Compute one query's bounds over contiguous windows, or None when nothing is due.

    Each window starts at its watermark minus the overlap (never before the
    window's own start); the query starts at the earliest of them.
    """
    ordered = sorted(windows, key=lambda window: window.start)
    upper_limit = run_start - settings.lag
    due = [window for window in ordered if window.start < upper_limit]
    if not due:
        return None
    lowers = []
    for window in due:
        mark = watermarks.get(window.key)
        if full_refresh or mark is None or mark.watermark is None:
            lowers.append(window.start)
        else:
            lowers.append(max(window.start, mark.watermark - settings.overlap))
    upper = min(due[-1].end, upper_limit)
    return QueryBounds(lower=min(lowers), upper=upper, windows=tuple(due))
