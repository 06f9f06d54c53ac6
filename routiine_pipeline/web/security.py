"""Browser-facing protections of the connect page: CSRF tokens, flow binding and response headers.

CSRF uses a double-submit token: a random value in an HttpOnly, SameSite=Lax
cookie that every POST form must repeat in a hidden field. A POST whose
Origin header names another origin is rejected as well.

The OAuth flow is bound to the browser that started it: starting a flow
sets a cookie with the tenant id and an HMAC of the state under a key that
exists only in this server process. The callback accepts a state only from
that browser and only for that tenant, so a link with someone else's state
and code cannot attach their org to a tenant here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "routiine_csrf"
FLOW_COOKIE = "routiine_oauth_flow"
CSRF_FIELD = "csrf_token"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The callback URL carries the authorization code: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class CsrfError(Exception):
    """A POST came without a matching CSRF token or from another origin."""


class FlowBinding:
    """Signs and checks the cookie that ties an OAuth state to the browser that started the flow."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def cookie_value(self, tenant_id: str, state: str) -> str:
        return f"{tenant_id}.{self._mac(tenant_id, state)}"

    def tenant_for(self, cookie: str | None, state: str) -> str | None:
        """Return the tenant the cookie binds `state` to, or None when it does not bind it."""
        if not cookie or "." not in cookie:
            return None
        tenant_id, _, mac = cookie.rpartition(".")
        return (
            tenant_id if hmac.compare_digest(mac, self._mac(tenant_id, state)) else None
        )

    def _mac(self, tenant_id: str, state: str) -> str:
        return hmac.new(
            self._key, f"{tenant_id}\n{state}".encode(), hashlib.sha256
        ).hexdigest()


def csrf_token(request: Request) -> str:
    """Return the browser's CSRF token, or a new one that `set_csrf_cookie` will store."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_csrf_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
    )


def check_csrf(request: Request, form_token: str | None) -> None:
    """Raise CsrfError unless the form repeats the cookie's token and the origin is this server."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin and origin != "null" and origin != own:
        raise CsrfError(
            f"form posted from another origin ({origin}); reload the page and try again"
        )
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not form_token or not hmac.compare_digest(cookie, form_token):
        raise CsrfError(
            "missing or invalid CSRF token; reload the page and submit the form again"
        )


def content_security_policy(*, emulator_mode: bool) -> str:
    """Return the page's CSP: no scripts, and forms that reach only this server and Salesforce.

    Browsers apply form-action to the redirect that responds to a form, so the
    login hosts that the connect form redirects to are listed, and loopback
    too in emulator mode.
    """
    targets = "'self' https://login.salesforce.com https://test.salesforce.com https://*.my.salesforce.com"
    if emulator_mode:
        targets += " http://127.0.0.1:* http://localhost:*"
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )


def add_security_headers(response: Response, *, emulator_mode: bool) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault(
        "Content-Security-Policy", content_security_policy(emulator_mode=emulator_mode)
    )
    return response
