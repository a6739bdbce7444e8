"""Encryption at rest for secrets we must be able to use again (EMR credentials, webhook signing
secrets, signing keys, Link's tokens and app configs): AES-256-GCM.

Stored form: `v2:` + base64(12-byte nonce + ciphertext + tag), sealed with associated data naming
where the value lives (`Where`: table, row, column). A ciphertext copied to another row or column
fails to decrypt, so someone who can write to the database cannot move a secret where it is used
for something else (one client's webhook secret to another client's endpoint, say).

`v1:` values (no associated data) were written before migration 0012, which seals every one of
them again as v2. A v1 value is still read (a process of the older version may write one during a
rolling upgrade, after the migration ran), and sealed as v2 the next time it is written.
The key comes from bootstrap (`EMRTASKS_ENCRYPTION_KEY`, or a key file it creates on first start).
"""

import base64
import os
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LEGACY = "v1:"
_VERSION = "v2:"


class Where(NamedTuple):
    """The place of a sealed value: its table, its row's primary key and its column."""

    table: str
    row: str
    column: str

    def associated_data(self) -> bytes:
        # Lengths first, so no two places give the same bytes whatever their names hold.
        parts = [part.encode() for part in (_VERSION, self.table, self.row, self.column)]
        return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, where: Where) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), where.associated_data())
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, where: Where) -> str:
        """The plaintext; `cryptography.exceptions.InvalidTag` if the value was not sealed for `where`."""
        if stored.startswith(_VERSION):
            raw = base64.b64decode(stored[len(_VERSION) :])
            return self._aead.decrypt(raw[:12], raw[12:], where.associated_data()).decode()
        if stored.startswith(_LEGACY):
            raw = base64.b64decode(stored[len(_LEGACY) :])
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        raise ValueError("unknown secret format")

    def encrypt_legacy(self, plaintext: str) -> str:
        """The v1 form, bound to nothing: only for migration 0012's downgrade."""
        nonce = os.urandom(12)
        return (
            _LEGACY + base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext.encode(), None)).decode()
        )


def new_key() -> str:
    """A fresh key, as the base64 text `EMRTASKS_ENCRYPTION_KEY` takes."""
    return base64.b64encode(os.urandom(32)).decode()


def parse_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ValueError("the encryption key is not valid base64") from exc
    if len(key) != 32:
        raise ValueError("the encryption key must be base64 of exactly 32 bytes")
    return key
