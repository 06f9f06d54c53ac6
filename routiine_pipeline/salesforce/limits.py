"""Parsing of the `Sforce-Limit-Info` header that Salesforce adds to REST responses."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The header may carry more parts after api-usage, for example
# "api-usage=18/5000; per-app-api-usage=17/250(appName=x); api-bursts=1/750".
_API_USAGE = re.compile(r"(?:^|[;\s])api-usage=(?P<used>\d+)/(?P<max>\d+)")


@dataclass(frozen=True)
class ApiUsage:
    """The org's rolling 24-hour API usage: calls used and the daily maximum."""

    used: int
    max: int

    @property
    def fraction(self) -> float:
        return self.used / self.max if self.max else 1.0


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """Read `api-usage=USED/MAX` from a Sforce-Limit-Info header value.

    >>> parse_limit_info("api-usage=18/5000; api-bursts=1/750")
    ApiUsage(used=18, max=5000)
    """
    if not header:
        return None
    match = _API_USAGE.search(header)
    if not match:
        return None
    return ApiUsage(int(match.group("used")), int(match.group("max")))
