"""Encryption of OAuth tokens at rest with AES-GCM, bound to their tenant.

Each ciphertext is `v1:<key id>:<base64 of nonce + ciphertext>`. The tenant
id and the token kind are the associated data, so a ciphertext copied into
another tenant's row fails to decrypt instead of handing over a session.
Keys come from ROUTIINE_VAULT_KEYS (`id:base64key,id:base64key`, first one
current) or from a key file created on first use with mode 0600.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEYS_ENV = "ROUTIINE_VAULT_KEYS"
KEY_FILE_NAME = "vault.keys"
_FORMAT = "v1"


class VaultError(Exception):
    """A token could not be encrypted or decrypted; the message never contains key or token."""


@dataclass(frozen=True)
class VaultKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"VaultKey(key_id={self.key_id!r})"

    def entry(self) -> str:
        """Return the `id:base64key` line that stores this key; it contains the secret."""
        return f"{self.key_id}:{base64.b64encode(self.secret).decode()}"


def parse_keys(spec: str) -> list[VaultKey]:
    """Parse `id:base64key,...`; every key must decode to 32 bytes (AES-256)."""
    keys = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise VaultError(
                f"vault key entry without an id: expected id:base64key (entry {len(keys) + 1})"
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise VaultError(f"vault key {key_id!r} is not valid base64") from None
        if len(secret) != 32:
            raise VaultError(
                f"vault key {key_id!r} has {len(secret)} bytes, expected 32 for AES-256"
            )
        keys.append(VaultKey(key_id, secret))
    if not keys:
        raise VaultError("no vault key configured")
    return keys


def new_key_entry() -> str:
    """Return a fresh `id:base64key` entry with a random 256-bit key."""
    return f"k{secrets.token_hex(4)}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def load_keys(home: Path) -> list[VaultKey]:
    """Load the keys from the environment, else from the key file, creating it if missing."""
    spec = os.environ.get(KEYS_ENV)
    if spec:
        return parse_keys(spec)
    path = home / KEY_FILE_NAME
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key_entry() + "\n")
    return parse_keys(path.read_text().replace("\n", ","))


def write_key_file(home: Path, keys: list[VaultKey]) -> Path:
    """Replace the key file atomically with `keys`, current key first, readable by the owner only."""
    path = home / KEY_FILE_NAME
    temporary = home / f".{KEY_FILE_NAME}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(key.entry() + "\n" for key in keys))
    os.replace(temporary, path)
    return path


class TokenVault:
    """Encrypts with the current (first) key and decrypts with whichever key id a ciphertext names."""

    def __init__(self, keys: list[VaultKey]) -> None:
        if not keys:
            raise VaultError("no vault key configured")
        self._keys = {key.key_id: key for key in keys}
        self.keys = list(keys)
        self.current_key_id = keys[0].key_id

    def __repr__(self) -> str:
        return f"TokenVault(current_key_id={self.current_key_id!r}, keys={len(self._keys)})"

    def encrypt(self, plaintext: str, *, tenant: str, kind: str) -> str:
        key = self._keys[self.current_key_id]
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(key.secret).encrypt(
            nonce, plaintext.encode(), _associated_data(tenant, kind)
        )
        return f"{_FORMAT}:{key.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, ciphertext: str, *, tenant: str, kind: str) -> str:
        version, key_id, encoded = _split(ciphertext)
        if version != _FORMAT:
            raise VaultError(
                f"unknown ciphertext format {version!r} for tenant {tenant!r} ({kind})"
            )
        key = self._keys.get(key_id)
        if key is None:
            raise VaultError(
                f"the {kind} of tenant {tenant!r} is encrypted with key {key_id!r}, which is not configured; "
                f"add it to {KEYS_ENV} or the key file"
            )
        raw = base64.b64decode(encoded)
        try:
            plain = AESGCM(key.secret).decrypt(
                raw[:12], raw[12:], _associated_data(tenant, kind)
            )
        except InvalidTag:
            raise VaultError(
                f"the {kind} of tenant {tenant!r} failed authentication: it was tampered with "
                "or belongs to another tenant; reconnect the tenant"
            ) from None
        return plain.decode()

    def key_id_of(self, ciphertext: str) -> str:
        return _split(ciphertext)[1]


def _associated_data(tenant: str, kind: str) -> bytes:
    return f"routiine/{tenant}/{kind}".encode()


def _split(ciphertext: str) -> tuple[str, str, str]:
    parts = ciphertext.split(":", 2)
    if len(parts) != 3:
        raise VaultError("malformed ciphertext: expected v1:<key id>:<data>")
    return parts[0], parts[1], parts[2]
