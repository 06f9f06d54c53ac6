"""Connecting a tenant: the OAuth web-server flow with a single-use state and PKCE.

The state is random, stored only as its SHA-256 hash, bound to one tenant
and one redirect URI, valid for STATE_LIFETIME and consumed by the first
callback that presents it, whether that callback then succeeds or not. The
PKCE verifier is stored encrypted with the tenant's associated data.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.store import CONNECTED, ControlStore, Tenant, utcnow
from routiine_pipeline.control.tokens import read_refresh_token, save_tokens
from routiine_pipeline.control.vault import TokenVault
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.oauth import OAuthApp, PkcePair

log = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)


class ConnectError(Exception):
    """The OAuth callback was rejected: unknown, reused, expired or foreign state, or a failed exchange."""


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True)
class AuthorizationRequest:
    """An authorize URL to send the user to, with the state that its callback must return."""

    tenant_id: str
    url: str
    state: str

    def __repr__(self) -> str:
        return f"AuthorizationRequest(tenant_id={self.tenant_id!r})"


class TenantConnector:
    """Runs the OAuth web-server flow for one tenant and stores the tokens it yields."""

    def __init__(
        self,
        store: ControlStore,
        vault: TokenVault,
        app: OAuthApp,
        *,
        allow_loopback: bool,
    ) -> None:
        self.store = store
        self.vault = vault
        self.app = app
        self.allow_loopback = allow_loopback

    def begin(self, tenant_id: str) -> AuthorizationRequest:
        """Store a new state and PKCE verifier for the tenant and build the authorize URL."""
        tenant = self.store.get_tenant(tenant_id)
        state = secrets.token_urlsafe(32)
        pkce = PkcePair.generate()
        # Build the URL first: a tenant whose login host fails the host check gets no state row.
        url = self.app.authorize_url(
            tenant.login_url,
            state=state,
            code_challenge=pkce.challenge,
            allow_loopback=self.allow_loopback,
        )
        with self.store.engine.begin() as conn:
            conn.execute(
                tables.oauth_states.insert().values(
                    state_hash=hash_state(state),
                    tenant_id=tenant_id,
                    verifier_ciphertext=self.vault.encrypt(
                        pkce.verifier, tenant=tenant_id, kind="pkce_verifier"
                    ),
                    redirect_uri=self.app.redirect_uri,
                    expires_at=utcnow() + STATE_LIFETIME,
                )
            )
        return AuthorizationRequest(tenant_id, url, state)

    def start(self, tenant_id: str) -> str:
        """Return the authorize URL of a new flow for the tenant."""
        return self.begin(tenant_id).url

    def complete(
        self, *, state: str, code: str, tenant_id: str | None = None
    ) -> Tenant:
        """Accept a callback: consume the state, exchange the code, store the tokens.

        `tenant_id`, when given, is the tenant the caller started the flow for.
        A state issued for any other tenant is rejected (and consumed), so an
        authorization cannot be attached to the wrong tenant.
        """
        owner, verifier = self._consume_state(state, expected_tenant=tenant_id)
        tenant = self.store.get_tenant(owner)
        try:
            response = self.app.exchange_code(
                tenant.login_url, code, verifier, allow_loopback=self.allow_loopback
            )
        except errors.SalesforceError as error:
            raise ConnectError(
                f"tenant {owner}: code exchange failed, nothing was stored: {error}"
            ) from None
        save_tokens(self.store, self.vault, owner, response)
        now = utcnow()
        self.store.update_tenant(
            owner,
            instance_url=response.instance_url,
            status=CONNECTED,
            status_reason=None,
            connected_at=now,
        )
        log.info("Tenant %s connected to %s", owner, response.instance_url)
        return self.store.get_tenant(owner)

    def _consume_state(
        self, state: str, *, expected_tenant: str | None
    ) -> tuple[str, str]:
        column = tables.oauth_states.c
        now = utcnow()
        with self.store.engine.begin() as conn:
            row = (
                conn.execute(
                    sa.select(tables.oauth_states).where(
                        column.state_hash == hash_state(state or "")
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise ConnectError("unknown OAuth state: start the connection again")
            owner = row["tenant_id"]
            if row["used_at"] is not None:
                raise ConnectError(
                    f"tenant {owner}: this OAuth state was already used; start the connection again"
                )
            # Mark it used before any other check, conditional on it being unused, so it works once at most.
            updated = conn.execute(
                tables.oauth_states.update()
                .where(column.state_hash == row["state_hash"], column.used_at.is_(None))
                .values(used_at=now)
            )
        if updated.rowcount != 1:
            raise ConnectError(
                f"tenant {owner}: this OAuth state was already used; start the connection again"
            )
        expires_at = row["expires_at"]
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=now.tzinfo)
        if expires_at < now:
            raise ConnectError(
                f"tenant {owner}: this OAuth state expired; start the connection again"
            )
        if expected_tenant is not None and owner != expected_tenant:
            log.warning(
                "OAuth state of tenant %s presented for tenant %s; rejected",
                owner,
                expected_tenant,
            )
            raise ConnectError(
                f"this OAuth state belongs to another tenant than {expected_tenant}; start the connection again"
            )
        if row["redirect_uri"] != self.app.redirect_uri:
            raise ConnectError(
                f"tenant {owner}: the flow was started with another redirect URI; start the connection again"
            )
        verifier = self.vault.decrypt(
            row["verifier_ciphertext"], tenant=owner, kind="pkce_verifier"
        )
        return owner, verifier

    def purge_states(self) -> int:
        """Delete used and expired states; return how many were deleted."""
        column = tables.oauth_states.c
        with self.store.engine.begin() as conn:
            return conn.execute(
                tables.oauth_states.delete().where(
                    column.used_at.is_not(None) | (column.expires_at < utcnow())
                )
            ).rowcount

    def revoke(self, tenant_id: str) -> bool:
        """Revoke the tenant's refresh token at Salesforce, which also ends its access tokens."""
        refresh = read_refresh_token(self.store, self.vault, tenant_id)
        if refresh is None:
            return False
        tenant = self.store.get_tenant(tenant_id)
        self.app.revoke(tenant.login_url, refresh, allow_loopback=self.allow_loopback)
        log.info("Tenant %s: refresh token revoked at %s", tenant_id, tenant.login_url)
        return True
