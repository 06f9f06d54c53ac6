"""Connecting a tenant (state + PKCE) and keeping its tokens fresh, encrypted at rest."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from datetime import timedelta

import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.store import CONNECTED, NEEDS_REAUTHORIZATION, ControlStore, Tenant, utcnow
from routiine_pipeline.control.vault import TokenVault
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.oauth import OAuthApp, PkcePair, TokenResponse

log = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)


class ConnectError(Exception):
    """The OAuth callback could not be accepted (bad, reused or expired state, or a token error)."""


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class TenantConnector:
    """Runs the OAuth web-server flow for one tenant and stores the tokens it yields."""

    def __init__(self, store: ControlStore, vault: TokenVault, app: OAuthApp, *, allow_loopback: bool) -> None:
        self.store = store
        self.vault = vault
        self.app = app
        self.allow_loopback = allow_loopback

    def start(self, tenant_id: str) -> str:
        """Create a single-use state bound to the tenant and return the authorize URL."""
        tenant = self.store.get_tenant(tenant_id)
        state = secrets.token_urlsafe(32)
        pkce = PkcePair.generate()
        with self.store.engine.begin() as conn:
            conn.execute(
                tables.oauth_states.insert().values(
                    state_hash=_hash_state(state),
                    tenant_id=tenant_id,
                    verifier_ciphertext=self.vault.encrypt(pkce.verifier, tenant=tenant_id, kind="pkce_verifier"),
                    redirect_uri=self.app.redirect_uri,
                    expires_at=utcnow() + STATE_LIFETIME,
                )
            )
        return self.app.authorize_url(
            tenant.login_url, state=state, code_challenge=pkce.challenge, allow_loopback=self.allow_loopback
        )

    def complete(self, *, state: str, code: str) -> Tenant:
        """Accept a callback: consume the state, exchange the code, store the tokens."""
        tenant_id, verifier = self._consume_state(state)
        tenant = self.store.get_tenant(tenant_id)
        try:
            response = self.app.exchange_code(tenant.login_url, code, verifier, allow_loopback=self.allow_loopback)
        except errors.SalesforceError as error:
            raise ConnectError(f"tenant {tenant_id}: code exchange failed: {error}") from None
        self.save_tokens(tenant_id, response)
        self.store.update_tenant(tenant_id, instance_url=response.instance_url, status=CONNECTED, status_reason=None)
        log.info("Tenant %s connected to %s", tenant_id, response.instance_url)
        return self.store.get_tenant(tenant_id)

    def _consume_state(self, state: str) -> tuple[str, str]:
        column = tables.oauth_states.c
        now = utcnow()
        with self.store.engine.begin() as conn:
            row = conn.execute(
                sa.select(tables.oauth_states).where(column.state_hash == _hash_state(state or ""))
            ).mappings().first()
            if row is None:
                raise ConnectError("unknown OAuth state: start the connection again with `routiine tenants connect`")
            expires_at = row["expires_at"].replace(tzinfo=now.tzinfo) if row["expires_at"].tzinfo is None else row["expires_at"]
            if row["used_at"] is not None:
                raise ConnectError(f"tenant {row['tenant_id']}: this OAuth state was already used; start again")
            if expires_at < now:
                raise ConnectError(f"tenant {row['tenant_id']}: this OAuth state expired; start again")
            # Mark used in the same transaction, conditional on it still being unused.
            updated = conn.execute(
                tables.oauth_states.update()
                .where(column.state_hash == row["state_hash"], column.used_at.is_(None))
                .values(used_at=now)
            )
            if updated.rowcount != 1:
                raise ConnectError(f"tenant {row['tenant_id']}: this OAuth state was already used; start again")
        verifier = self.vault.decrypt(row["verifier_ciphertext"], tenant=row["tenant_id"], kind="pkce_verifier")
        return row["tenant_id"], verifier

    def save_tokens(self, tenant_id: str, response: TokenResponse) -> None:
        access = self.vault.encrypt(response.access_token, tenant=tenant_id, kind="access_token")
        refresh = (
            self.vault.encrypt(response.refresh_token, tenant=tenant_id, kind="refresh_token")
            if response.refresh_token
            else None
        )
        with self.store.engine.begin() as conn:
            conn.execute(tables.tokens.delete().where(tables.tokens.c.tenant_id == tenant_id))
            conn.execute(
                tables.tokens.insert().values(
                    tenant_id=tenant_id, access_ciphertext=access, refresh_ciphertext=refresh,
                    key_id=self.vault.current_key_id, version=1, updated_at=utcnow(),
                )
            )

    def revoke(self, tenant_id: str) -> bool:
        """Revoke the tenant's refresh token at Salesforce (which also ends its access tokens)."""
        tokens = StoredTokens(self.store, self.vault, self.app, tenant_id, allow_loopback=self.allow_loopback)
        refresh = tokens.refresh_token()
        if refresh is None:
            return False
        tenant = self.store.get_tenant(tenant_id)
        self.app.revoke(tenant.login_url, refresh, allow_loopback=self.allow_loopback)
        return True


