"""OAuth 2.0 web server flow: /services/oauth2/authorize, /token and /revoke."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

from routiine_pipeline.emulator.http_types import Request, Response, json_response
from routiine_pipeline.emulator.tokens import Grant, OAuthError

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

logger = logging.getLogger(__name__)

SUPPORTED_SCOPES = {
    "api",
    "refresh_token",
    "offline_access",
    "id",
    "openid",
    "full",
    "web",
}
DEFAULT_SCOPE = "api refresh_token id"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class OAuthClient:
    """The one connected app the emulator accepts: its consumer key, secret and callback URLs."""

    client_id: str
    client_secret: str
    # None accepts any loopback callback URL, whereas Salesforce needs an exact match.
    redirect_uris: tuple[str, ...] | None = None

    def accepts_redirect(self, redirect_uri: str) -> bool:
        if self.redirect_uris is not None:
            return redirect_uri in self.redirect_uris
        parts = urlsplit(redirect_uri)
        return parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK_HOSTS


def _form(request: Request) -> dict[str, str]:
    if request.method == "GET":
        return dict(request.query)
    return dict(
        parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    )


def _redirect(location: str) -> Response:
    return Response(302, b"", {"Location": location, **_NO_STORE})


def _with_params(redirect_uri: str, params: dict[str, str]) -> str:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return redirect_uri + separator + urlencode(params)


def _html_page(status: int, title: str, body_html: str) -> Response:
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body_html}</body></html>"
    )
    return Response(
        status,
        page.encode("utf-8"),
        {"Content-Type": "text/html;charset=UTF-8", **_NO_STORE},
    )


def handle_authorize(
    org: Org, client: OAuthClient, request: Request, auto_approve: bool
) -> Response:
    """Show the approval page (GET), or act on the user's decision (POST), then redirect with a code."""
    params = _form(request)
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    if client_id != client.client_id:
        return _html_page(
            400,
            "Error",
            "<h1>error=invalid_client_id</h1><p>client identifier invalid</p>",
        )
    if not redirect_uri or not client.accepts_redirect(redirect_uri):
        return _html_page(
            400,
            "Error",
            "<h1>error=redirect_uri_mismatch</h1><p>redirect_uri must match configuration</p>",
        )

    def fail(error: str, description: str) -> Response:
        result = {"error": error, "error_description": description}
        if "state" in params:
            result["state"] = params["state"]
        return _redirect(_with_params(redirect_uri, result))

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response type not supported")
    method = params.get("code_challenge_method")
    if method is not None and method != "S256":
        # NOTE: only S256 is supported here. Whether Salesforce accepts "plain" is not confirmed.
        return fail("invalid_request", "unsupported code_challenge_method")
    scope = params.get("scope") or DEFAULT_SCOPE
    if not set(scope.split()) <= SUPPORTED_SCOPES:
        return fail("invalid_scope", "the requested scope is not allowed")
    decision = params.get("decision")
    if request.method == "GET" and not auto_approve:
        return _approval_page(params)
    if request.method == "POST" and decision != "allow":
        return fail("access_denied", "end-user denied authorization")
    code = org.tokens.create_code(
        client_id, redirect_uri, params.get("code_challenge") or None, scope
    )
    result = {"code": code}
    if "state" in params:
        result["state"] = params["state"]
    return _redirect(_with_params(redirect_uri, result))


def _approval_page(params: dict[str, str]) -> Response:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in params.items()
        if name != "decision"
    )
    body = (
        "<h1>Allow access?</h1>"
        "<p>The Routiine pipeline asks to read your Salesforce data and write deal scores back.</p>"
        f'<form method="post" action="/services/oauth2/authorize">{hidden}'
        '<button type="submit" name="decision" value="allow">Allow</button> '
        '<button type="submit" name="decision" value="deny">Deny</button></form>'
    )
    return _html_page(200, "Allow Access", body)


def _client_credentials(
    request: Request, form: dict[str, str]
) -> tuple[str, str | None]:
    """Return (client_id, client_secret) from HTTP Basic auth or else from the form."""
    authorization = request.header("Authorization") or ""
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret")


def handle_token(
    org: Org, client: OAuthClient, request: Request, base_url: str
) -> Response:
    """POST /services/oauth2/token: the authorization_code and refresh_token grants."""
    form = _form(request)
    client_id, secret = _client_credentials(request, form)
    grant_type = form.get("grant_type")
    try:
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        if client_id != client.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        # The secret is required for the code exchange, but a refresh may leave it out.
        if (
            grant_type == "authorization_code" or secret is not None
        ) and secret != client.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")
        if grant_type == "authorization_code":
            grant = org.tokens.redeem_code(
                form.get("code", ""),
                client_id,
                form.get("redirect_uri"),
                form.get("code_verifier"),
            )
        else:
            grant = org.tokens.refresh(form.get("refresh_token", ""), client_id)
    except OAuthError as error:
        logger.info("Token request (%s) rejected: %s", grant_type, error.error)
        return json_response(
            400,
            {"error": error.error, "error_description": error.description},
            _NO_STORE,
        )
    return json_response(200, _token_payload(org, client, grant, base_url), _NO_STORE)


def _token_payload(
    org: Org, client: OAuthClient, grant: Grant, base_url: str
) -> dict[str, str]:
    identity_url = f"{base_url}/id/{org.org_id}/{org.integration_user_id}"
    issued_at = str(int(org.clock.now().timestamp() * 1000))
    # Salesforce signs id + issued_at with HMAC-SHA256 keyed by the client secret.
    digest = hmac.new(
        client.client_secret.encode(),
        (identity_url + issued_at).encode(),
        hashlib.sha256,
    ).digest()
    payload = {"access_token": grant.access_token}
    if grant.refresh_token is not None:
        payload["refresh_token"] = grant.refresh_token
    payload.update(
        signature=base64.b64encode(digest).decode("ascii"),
        scope=grant.scope,
        instance_url=base_url,
        id=identity_url,
        token_type="Bearer",
        issued_at=issued_at,
    )
    return payload


def handle_revoke(org: Org, request: Request) -> Response:
    """POST /services/oauth2/revoke with token=...: 200 on success, 400 otherwise."""
    token = _form(request).get("token")
    # NOTE: which of the two documented error codes Salesforce uses for which case is not confirmed.
    if not token:
        return json_response(
            400,
            {
                "error": "invalid_token",
                "error_description": "token parameter is missing",
            },
            _NO_STORE,
        )
    if not org.tokens.revoke(token):
        return json_response(
            400,
            {
                "error": "unsupported_token_type",
                "error_description": "this token type is not supported",
            },
            _NO_STORE,
        )
    return Response(200, b"", dict(_NO_STORE))
