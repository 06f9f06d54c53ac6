"""A retry policy for transient failures: bounded attempts, exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before repeating a call that failed transiently.

    `max_attempts` counts the first try, so 3 means at most two retries.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        """Return the pause in seconds before attempt number `attempt + 1`."""
        pause = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return pause * (1 + random.uniform(-self.jitter, self.jitter))

    def should_retry(self, attempt: int) -> bool:
        return attempt < self.max_attempts


NO_RETRY = RetryPolicy(max_attempts=1)
