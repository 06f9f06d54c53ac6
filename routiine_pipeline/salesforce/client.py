"""A Salesforce REST client for the calls the pipeline makes, and only those.

Every request goes through one method, `_send`, which consults the budget guard
before the call, reads `Sforce-Limit-Info` after it, refreshes the access
token once on 401 INVALID_SESSION_ID, and turns error bodies into typed
exceptions. Nothing here logs a token.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import requests

from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.limits import ApiUsage, parse_limit_info
from routiine_pipeline.salesforce.retry import RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "62.0"
# Salesforce rejects a URI plus headers above 16,384 bytes with 414; keep a margin for headers.
MAX_GET_URL_BYTES = 14_000
MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COMPOSITE_QUERIES = 5
MAX_COLLECTION_RECORDS = 200


class TokenSource(Protocol):
    """Source of the client's access token, and of a new one when Salesforce rejects it."""

    def access_token(self) -> str: ...

    def refresh(self, rejected_token: str) -> str:
        """Return a fresh access token; raise ReauthorizationRequiredError on invalid_grant."""
        ...


class CallGuard(Protocol):
    """The API budget's view of each call: permission before, usage after."""

    def before_call(self, kind: str) -> None: ...

    def after_call(self, kind: str, status: int, usage: ApiUsage | None) -> None: ...


class _NoGuard:
    def before_call(self, kind: str) -> None:
        return None

    def after_call(self, kind: str, status: int, usage: ApiUsage | None) -> None:
        return None


@dataclass
class CallEvent:
    """One event worth reporting in run metadata: a retry, a refresh, a fault."""

    kind: str
    detail: str


