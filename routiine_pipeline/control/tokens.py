"""Stored OAuth tokens of a tenant: encrypted at rest, refreshed once per expiry across processes.

A refresh happens under a lease in the tokens row. The process that takes
the lease calls the token endpoint and stores the new access token and any
rotated refresh token in one update. Every other run, in this process or
another, waits for that update and uses its result. So two runs never spend
the same refresh token: an org that rotates refresh tokens rejects the
second use with `invalid_grant`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from datetime import timedelta
from typing import ClassVar

import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.store import NEEDS_REAUTHORIZATION, ControlStore, utcnow
from routiine_pipeline.control.vault import TokenVault
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.oauth import OAuthApp, TokenResponse

log = logging.getLogger(__name__)

# Longer than the token request's 30-second timeout (OAuthApp), so a holder whose request is
# still running keeps its lease.
REFRESH_LEASE = timedelta(seconds=60)
# A waiter gives up after the lease of a crashed holder would have run out, plus a margin.
REFRESH_WAIT_SECONDS = 75.0
POLL_SECONDS = 0.05


def save_tokens(
    store: ControlStore, vault: TokenVault, tenant_id: str, response: TokenResponse
) -> None:
    """Replace the tenant's tokens with those of a code exchange, encrypted with the current key."""
    access = vault.encrypt(response.access_token, tenant=tenant_id, kind="access_token")
    refresh = (
        vault.encrypt(response.refresh_token, tenant=tenant_id, kind="refresh_token")
        if response.refresh_token
        else None
    )
    with store.engine.begin() as conn:
        previous = conn.execute(
            sa.select(tables.tokens.c.version).where(
                tables.tokens.c.tenant_id == tenant_id
            )
        ).scalar()
        conn.execute(
            tables.tokens.delete().where(tables.tokens.c.tenant_id == tenant_id)
        )
        conn.execute(
            tables.tokens.insert().values(
                tenant_id=tenant_id,
                access_ciphertext=access,
                refresh_ciphertext=refresh,
                key_id=vault.current_key_id,
                version=(previous or 0) + 1,
                updated_at=utcnow(),
            )
        )


def read_token_row(store: ControlStore, tenant_id: str):
    """Return the tenant's tokens row, or raise ReauthorizationRequiredError when there is none."""
    with store.engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(tables.tokens).where(tables.tokens.c.tenant_id == tenant_id)
            )
            .mappings()
            .first()
        )
    if row is None:
        raise errors.ReauthorizationRequiredError(
            f"no tokens stored: connect the tenant with `routiine tenants connect {tenant_id}`",
            tenant=tenant_id,
        )
    return row


def read_refresh_token(
    store: ControlStore, vault: TokenVault, tenant_id: str
) -> str | None:
    """Return the tenant's decrypted refresh token, or None when none is stored."""
    try:
        ciphertext = read_token_row(store, tenant_id)["refresh_ciphertext"]
    except errors.ReauthorizationRequiredError:
        return None
    return (
        vault.decrypt(ciphertext, tenant=tenant_id, kind="refresh_token")
        if ciphertext
        else None
    )


def reauthorization_message(tenant_id: str, reason: str) -> str:
    return (
        f"Salesforce rejected the refresh token ({reason}). Reconnect the org with "
        f"`routiine tenants connect {tenant_id}` or the Reconnect button of the connect page "
        "(`routiine serve`); runs of this tenant fail until then"
    )


