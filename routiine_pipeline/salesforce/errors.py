"""Typed Salesforce errors that keep Salesforce's own code, message and fields.

Callers catch by meaning: a session problem, a limit, a bad query, a
re-authorization need. The tenant and sObject are added where known so a
log line is enough to act on.
"""

from __future__ import annotations


class SalesforceError(Exception):
    """Base class of every error raised while talking to Salesforce."""

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        status: int | None = None,
        fields: list[str] | None = None,
        tenant: str | None = None,
        sobject: str | None = None,
    ) -> None:
        self.message = message
        self.error_code = error_code
        self.status = status
        self.fields = list(fields or [])
        self.tenant = tenant
        self.sobject = sobject
        super().__init__(self._render())

    def _render(self) -> str:
        context = []
        if self.tenant:
            context.append(f"tenant {self.tenant}")
        if self.sobject:
            context.append(f"sObject {self.sobject}")
        code = f"{self.error_code}: " if self.error_code else ""
        where = f" ({', '.join(context)})" if context else ""
        fields = f" [fields: {', '.join(self.fields)}]" if self.fields else ""
        return f"{code}{self.message}{where}{fields}"

    def with_context(self, *, tenant: str | None = None, sobject: str | None = None):
        """Return the same error with the tenant and sObject filled in."""
        self.tenant = self.tenant or tenant
        self.sobject = self.sobject or sobject
        self.args = (self._render(),)
        return self


class SalesforceApiError(SalesforceError):
    """A REST call returned an error body: `[{"message", "errorCode", "fields"}]`."""


class TransientError(SalesforceApiError):
    """A failure worth retrying later: 5xx, a timeout, a dropped connection, a lock."""


class QueryError(SalesforceApiError):
    """The SOQL was rejected (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE)."""


class InvalidQueryLocatorError(SalesforceApiError):
    """A `nextRecordsUrl` expired or is unknown; the window must restart from its watermark."""


class RequestLimitExceededError(SalesforceApiError):
    """HTTP 403 REQUEST_LIMIT_EXCEEDED: the org's rolling 24-hour API allocation is spent.

    Retrying cannot help until usage falls, so this is never retried in a loop.
    """


class SessionExpiredError(SalesforceApiError):
    """HTTP 401 INVALID_SESSION_ID that survived one refresh."""


class ReauthorizationRequiredError(SalesforceError):
    """The refresh token was rejected (`invalid_grant`): only a new user authorization helps."""


class OAuthError(SalesforceError):
    """The token endpoint returned `{"error", "error_description"}`."""


class UnsafeHostError(SalesforceError):
    """A URL that would receive a token or code is not a Salesforce host."""


class BudgetExhaustedError(SalesforceError):
    """The next call would break the run's cap or the org ceiling; committed work is kept."""


class TotalSizeMismatchError(SalesforceError):
    """The records received for a query differ from its `totalSize`: a page went missing."""


class BulkJobError(SalesforceApiError):
    """A Bulk API 2.0 query job ended Failed or Aborted, or did not finish in time."""
