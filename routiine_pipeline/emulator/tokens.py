"""OAuth state of the emulated org: authorization codes, access tokens and refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from routiine_pipeline.emulator.clock import Clock

logger = logging.getLogger(__name__)

AUTHORIZATION_CODE_LIFETIME = timedelta(minutes=15)
REFRESH_TOKEN_POLICIES = (
    "valid_until_revoked",
    "expire_after",
    "expire_if_unused",
    "immediately_expire",
)
EXPIRED_TOKEN = "expired access/refresh token"


class OAuthError(Exception):
    """A token-endpoint failure, sent as 400 {"error": ..., "error_description": ...}."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scope: str
    issued_at: datetime
    used: bool = False


@dataclass
class AccessToken:
    client_id: str
    scope: str
    expires_at: datetime
    refresh_token: str | None
    revoked: bool = False


@dataclass
class RefreshToken:
    client_id: str
    scope: str
    issued_at: datetime
    last_used_at: datetime
    revoked: bool = False


@dataclass(frozen=True)
class Grant:
    """Tokens issued by one successful token request."""

    access_token: str
    refresh_token: str | None
    scope: str


def pkce_challenge(verifier: str) -> str:
    """Compute the S256 code_challenge: base64url of SHA-256 of the verifier, unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class TokenStore:
    """Issues and checks tokens under the org's session and refresh-token policies.

    Access tokens expire `access_token_lifetime` after issue on the emulator clock.
    NOTE: Salesforce extends a session while it is in use, but here the lifetime is fixed.
    """

    def __init__(
        self,
        clock: Clock,
        lock: threading.RLock,
        org_id: str,
        *,
        access_token_lifetime: timedelta = timedelta(hours=2),
        refresh_token_policy: str = "valid_until_revoked",
        refresh_token_ttl: timedelta | None = None,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.clock = clock
        self._lock = lock
        self.org_id = org_id
        self.access_token_lifetime = access_token_lifetime
        self.set_refresh_token_policy(refresh_token_policy, refresh_token_ttl)
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}

    def set_refresh_token_policy(
        self, policy: str, ttl: timedelta | None = None
    ) -> None:
        """Set how refresh tokens expire. The expire_after and expire_if_unused policies need `ttl`."""
        if policy not in REFRESH_TOKEN_POLICIES:
            raise ValueError(
                f"unknown refresh token policy {policy!r}; expected one of {REFRESH_TOKEN_POLICIES}"
            )
        if policy in ("expire_after", "expire_if_unused") and ttl is None:
            raise ValueError(f"refresh token policy {policy!r} needs a ttl")
        self.refresh_token_policy = policy
        self.refresh_token_ttl = ttl

    def create_code(
        self, client_id: str, redirect_uri: str, code_challenge: str | None, scope: str
    ) -> str:
        code = "aPrx" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = AuthorizationCode(
                client_id, redirect_uri, code_challenge, scope, self.clock.now()
            )
        return code

    def redeem_code(
        self,
        code: str,
        client_id: str,
        redirect_uri: str | None,
        code_verifier: str | None,
    ) -> Grant:
        """Exchange an authorization code for tokens. Each code works once, for 15 minutes."""
        with self._lock:
            entry = self._codes.get(code)
            if entry is None or entry.client_id != client_id:
                raise OAuthError("invalid_grant", "invalid authorization code")
            if (
                entry.used
                or self.clock.now() - entry.issued_at > AUTHORIZATION_CODE_LIFETIME
            ):
                raise OAuthError("invalid_grant", "expired authorization code")
            if redirect_uri != entry.redirect_uri:
                raise OAuthError(
                    "redirect_uri_mismatch", "redirect_uri must match configuration"
                )
            # NOTE: the error_description texts of the two PKCE failures are not confirmed, but
            # the error codes follow Salesforce's web server flow documentation.
            if entry.code_challenge is not None:
                if not code_verifier:
                    raise OAuthError("invalid_grant", "code verifier missing")
                if pkce_challenge(code_verifier) != entry.code_challenge:
                    raise OAuthError("invalid_request", "invalid code verifier")
            entry.used = True
            scopes = set(entry.scope.split())
            with_refresh = bool(scopes & {"refresh_token", "offline_access", "full"})
            return self.issue(client_id, entry.scope, with_refresh=with_refresh)

    def issue(
        self,
        client_id: str,
        scope: str = "api refresh_token id",
        *,
        with_refresh: bool = True,
    ) -> Grant:
        """Issue a new access token, and a refresh token when `with_refresh` is set."""
        with self._lock:
            now = self.clock.now()
            refresh = None
            if with_refresh:
                refresh = "5Aep861" + secrets.token_urlsafe(40)
                self._refresh[refresh] = RefreshToken(client_id, scope, now, now)
            access = self._new_access_token(client_id, scope, refresh)
            return Grant(access, refresh, scope)

    def refresh(self, refresh_token: str, client_id: str) -> Grant:
        """Issue a new access token from a refresh token, rotating it when the org is set to rotate them."""
        with self._lock:
            entry = self._refresh.get(refresh_token)
            if (
                entry is None
                or entry.revoked
                or entry.client_id != client_id
                or self._refresh_expired(entry)
            ):
                raise OAuthError("invalid_grant", EXPIRED_TOKEN)
            entry.last_used_at = self.clock.now()
            if not self.rotate_refresh_tokens:
                return Grant(
                    self._new_access_token(client_id, entry.scope, refresh_token),
                    None,
                    entry.scope,
                )
            # With rotation the old refresh token stops working at once.
            entry.revoked = True
            return self.issue(client_id, entry.scope, with_refresh=True)

    def _refresh_expired(self, entry: RefreshToken) -> bool:
        now = self.clock.now()
        policy = self.refresh_token_policy
        if policy == "immediately_expire":
            return True
        if policy == "expire_after":
            return now - entry.issued_at > self.refresh_token_ttl
        if policy == "expire_if_unused":
            return now - entry.last_used_at > self.refresh_token_ttl
        return False

    def _new_access_token(
        self, client_id: str, scope: str, refresh_token: str | None
    ) -> str:
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(48)}"
        expires_at = self.clock.now() + self.access_token_lifetime
        self._access[token] = AccessToken(client_id, scope, expires_at, refresh_token)
        return token

    def is_valid_access_token(self, token: str) -> bool:
        with self._lock:
            entry = self._access.get(token)
            return (
                entry is not None
                and not entry.revoked
                and self.clock.now() < entry.expires_at
            )

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token. Revoking a refresh token also revokes its access tokens."""
        with self._lock:
            if token in self._access:
                self._access[token].revoked = True
                return True
            entry = self._refresh.get(token)
            if entry is None or entry.revoked:
                return False
            entry.revoked = True
            for access in self._access.values():
                if access.refresh_token == token:
                    access.revoked = True
            return True

    def expire_access_tokens(self) -> int:
        """Expire every access token now, so the next API call gets 401, and return the count."""
        with self._lock:
            now = self.clock.now()
            live = [entry for entry in self._access.values() if now < entry.expires_at]
            for entry in live:
                entry.expires_at = now
            logger.info("Expired %d access tokens", len(live))
            return len(live)
