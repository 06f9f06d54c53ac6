"""The OAuth 2.0 web-server flow against Salesforce, with PKCE and host checks.

Tokens and authorization codes are only ever sent to Salesforce hosts:
login.salesforce.com, test.salesforce.com, or a My Domain under
my.salesforce.com. Loopback hosts are accepted only when emulator mode is
switched on explicitly, because the bundled emulator is the only server
that legitimately lives there.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import requests

from routiine_pipeline.salesforce import errors

PRODUCTION_LOGIN = "https://login.salesforce.com"
SANDBOX_LOGIN = "https://test.salesforce.com"
ORG_TYPES = ("production", "sandbox", "my_domain")

# A My Domain name: letters, digits and hyphens, starting with a letter. Sandbox
# My Domains add "--SANDBOXNAME" and live under sandbox.my.salesforce.com.
_MY_DOMAIN_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_SALESFORCE_HOST = re.compile(
    r"^(login|test)\.salesforce\.com$"
    r"|^[a-z0-9][a-z0-9-]*(--[a-z0-9]+)?(\.sandbox|\.develop|\.scratch|\.demo|\.trailblaze)?\.my\.salesforce\.com$"
)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS


def check_salesforce_url(url: str, *, allow_loopback: bool) -> str:
    """Return `url` without a trailing slash if it may receive tokens, else raise UnsafeHostError.

    HTTPS is required for Salesforce hosts; plain HTTP only for loopback in
    emulator mode.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise errors.UnsafeHostError(
            f"refusing to send credentials to {url!r}: not a valid URL"
        ) from None
    host = (parts.hostname or "").lower()
    # The URL is rebuilt from its parsed host and port, so text that another URL
    # parser might read differently (user info, backslashes) never reaches requests.
    if parts.username or parts.password or "\\" in url or parts.query or parts.fragment:
        raise errors.UnsafeHostError(
            f"refusing to send credentials to {url!r}: expected a bare host URL"
        )
    if allow_loopback and is_loopback(host) and parts.scheme in ("http", "https"):
        if parts.path not in ("", "/"):
            raise errors.UnsafeHostError(
                f"expected a bare host URL, got path {parts.path!r} in {url!r}"
            )
        bracketed = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{bracketed}" + (f":{port}" if port else "")
    if parts.scheme != "https" or not _SALESFORCE_HOST.match(host):
        hint = (
            " (loopback needs ROUTIINE_ALLOW_LOOPBACK=1, for the emulator only)"
            if is_loopback(host)
            else ""
        )
        raise errors.UnsafeHostError(
            f"refusing to send credentials to {url!r}: not a Salesforce host "
            f"(expected https://login.salesforce.com, https://test.salesforce.com or "
            f"https://NAME.my.salesforce.com){hint}"
        )
    if parts.path not in ("", "/"):
        raise errors.UnsafeHostError(
            f"expected a bare host URL, got path {parts.path!r} in {url!r}"
        )
    return f"https://{host}" + (f":{port}" if port else "")


def login_url(org_type: str, my_domain: str | None = None) -> str:
    """Return the login host of an org: production, sandbox, or a My Domain.

    `my_domain` is the name before `.my.salesforce.com`, for example `acme`
    or `acme--uat.sandbox`; a full URL is accepted and checked.
    """
    if org_type == "production":
        return PRODUCTION_LOGIN
    if org_type == "sandbox":
        return SANDBOX_LOGIN
    if org_type != "my_domain":
        raise ValueError(
            f"unknown org type {org_type!r}: use one of {', '.join(ORG_TYPES)}"
        )
    if not my_domain:
        raise ValueError(
            "a My Domain org needs its domain: pass --my-domain, for example --my-domain acme or --my-domain acme--uat.sandbox"
        )
    if not my_domain.isascii() or not my_domain.isprintable():
        raise ValueError(
            f"invalid My Domain {my_domain!r}: only ASCII letters, digits, '-' and '.' are allowed"
        )
    value = my_domain.strip().lower()
    if "://" in value:
        return check_salesforce_url(value, allow_loopback=False)
    value = value.removesuffix(".my.salesforce.com")
    name, _, suffix = value.partition(".")
    base, separator, sandbox = name.partition("--")
    if not _MY_DOMAIN_NAME.match(base) or (
        separator and not re.fullmatch(r"[a-z0-9]{1,20}", sandbox)
    ):
        raise ValueError(
            f"invalid My Domain {my_domain!r}: expected a name like acme or acme--uat.sandbox"
        )
    if suffix not in ("", "sandbox", "develop", "scratch"):
        raise ValueError(f"invalid My Domain {my_domain!r}: unknown suffix {suffix!r}")
    return check_salesforce_url(
        f"https://{value}.my.salesforce.com", allow_loopback=False
    )