class StoredTokens:
    """A TokenSource backed by the control store: decrypts on read, refreshes safely."""

    _locks: dict[str, threading.Lock] = {}

    def __init__(self, store: ControlStore, vault: TokenVault, app: OAuthApp, tenant_id: str, *, allow_loopback: bool) -> None:
        self.store = store
        self.vault = vault
        self.app = app
        self.tenant_id = tenant_id
        self.allow_loopback = allow_loopback
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"StoredTokens(tenant_id={self.tenant_id!r})"

    def _row(self):
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(tables.tokens).where(tables.tokens.c.tenant_id == self.tenant_id)
            ).mappings().first()
        if row is None:
            raise errors.ReauthorizationRequiredError(
                "no tokens stored: connect the tenant with `routiine tenants connect`", tenant=self.tenant_id
            )
        return row

    def access_token(self) -> str:
        return self.vault.decrypt(self._row()["access_ciphertext"], tenant=self.tenant_id, kind="access_token")

    def refresh_token(self) -> str | None:
        ciphertext = self._row()["refresh_ciphertext"]
        return self.vault.decrypt(ciphertext, tenant=self.tenant_id, kind="refresh_token") if ciphertext else None

    def refresh(self, rejected_token: str) -> str:
        """Get a new access token once; another process may have done it already.

        The row's version makes the write conditional: if a concurrent refresh
        stored first (and the org rotated the refresh token), its tokens win
        and are used instead of declaring the tenant disconnected.
        """
        lock = self._locks.setdefault(self.tenant_id, threading.Lock())
        with lock:
            row = self._row()
            current = self.vault.decrypt(row["access_ciphertext"], tenant=self.tenant_id, kind="access_token")
            if current != rejected_token:
                return current
            refresh = self.refresh_token()
            if refresh is None:
                raise self._needs_reauthorization("no refresh token stored")
            tenant = self.store.get_tenant(self.tenant_id)
            try:
                response = self.app.refresh(tenant.login_url, refresh, allow_loopback=self.allow_loopback)
            except errors.ReauthorizationRequiredError as error:
                if self._row()["version"] != row["version"]:
                    return self.access_token()
                raise self._needs_reauthorization(error.message) from None
            self.refreshes += 1
            self._store_refreshed(row["version"], response)
            return response.access_token

    def _store_refreshed(self, version: int, response: TokenResponse) -> None:
        values = {
            "access_ciphertext": self.vault.encrypt(response.access_token, tenant=self.tenant_id, kind="access_token"),
            "key_id": self.vault.current_key_id,
            "version": version + 1,
            "updated_at": utcnow(),
        }
        if response.refresh_token:
            values["refresh_ciphertext"] = self.vault.encrypt(
                response.refresh_token, tenant=self.tenant_id, kind="refresh_token"
            )
        column = tables.tokens.c
        with self.store.engine.begin() as conn:
            updated = conn.execute(
                tables.tokens.update().where(column.tenant_id == self.tenant_id, column.version == version).values(**values)
            )
        if updated.rowcount != 1:
            log.warning("Tenant %s: a concurrent refresh stored tokens first; keeping both valid", self.tenant_id)

    def _needs_reauthorization(self, reason: str) -> errors.ReauthorizationRequiredError:
        tenant = self.store.get_tenant(self.tenant_id)
        message = (
            f"Salesforce rejected the refresh token ({reason}). Reconnect the org: "
            f"routiine tenants connect {self.tenant_id}"
        )
        if tenant.status != NEEDS_REAUTHORIZATION:
            self.store.set_status(self.tenant_id, NEEDS_REAUTHORIZATION, message)
            self.store.notify(self.tenant_id, "needs_reauthorization", message)
        return errors.ReauthorizationRequiredError(message, error_code="invalid_grant", tenant=self.tenant_id)
