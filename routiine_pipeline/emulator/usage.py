"""API call accounting: the rolling 24-hour usage behind Sforce-Limit-Info and /limits."""

from __future__ import annotations

import threading
from collections import Counter, deque
from datetime import datetime, timedelta

from routiine_pipeline.emulator.clock import Clock

ROLLING_WINDOW = timedelta(hours=24)


class ApiUsage:
    """Counts requests by kind and keeps the org's rolling usage against its daily allocation.

    Usage includes calls made by other apps of the same org (`add_other_app_usage`),
    because Salesforce reports one org-wide number.
    """

    def __init__(self, clock: Clock, daily_limit: int, lock: threading.RLock) -> None:
        self.clock = clock
        self.daily_limit = daily_limit
        self._lock = lock
        self._window: deque[tuple[datetime, int]] = deque()
        self.calls: Counter[str] = Counter()
        self.data_api_calls = 0

    def record(self, kind: str, *, counted: bool) -> None:
        """Count one request of `kind`. A `counted` request also uses the daily allocation."""
        with self._lock:
            self.calls[kind] += 1
            if counted:
                self.data_api_calls += 1
                self._window.append((self.clock.now(), 1))

    def add_other_app_usage(self, calls: int) -> None:
        with self._lock:
            self._window.append((self.clock.now(), calls))

    @property
    def used(self) -> int:
        with self._lock:
            cutoff = self.clock.now() - ROLLING_WINDOW
            while self._window and self._window[0][0] <= cutoff:
                self._window.popleft()
            return sum(calls for _, calls in self._window)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.daily_limit

    def header_value(self) -> str:
        """Format the Sforce-Limit-Info value, for example api-usage=18/15000."""
        return f"api-usage={self.used}/{self.daily_limit}"