@dataclass(frozen=True)
class PkcePair:
    """A PKCE code verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def generate(cls) -> PkcePair:
        verifier = secrets.token_urlsafe(64)[:96]
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return cls(verifier, challenge)


@dataclass(frozen=True)
class TokenResponse:
    """The fields of a token response the pipeline keeps. `repr` hides the tokens."""

    access_token: str
    refresh_token: str | None
    instance_url: str
    identity_url: str | None
    issued_at: str | None

    def __repr__(self) -> str:
        return f"TokenResponse(instance_url={self.instance_url!r}, refresh_token={'set' if self.refresh_token else 'none'})"


@dataclass(frozen=True)
class OAuthApp:
    """The connected app (or external client app) that Routiine authenticates as."""

    client_id: str
    client_secret: str
    redirect_uri: str

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"

    def authorize_url(
        self, login: str, *, state: str, code_challenge: str, allow_loopback: bool
    ) -> str:
        base = check_salesforce_url(login, allow_loopback=allow_loopback)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "scope": "api refresh_token",
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{base}/services/oauth2/authorize?{urlencode(query)}"

    def exchange_code(
        self, login: str, code: str, verifier: str, *, allow_loopback: bool
    ) -> TokenResponse:
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        return self._token_request(login, body, allow_loopback=allow_loopback)

    def refresh(
        self, login: str, refresh_token: str, *, allow_loopback: bool
    ) -> TokenResponse:
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request(login, body, allow_loopback=allow_loopback)

    def revoke(self, login: str, token: str, *, allow_loopback: bool) -> None:
        base = check_salesforce_url(login, allow_loopback=allow_loopback)
        response = requests.post(
            f"{base}/services/oauth2/revoke", data={"token": token}, timeout=30
        )
        if response.status_code != 200:
            raise _oauth_error(response)

    def _token_request(
        self, login: str, body: dict, *, allow_loopback: bool
    ) -> TokenResponse:
        base = check_salesforce_url(login, allow_loopback=allow_loopback)
        body = {
            **body,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        response = requests.post(f"{base}/services/oauth2/token", data=body, timeout=30)
        if response.status_code != 200:
            raise _oauth_error(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("access_token"), str)
            or not isinstance(payload.get("instance_url"), str)
        ):
            raise errors.OAuthError(
                f"token endpoint of {base} returned HTTP 200 without access_token and instance_url"
            )
        # The instance URL receives the access token on every API call, so it must pass the same host check.
        instance_url = check_salesforce_url(
            payload["instance_url"], allow_loopback=allow_loopback
        )
        return TokenResponse(
            access_token=payload["access_token"],
            refresh_token=payload.get("refresh_token"),
            instance_url=instance_url,
            identity_url=payload.get("id"),
            issued_at=payload.get("issued_at"),
        )


def _oauth_error(response: requests.Response) -> errors.SalesforceError:
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    code = payload.get("error") if isinstance(payload, dict) else None
    description = (
        payload.get("error_description", "") if isinstance(payload, dict) else ""
    )
    message = f"token endpoint returned HTTP {response.status_code}: {code or 'no error code'} {description}".strip()
    if code == "invalid_grant":
        return errors.ReauthorizationRequiredError(
            message, error_code=code, status=response.status_code
        )
    return errors.OAuthError(message, error_code=code, status=response.status_code)
