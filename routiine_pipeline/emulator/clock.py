"""The emulator's clock, which tests can set, advance and freeze."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """A UTC clock that follows wall time until a test sets or freezes it.

    Every time-dependent rule of the emulator (token lifetimes, query locator
    expiry, the 15-day delete window, the rolling API usage) reads this clock,
    so a test can move time forward without sleeping.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        # The emulated time is wall time plus this offset, or a fixed instant when frozen.
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None
        if frozen:
            self.freeze()
        if start is not None:
            self.set(start)

    def now(self) -> datetime:
        """Return the current emulated time as an aware UTC datetime."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime) -> None:
        """Jump to `moment`, which must be timezone-aware. A frozen clock stays frozen."""
        if moment.tzinfo is None:
            raise ValueError(
                f"Clock.set needs a timezone-aware datetime, got {moment!r}"
            )
        moment = moment.astimezone(UTC)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = moment
            else:
                self._offset = moment - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`, or backward when negative."""
        delta = timedelta(seconds=seconds)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset += delta

    def freeze(self) -> None:
        """Stop the clock at its current reading until `unfreeze()`."""
        moment = self.now()
        with self._lock:
            self._frozen_at = moment

    def unfreeze(self) -> None:
        """Let the clock run again from its frozen reading."""
        with self._lock:
            if self._frozen_at is None:
                return
            self._offset = self._frozen_at - datetime.now(UTC)
            self._frozen_at = None

    @property
    def frozen(self) -> bool:
        with self._lock:
            return self._frozen_at is not None
