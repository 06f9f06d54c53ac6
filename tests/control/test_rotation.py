"""`routiine keys rotate`: every stored secret re-encrypted with the new key, unused keys dropped, no key printed."""

from __future__ import annotations

import sqlalchemy as sa

from routiine_pipeline.cli import main
from routiine_pipeline.control import tables
from routiine_pipeline.control.connect import TenantConnector
from routiine_pipeline.control.rotation import key_ids_in_use
from routiine_pipeline.control.store import open_control_store
from routiine_pipeline.control.tokens import read_refresh_token, save_tokens
from routiine_pipeline.control.vault import (
    TokenVault,
    load_keys,
    new_key_entry,
    parse_keys,
)
from routiine_pipeline.salesforce.oauth import OAuthApp, TokenResponse
from routiine_pipeline.settings import control_store_url

APP = OAuthApp("client", "secret", "http://127.0.0.1:1/oauth/callback")


def _seed(home) -> tuple[TokenVault, dict[str, tuple[str, str]]]:
    store = open_control_store(control_store_url())
    vault = TokenVault(load_keys(home))
    tokens = {}
    for tenant in ("alpha", "beta"):
        store.add_tenant(
            tenant, org_type="production", login_url="https://login.salesforce.com"
        )
        pair = (f"00D!{tenant}-access-9d1", f"5Aep-{tenant}-refresh-77c")
        save_tokens(
            store,
            vault,
            tenant,
            TokenResponse(
                pair[0], pair[1], "https://acme.my.salesforce.com", None, None
            ),
        )
        tokens[tenant] = pair
    TenantConnector(store, vault, APP, allow_loopback=False).start("alpha")
    return vault, tokens


def _ciphertexts() -> list[str]:
    store = open_control_store(control_store_url())
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                tables.tokens.c.access_ciphertext, tables.tokens.c.refresh_ciphertext
            )
        ).all()
        states = (
            conn.execute(sa.select(tables.oauth_states.c.verifier_ciphertext))
            .scalars()
            .all()
        )
    return [value for row in rows for value in row] + list(states)


def test_rotate_with_key_file(routiine_home, capsys):
    old_vault, tokens = _seed(routiine_home)
    old_key = old_vault.keys[0]
    assert main(["keys", "rotate"]) == 0
    output = capsys.readouterr().out
    new_keys = load_keys(routiine_home)
    assert len(new_keys) == 1
    assert new_keys[0].key_id != old_key.key_id
    assert "Re-encrypted: 2 tenants, 4 tokens, 1 pending OAuth states" in output
    assert f"Removed keys no ciphertext uses any more: {old_key.key_id}" in output
    assert old_key.entry().split(":")[1] not in output
    assert new_keys[0].entry().split(":")[1] not in output
    for access, refresh in tokens.values():
        assert access not in output
        assert refresh not in output
    new_vault = TokenVault(new_keys)
    store = open_control_store(control_store_url())
    assert {new_vault.key_id_of(value) for value in _ciphertexts()} == {
        new_keys[0].key_id
    }
    assert key_ids_in_use(store, new_vault) == {new_keys[0].key_id}
    for tenant, (_, refresh) in tokens.items():
        assert read_refresh_token(store, new_vault, tenant) == refresh


def test_rotate_from_environment(routiine_home, monkeypatch, capsys):
    old_entry, new_entry = new_key_entry(), new_key_entry()
    monkeypatch.setenv("ROUTIINE_VAULT_KEYS", old_entry)
    _, tokens = _seed(routiine_home)
    monkeypatch.setenv("ROUTIINE_VAULT_KEYS", f"{new_entry},{old_entry}")
    assert main(["keys", "rotate"]) == 0
    output = capsys.readouterr().out
    old_id, new_id = old_entry.split(":")[0], new_entry.split(":")[0]
    assert f"Current vault key: {new_id} (from the ROUTIINE_VAULT_KEYS)" in output
    assert f"remove them from ROUTIINE_VAULT_KEYS: {old_id}" in output
    assert old_entry.split(":")[1] not in output
    assert new_entry.split(":")[1] not in output
    only_new = TokenVault(parse_keys(new_entry))
    store = open_control_store(control_store_url())
    assert read_refresh_token(store, only_new, "beta") == tokens["beta"][1]


def test_rotate_twice_keeps_tokens_readable(routiine_home, capsys):
    _, tokens = _seed(routiine_home)
    assert main(["keys", "rotate"]) == 0
    assert main(["keys", "rotate"]) == 0
    vault = TokenVault(load_keys(routiine_home))
    store = open_control_store(control_store_url())
    assert read_refresh_token(store, vault, "alpha") == tokens["alpha"][1]
    assert len(load_keys(routiine_home)) == 1
