"""Vault key rotation: re-encrypt every stored secret with a new key, then drop unused keys.

With a key file, rotation writes the new key in front of the old ones before
it re-encrypts anything, so every ciphertext stays readable if it stops
half-way, and removes an old key only once no stored ciphertext names it.
With ROUTIINE_VAULT_KEYS the operator puts the new key first in the variable
and later removes the old keys, because a command cannot change the
environment of other processes. Rotation then lists the keys nothing uses.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.store import ControlStore, utcnow
from routiine_pipeline.control.vault import (
    KEYS_ENV,
    TokenVault,
    load_keys,
    new_key_entry,
    parse_keys,
    write_key_file,
)

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    """Counts and key ids of one rotation; it never contains a key."""

    current_key_id: str
    key_source: str
    tenants: int = 0
    tokens: int = 0
    states: int = 0
    states_deleted: int = 0
    skipped_tenants: list[str] = field(default_factory=list)
    keys_removed: list[str] = field(default_factory=list)
    keys_in_use: list[str] = field(default_factory=list)
    keys_unused: list[str] = field(default_factory=list)


def rotate_keys(store: ControlStore, home: Path) -> RotationReport:
    """Make a new key current (generated, or the first of ROUTIINE_VAULT_KEYS) and re-encrypt with it."""
    spec = os.environ.get(KEYS_ENV)
    if spec:
        keys = parse_keys(spec)
        source = KEYS_ENV
    else:
        keys = [*parse_keys(new_key_entry()), *load_keys(home)]
        write_key_file(home, keys)
        source = "key file"
    vault = TokenVault(keys)
    report = RotationReport(current_key_id=vault.current_key_id, key_source=source)
    _reencrypt_tokens(store, vault, report)
    _reencrypt_states(store, vault, report)
    used = key_ids_in_use(store, vault)
    report.keys_in_use = sorted(used)
    if spec:
        report.keys_unused = [key.key_id for key in keys[1:] if key.key_id not in used]
    else:
        remaining = [
            key
            for key in keys
            if key.key_id == vault.current_key_id or key.key_id in used
        ]
        report.keys_removed = [key.key_id for key in keys if key not in remaining]
        write_key_file(home, remaining)
    log.info(
        "Vault key rotation to %s: %d tenants, %d tokens, %d states re-encrypted; keys removed: %s",
        report.current_key_id,
        report.tenants,
        report.tokens,
        report.states,
        report.keys_removed or "none",
    )
    return report


def _reencrypt_tokens(
    store: ControlStore, vault: TokenVault, report: RotationReport
) -> None:
    column = tables.tokens.c
    now = utcnow()
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(tables.tokens)).mappings().all()
        for row in rows:
            tenant = row["tenant_id"]
            lease = row["refresh_lease_until"]
            if (
                lease is not None
                and (lease if lease.tzinfo else lease.replace(tzinfo=now.tzinfo)) > now
            ):
                # A refresh in flight writes with the key its process loaded; leave the row to it.
                report.skipped_tenants.append(tenant)
                continue
            values = {
                "access_ciphertext": _reseal(
                    vault, row["access_ciphertext"], tenant, "access_token"
                )
            }
            report.tokens += 1
            if row["refresh_ciphertext"]:
                values["refresh_ciphertext"] = _reseal(
                    vault, row["refresh_ciphertext"], tenant, "refresh_token"
                )
                report.tokens += 1
            updated = conn.execute(
                tables.tokens.update()
                .where(column.tenant_id == tenant, column.version == row["version"])
                .values(
                    **values,
                    key_id=vault.current_key_id,
                    version=row["version"] + 1,
                    updated_at=now,
                )
            ).rowcount
            if updated == 1:
                report.tenants += 1
            else:
                report.skipped_tenants.append(tenant)


def _reencrypt_states(
    store: ControlStore, vault: TokenVault, report: RotationReport
) -> None:
    column = tables.oauth_states.c
    with store.engine.begin() as conn:
        report.states_deleted = conn.execute(
            tables.oauth_states.delete().where(
                column.used_at.is_not(None) | (column.expires_at < utcnow())
            )
        ).rowcount
        for row in conn.execute(sa.select(tables.oauth_states)).mappings().all():
            sealed = _reseal(
                vault, row["verifier_ciphertext"], row["tenant_id"], "pkce_verifier"
            )
            conn.execute(
                tables.oauth_states.update()
                .where(column.state_hash == row["state_hash"])
                .values(verifier_ciphertext=sealed)
            )
            report.states += 1


def _reseal(vault: TokenVault, ciphertext: str, tenant: str, kind: str) -> str:
    return vault.encrypt(
        vault.decrypt(ciphertext, tenant=tenant, kind=kind), tenant=tenant, kind=kind
    )


def key_ids_in_use(store: ControlStore, vault: TokenVault) -> set[str]:
    """Return the ids of the keys that some stored ciphertext names."""
    token, state = tables.tokens.c, tables.oauth_states.c
    with store.engine.connect() as conn:
        values = [
            *conn.execute(
                sa.select(token.access_ciphertext, token.refresh_ciphertext)
            ).all(),
            *conn.execute(sa.select(state.verifier_ciphertext)).all(),
        ]
    return {vault.key_id_of(value) for row in values for value in row if value}
