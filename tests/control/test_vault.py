import base64
import os

import pytest

from routiine_pipeline.control.vault import (
    TokenVault,
    VaultError,
    load_keys,
    new_key_entry,
    parse_keys,
)


def _vault(*entries: str) -> TokenVault:
    return TokenVault(parse_keys(",".join(entries)))


def test_round_trip():
    vault = _vault(new_key_entry())
    ciphertext = vault.encrypt("00Dxx!secret-token", tenant="acme", kind="access_token")
    assert "secret-token" not in ciphertext
    assert (
        vault.decrypt(ciphertext, tenant="acme", kind="access_token")
        == "00Dxx!secret-token"
    )


def test_ciphertext_of_another_tenant_fails():
    vault = _vault(new_key_entry())
    ciphertext = vault.encrypt("token-of-acme", tenant="acme", kind="refresh_token")
    with pytest.raises(VaultError, match="another tenant") as raised:
        vault.decrypt(ciphertext, tenant="globex", kind="refresh_token")
    assert "token-of-acme" not in str(raised.value)


def test_ciphertext_of_another_kind_fails():
    vault = _vault(new_key_entry())
    ciphertext = vault.encrypt("t", tenant="acme", kind="refresh_token")
    with pytest.raises(VaultError):
        vault.decrypt(ciphertext, tenant="acme", kind="access_token")


def test_old_key_still_decrypts_after_rotation():
    old, new = new_key_entry(), new_key_entry()
    ciphertext = _vault(old).encrypt("t", tenant="acme", kind="access_token")
    rotated = _vault(new, old)
    assert rotated.decrypt(ciphertext, tenant="acme", kind="access_token") == "t"
    assert (
        rotated.key_id_of(rotated.encrypt("t", tenant="acme", kind="access_token"))
        == new.split(":")[0]
    )


def test_missing_key_id_is_named():
    ciphertext = _vault(new_key_entry()).encrypt(
        "t", tenant="acme", kind="access_token"
    )
    with pytest.raises(VaultError, match="not configured"):
        _vault(new_key_entry()).decrypt(ciphertext, tenant="acme", kind="access_token")


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nokey",
        ":abc",
        "k1:not-base64!!",
        f"k1:{base64.b64encode(b'short').decode()}",
    ],
)
def test_bad_key_specs_rejected(spec):
    with pytest.raises(VaultError):
        parse_keys(spec)


def test_key_file_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv("ROUTIINE_VAULT_KEYS", raising=False)
    keys = load_keys(tmp_path)
    assert len(keys) == 1
    assert oct(os.stat(tmp_path / "vault.keys").st_mode & 0o777) == "0o600"
    assert load_keys(tmp_path)[0].key_id == keys[0].key_id
