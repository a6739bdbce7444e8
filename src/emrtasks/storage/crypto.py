"""Encryption at rest for secrets we must be able to use again (webhook signing keys): AES-256-GCM.

Stored form: `v1:` + base64(12-byte nonce + ciphertext + tag). The key comes from bootstrap
(`EMRTASKS_ENCRYPTION_KEY`, or a key file it creates on first start).
"""

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1:"


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(_VERSION):
            raise ValueError("unknown secret format")
        raw = base64.b64decode(stored[len(_VERSION) :])
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()


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
