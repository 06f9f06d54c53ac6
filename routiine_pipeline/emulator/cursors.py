"""Query locators: server-side snapshots of query results that clients page through."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from routiine_pipeline.emulator.clock import Clock
from routiine_pipeline.salesforce.ids import checksum_suffix

# Since API v56.0 Salesforce keeps cursors for 2 days and sets no cap on open cursors.
DEFAULT_LOCATOR_TTL = timedelta(days=2)


@dataclass(frozen=True)
class Cursor:
    """The encoded records of one query as they were at query time."""

    locator: str
    records: list[dict[str, Any]]
    opened_at: datetime
    batch_size: int


class CursorStore:
    def __init__(
        self, clock: Clock, lock: threading.RLock, ttl: timedelta = DEFAULT_LOCATOR_TTL
    ) -> None:
        self.clock = clock
        self.ttl = ttl
        self._lock = lock
        self._cursors: dict[str, Cursor] = {}
        self._next_number = random.randint(10_000, 99_999) * 1_000_000

    def open(self, records: list[dict[str, Any]], batch_size: int) -> Cursor:
        with self._lock:
            self._expire()
            self._next_number += 1
            # Locators look like Salesforce's: an Id with the 01g key prefix.
            id15 = f"01g{self._next_number:012d}"
            cursor = Cursor(
                id15 + checksum_suffix(id15), records, self.clock.now(), batch_size
            )
            self._cursors[cursor.locator] = cursor
            return cursor

    def get(self, locator: str) -> Cursor | None:
        """Return the live cursor for `locator`, or None when it is unknown or expired."""
        with self._lock:
            self._expire()
            return self._cursors.get(locator)

    def invalidate_all(self) -> None:
        with self._lock:
            self._cursors.clear()

    def _expire(self) -> None:
        cutoff = self.clock.now() - self.ttl
        for locator in [
            key for key, cursor in self._cursors.items() if cursor.opened_at <= cutoff
        ]:
            del self._cursors[locator]
