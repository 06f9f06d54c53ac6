"""Org-wide controls beside the records: API usage, planted faults, tokens and the write log."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from routiine_pipeline.emulator.values import encode_value

if TYPE_CHECKING:
    from routiine_pipeline.emulator.clock import Clock
    from routiine_pipeline.emulator.cursors import CursorStore
    from routiine_pipeline.emulator.faults import FaultPlan
    from routiine_pipeline.emulator.tokens import TokenStore
    from routiine_pipeline.emulator.usage import ApiUsage


class OrgControlMixin:
    """Accounting, fault and token controls of `Org`, for tests and the admin routes."""

    lock: threading.RLock
    clock: Clock
    usage: ApiUsage
    faults: FaultPlan
    tokens: TokenStore
    cursors: CursorStore
    _records: dict[str, dict[str, dict[str, Any]]]

    def _init_control_state(self) -> None:
        self._write_log: list[dict[str, Any]] = []

    # -- API usage ---------------------------------------------------------------

    @property
    def api_usage_used(self) -> int:
        """Calls in the rolling 24 hours, this emulator's and other apps' together."""
        return self.usage.used

    @property
    def daily_api_limit(self) -> int:
        return self.usage.daily_limit

    @daily_api_limit.setter
    def daily_api_limit(self, limit: int) -> None:
        self.usage.daily_limit = limit

    def add_other_app_usage(self, calls: int) -> None:
        """Count `calls` made by other apps of the org against the daily allocation."""
        self.usage.add_other_app_usage(calls)

    @property
    def calls(self) -> dict[str, int]:
        """Requests by kind, such as query, query_more, collections or token."""
        with self.lock:
            return dict(self.usage.calls)

    @property
    def data_api_calls(self) -> int:
        """Requests under /services/data/vNN.0/ that counted against the daily allocation."""
        return self.usage.data_api_calls

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "clock": encode_value(self.clock.now()),
                "api_usage_used": self.api_usage_used,
                "daily_api_limit": self.usage.daily_limit,
                "data_api_calls": self.data_api_calls,
                "calls": self.calls,
                "records": {name: len(table) for name, table in self._records.items()},
                "write_log_entries": len(self._write_log),
            }

    # -- faults ------------------------------------------------------------------

    def inject_fault(
        self,
        kind: str,
        *,
        path_contains: str | None = None,
        count: int | None = 1,
        seconds: float = 0.0,
        skip: int = 0,
    ) -> None:
        """Fail `count` matching requests (None: all until `clear_faults`) after letting `skip` through.

        `kind` is one of faults.REQUEST_FAULT_KINDS. `path_contains` restricts the
        fault to requests whose path and query string contain that text.
        `seconds` is the sleep of a "delay" fault.
        """
        self.faults.add_request_fault(
            kind, path_contains=path_contains, count=count, seconds=seconds, skip=skip
        )

    def inject_record_fault(
        self,
        record_id: str,
        status_code: str | None = None,
        message: str | None = None,
        fields: list[str] | tuple[str, ...] = (),
        count: int = 1,
        *,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Fail the next `count` write attempts on `record_id` with one error or the list `errors`.

        Each error is {"statusCode", "message", "fields"}, as in a SaveResult, for
        example UNABLE_TO_LOCK_ROW or FIELD_CUSTOM_VALIDATION_EXCEPTION.
        """
        if errors is None:
            if status_code is None or message is None:
                raise ValueError("give status_code and message, or errors")
            errors = [
                {"statusCode": status_code, "message": message, "fields": list(fields)}
            ]
        self.faults.add_record_fault(record_id, errors, count)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- tokens and cursors --------------------------------------------------------

    def expire_access_tokens(self) -> int:
        """Expire every access token, so each client's next API call gets 401 INVALID_SESSION_ID."""
        return self.tokens.expire_access_tokens()

    @property
    def rotate_refresh_tokens(self) -> bool:
        return self.tokens.rotate_refresh_tokens

    @rotate_refresh_tokens.setter
    def rotate_refresh_tokens(self, rotate: bool) -> None:
        self.tokens.rotate_refresh_tokens = rotate

    def set_refresh_token_policy(
        self, policy: str, ttl_seconds: float | None = None
    ) -> None:
        """Set the refresh-token policy: valid_until_revoked, expire_after, expire_if_unused or immediately_expire."""
        ttl = timedelta(seconds=ttl_seconds) if ttl_seconds is not None else None
        self.tokens.set_refresh_token_policy(policy, ttl)

    def issue_tokens(
        self, client_id: str, scope: str = "api refresh_token id"
    ) -> tuple[str, str | None]:
        """Issue an access and refresh token without the browser flow, for tests and scripts."""
        grant = self.tokens.issue(client_id, scope)
        return grant.access_token, grant.refresh_token

    def expire_query_locators(self) -> None:
        self.cursors.invalidate_all()

    # -- write log ---------------------------------------------------------------

    def log_write(self, method: str, path: str, body: Any) -> None:
        with self.lock:
            self._write_log.append(
                {
                    "at": self.clock.now(),
                    "method": method,
                    "path": path,
                    "body": copy.deepcopy(body),
                }
            )

    @property
    def write_log(self) -> list[dict[str, Any]]:
        """Every write request body received, with its time, method and path, oldest first."""
        with self.lock:
            return copy.deepcopy(self._write_log)

    def clear_write_log(self) -> None:
        with self.lock:
            self._write_log.clear()