class StoredTokens:
    """A TokenSource backed by the control store: decrypts on read, refreshes under a lease.

    Construction fails fast with ReauthorizationRequiredError when the tenant
    already needs re-authorization, so such a run makes no request at all.
    """

    # One lock per tenant and process, so threads of one run wait in memory instead of polling the row.
    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _locks_guard = threading.Lock()

    def __init__(
        self,
        store: ControlStore,
        vault: TokenVault,
        app: OAuthApp,
        tenant_id: str,
        *,
        allow_loopback: bool,
    ) -> None:
        self.store = store
        self.vault = vault
        self.app = app
        self.tenant_id = tenant_id
        self.allow_loopback = allow_loopback
        self.refreshes = 0
        self._owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        tenant = store.get_tenant(tenant_id)
        if tenant.status == NEEDS_REAUTHORIZATION:
            raise errors.ReauthorizationRequiredError(
                tenant.status_reason
                or reauthorization_message(tenant_id, "earlier refresh failed"),
                error_code="invalid_grant",
                tenant=tenant_id,
            )

    def __repr__(self) -> str:
        return f"StoredTokens(tenant_id={self.tenant_id!r})"

    def access_token(self) -> str:
        row = read_token_row(self.store, self.tenant_id)
        return self.vault.decrypt(
            row["access_ciphertext"], tenant=self.tenant_id, kind="access_token"
        )

    def refresh_token(self) -> str | None:
        return read_refresh_token(self.store, self.vault, self.tenant_id)

    def refresh(self, rejected_token: str) -> str:
        """Return an access token newer than `rejected_token`; at most one token request per rejected token."""
        with self._locks_guard:
            lock = self._locks.setdefault(self.tenant_id, threading.Lock())
        with lock:
            row = self._wait_for_lease(rejected_token)
            if row is None:
                return self.access_token()
            try:
                response = self._request_refresh(row)
            except BaseException:
                self._release_lease()
                raise
            self.refreshes += 1
            self._store_refreshed(row["version"], response)
            return response.access_token

    def _wait_for_lease(self, rejected_token: str):
        """Take the refresh lease and return the row it covers, or None once another run refreshed."""
        deadline = time.monotonic() + REFRESH_WAIT_SECONDS
        while True:
            row = read_token_row(self.store, self.tenant_id)
            current = self.vault.decrypt(
                row["access_ciphertext"], tenant=self.tenant_id, kind="access_token"
            )
            if current != rejected_token:
                return None
            if self._take_lease(row["version"]):
                return row
            if time.monotonic() > deadline:
                raise errors.OAuthError(
                    f"timed out after {REFRESH_WAIT_SECONDS:.0f} s waiting for another run to refresh the tokens",
                    tenant=self.tenant_id,
                )
            time.sleep(POLL_SECONDS)

    def _take_lease(self, version: int) -> bool:
        column = tables.tokens.c
        now = utcnow()
        with self.store.engine.begin() as conn:
            leased = conn.execute(
                tables.tokens.update()
                .where(
                    column.tenant_id == self.tenant_id,
                    column.version == version,
                    column.refresh_lease_until.is_(None)
                    | (column.refresh_lease_until < now),
                )
                .values(
                    refresh_lease_owner=self._owner,
                    refresh_lease_until=now + REFRESH_LEASE,
                )
            ).rowcount
        return leased == 1

    def _release_lease(self) -> None:
        column = tables.tokens.c
        with self.store.engine.begin() as conn:
            conn.execute(
                tables.tokens.update()
                .where(
                    column.tenant_id == self.tenant_id,
                    column.refresh_lease_owner == self._owner,
                )
                .values(refresh_lease_owner=None, refresh_lease_until=None)
            )

    def _request_refresh(self, row) -> TokenResponse:
        ciphertext = row["refresh_ciphertext"]
        if not ciphertext:
            raise self._needs_reauthorization("no refresh token stored")
        refresh = self.vault.decrypt(
            ciphertext, tenant=self.tenant_id, kind="refresh_token"
        )
        tenant = self.store.get_tenant(self.tenant_id)
        try:
            return self.app.refresh(
                tenant.login_url, refresh, allow_loopback=self.allow_loopback
            )
        except errors.ReauthorizationRequiredError as error:
            # The stored refresh token stays: an admin may restore the app's access, and it is evidence.
            raise self._needs_reauthorization(error.message) from None

    def _store_refreshed(self, version: int, response: TokenResponse) -> None:
        values = {
            "access_ciphertext": self.vault.encrypt(
                response.access_token, tenant=self.tenant_id, kind="access_token"
            ),
            "key_id": self.vault.current_key_id,
            "version": version + 1,
            "updated_at": utcnow(),
            "refresh_lease_owner": None,
            "refresh_lease_until": None,
        }
        if response.refresh_token:
            values["refresh_ciphertext"] = self.vault.encrypt(
                response.refresh_token, tenant=self.tenant_id, kind="refresh_token"
            )
        column = tables.tokens.c
        with self.store.engine.begin() as conn:
            updated = conn.execute(
                tables.tokens.update()
                .where(
                    column.tenant_id == self.tenant_id,
                    column.refresh_lease_owner == self._owner,
                )
                .values(**values)
            ).rowcount
        if updated != 1:
            # NOTE: reached only when this process held the lease past REFRESH_LEASE (a token
            # request slower than 60 s) and another run took it over. A rotated refresh token
            # from this response is then lost, and the next refresh may need re-authorization.
            log.error(
                "Tenant %s: refresh lease lost before the new tokens were stored",
                self.tenant_id,
            )

    def _needs_reauthorization(
        self, reason: str
    ) -> errors.ReauthorizationRequiredError:
        message = reauthorization_message(self.tenant_id, reason)
        self.store.mark_needs_reauthorization(self.tenant_id, message)
        return errors.ReauthorizationRequiredError(
            message, error_code="invalid_grant", tenant=self.tenant_id
        )