@dataclass
class SalesforceClient:
    """REST access to one org through its `instance_url`."""

    instance_url: str
    tokens: TokenSource
    guard: CallGuard = field(default_factory=_NoGuard)
    api_version: str = DEFAULT_API_VERSION
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: tuple[float, float] = (5.0, 120.0)
    tenant: str | None = None
    session: requests.Session = field(default_factory=requests.Session)
    events: list[CallEvent] = field(default_factory=list)

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.api_version}"

    # -- the calls ----------------------------------------------------------

    def query(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        """Run a SOQL query and return its first page (`totalSize`, `done`, `records`, ...)."""
        resource = "queryAll" if include_deleted else "query"
        return self._send(
            "GET", f"{self.data_path}/{resource}", params={"q": soql}, kind="query"
        )

    def query_more(self, next_records_url: str) -> dict[str, Any]:
        """Fetch the page that a `nextRecordsUrl` points to."""
        return self._send("GET", next_records_url, kind="query_more")

    def composite(self, subrequests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send up to 25 independent subrequests in one call and return their responses in order."""
        if len(subrequests) > MAX_COMPOSITE_SUBREQUESTS:
            raise ValueError(
                f"{len(subrequests)} subrequests exceed the composite maximum of {MAX_COMPOSITE_SUBREQUESTS}"
            )
        body = {"allOrNone": False, "compositeRequest": subrequests}
        response = self._send(
            "POST", f"{self.data_path}/composite", json=body, kind="composite"
        )
        return response["compositeResponse"]

    def update_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Update up to 200 records with sObject Collections (`allOrNone=false`).

        Returns one SaveResult per record in request order; per-record failures
        come back inside a 200 response and are not raised.
        """
        if len(records) > MAX_COLLECTION_RECORDS:
            raise ValueError(
                f"{len(records)} records exceed the sObject Collections maximum of {MAX_COLLECTION_RECORDS}"
            )
        body = {"allOrNone": False, "records": records}
        return self._send(
            "PATCH",
            f"{self.data_path}/composite/sobjects",
            json=body,
            kind="collections",
        )

    def describe(self, sobject: str) -> dict[str, Any]:
        return self._send(
            "GET", f"{self.data_path}/sobjects/{sobject}/describe", kind="describe"
        )

    def limits(self) -> dict[str, Any]:
        return self._send("GET", f"{self.data_path}/limits", kind="limits")

    def deleted(self, sobject: str, start: str, end: str) -> dict[str, Any]:
        """List records hard- or soft-deleted between two ISO datetimes (the 15-day replication window)."""
        return self._send(
            "GET",
            f"{self.data_path}/sobjects/{sobject}/deleted/",
            params={"start": start, "end": end},
            kind="deleted",
        )

    def query_url(self, soql: str, *, include_deleted: bool = False) -> str:
        """Return the relative URL of a query, for use as a composite subrequest."""
        resource = "queryAll" if include_deleted else "query"
        return f"{self.data_path}/{resource}?{urlencode({'q': soql})}"

    def request_json(
        self, method: str, path: str, *, kind: str, params=None, json=None
    ) -> Any:
        """Send one call to a resource without a method of its own, such as Bulk API 2.0 jobs."""
        return self._send(method, path, kind=kind, params=params, json=json)

    def request_text(
        self, path: str, *, kind: str, params=None
    ) -> tuple[str, dict[str, str]]:
        """GET a resource that returns text (Bulk API 2.0 CSV results); return body and headers."""
        response = self._send("GET", path, kind=kind, params=params, raw=True)
        # Bulk results are UTF-8, while requests would assume Latin-1 for text/csv without a charset.
        return response.content.decode("utf-8"), dict(response.headers)

    # -- transport ------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        params=None,
        json=None,
        raw: bool = False,
    ) -> Any:
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self.tokens.access_token()
            try:
                response = self._request_once(
                    method, path, token, kind, params, json, raw
                )
            except errors.TransientError as error:
                if not self.retry.should_retry(attempt):
                    error.with_context(tenant=self.tenant)
                    raise
                pause = self.retry.delay(attempt)
                self.events.append(
                    CallEvent(
                        "retry",
                        f"{kind}: {error.message}; retry {attempt} in {pause:.1f}s",
                    )
                )
                log.warning(
                    "Salesforce %s failed (%s), retry %d in %.1fs",
                    kind,
                    error.message,
                    attempt,
                    pause,
                )
                time.sleep(pause)
                continue

            if response.status_code == 401 and not refreshed:
                refreshed = True
                attempt -= 1
                self.events.append(
                    CallEvent(
                        "refresh", f"{kind}: access token expired, refreshed once"
                    )
                )
                log.info("Access token rejected on %s, refreshing once", kind)
                self.tokens.refresh(token)
                continue
            if raw and response.status_code < 400:
                return response
            return self._decode(response, kind)

    def _request_once(
        self, method, path, token, kind, params, json, raw=False
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.instance_url}{path}"
        accept = "text/csv, application/json" if raw else "application/json"
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        self.guard.before_call(kind)
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout as error:
            self.guard.after_call(kind, 0, None)
            raise errors.TransientError(
                f"{method} {kind} timed out: {type(error).__name__}"
            ) from None
        except requests.ConnectionError as error:
            self.guard.after_call(kind, 0, None)
            raise errors.TransientError(
                f"{method} {kind} connection failed: {type(error).__name__}"
            ) from None

        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        self.guard.after_call(kind, response.status_code, usage)
        if response.status_code >= 500:
            raise errors.TransientError(
                f"HTTP {response.status_code} from Salesforce on {kind}",
                status=response.status_code,
            )
        return response

    def _decode(self, response: requests.Response, kind: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            body = response.json()
        except ValueError:
            raise errors.SalesforceApiError(
                f"HTTP {response.status_code} on {kind} with a body that is not JSON",
                status=response.status_code,
                tenant=self.tenant,
            ) from None
        if response.status_code < 400:
            return body
        raise error_from_body(body, response.status_code, tenant=self.tenant)


def error_from_body(
    body: Any, status: int, *, tenant: str | None = None
) -> errors.SalesforceApiError:
    """Turn Salesforce's `[{"message", "errorCode", "fields"}]` body into a typed error."""
    first = (
        body[0]
        if isinstance(body, list) and body
        else (body if isinstance(body, dict) else {})
    )
    code = first.get("errorCode") or first.get("error")
    message = first.get("message") or first.get("error_description") or f"HTTP {status}"
    fields = first.get("fields") or []
    error_class = {
        "REQUEST_LIMIT_EXCEEDED": errors.RequestLimitExceededError,
        "INVALID_SESSION_ID": errors.SessionExpiredError,
        "INVALID_QUERY_LOCATOR": errors.InvalidQueryLocatorError,
        "MALFORMED_QUERY": errors.QueryError,
        "INVALID_FIELD": errors.QueryError,
        "INVALID_TYPE": errors.QueryError,
        "UNABLE_TO_LOCK_ROW": errors.TransientError,
        "SERVER_UNAVAILABLE": errors.TransientError,
    }.get(code, errors.SalesforceApiError)
    return error_class(
        message.strip(), error_code=code, status=status, fields=fields, tenant=tenant
    )
