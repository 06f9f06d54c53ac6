"""Faults that tests plant in the emulator: failed requests and failed record writes."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

REQUEST_FAULT_KINDS = frozenset(
    {
        "http_500",  # 500 UNKNOWN_EXCEPTION
        "http_503",  # 503 SERVER_UNAVAILABLE
        "request_limit",  # 403 REQUEST_LIMIT_EXCEEDED, as if the daily allocation ran out
        "invalid_session",  # 401 INVALID_SESSION_ID, as if the access token expired
        "invalid_query_locator",  # 400 INVALID_QUERY_LOCATOR, only on nextRecordsUrl requests
        "drop_connection",  # close the socket without sending a response
        "delay",  # sleep `seconds`, then respond normally
        "skip_page",  # the next query page's nextRecordsUrl skips one page of records
    }
)


@dataclass
class RequestFault:
    kind: str
    path_contains: str | None
    remaining: int | None  # None: fires until cleared
    seconds: float = 0.0
    skip: int = 0  # matching requests to let through before the fault fires

    def applies_to(self, path: str) -> bool:
        return self.path_contains is None or self.path_contains in path


@dataclass
class RecordFault:
    errors: list[dict[str, Any]]
    remaining: int = 1


@dataclass
class FaultPlan:
    """Planted faults, consumed in the order they were added."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    request_faults: list[RequestFault] = field(default_factory=list)
    record_faults: dict[str, list[RecordFault]] = field(default_factory=dict)

    def add_request_fault(
        self,
        kind: str,
        *,
        path_contains: str | None = None,
        count: int | None = 1,
        seconds: float = 0.0,
        skip: int = 0,
    ) -> None:
        if kind not in REQUEST_FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {kind!r}; expected one of {sorted(REQUEST_FAULT_KINDS)}"
            )
        if count is not None and count < 1:
            raise ValueError(f"fault count must be at least 1 or None, got {count}")
        if skip < 0:
            raise ValueError(f"fault skip must be at least 0, got {skip}")
        with self.lock:
            self.request_faults.append(
                RequestFault(kind, path_contains, count, seconds, skip)
            )

    def take_request_fault(
        self, path: str, kinds: frozenset[str] | set[str]
    ) -> RequestFault | None:
        """Consume and return the first planted fault of one of `kinds` that matches `path`."""
        with self.lock:
            for fault in self.request_faults:
                if fault.kind in kinds and fault.applies_to(path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self.request_faults.remove(fault)
                    logger.info(
                        "Injecting fault %s on %s", fault.kind, path.split("?", 1)[0]
                    )
                    return fault
        return None

    def add_record_fault(
        self, record_id: str, errors: list[dict[str, Any]], count: int = 1
    ) -> None:
        if not errors:
            raise ValueError("a record fault needs at least one error")
        if count < 1:
            raise ValueError(f"record fault count must be at least 1, got {count}")
        with self.lock:
            self.record_faults.setdefault(record_id[:15], []).append(
                RecordFault(errors, count)
            )

    def take_record_errors(self, record_id: str) -> list[dict[str, Any]] | None:
        """Consume one write attempt's errors for `record_id`, or return None when none are planted."""
        with self.lock:
            queue = self.record_faults.get(record_id[:15])
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining == 0:
                queue.pop(0)
            return [
                dict(error, fields=list(error.get("fields", [])))
                for error in fault.errors
            ]

    def clear(self) -> None:
        with self.lock:
            self.request_faults.clear()
            self.record_faults.clear()
