"""Prefixed, time-sortable identifiers (`task_...`, `job_...`) and secret tokens with their hashes."""

import hashlib
import hmac
import os
import secrets
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A ULID-shaped id: 48 bits of milliseconds then 80 random bits, base32, sortable by time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_CROCKFORD[index])
    return f"{prefix}_{''.join(reversed(chars))}"


def created_at(identifier: str) -> datetime | None:
    """When an id from `new_id` was minted (its first 10 characters are Unix milliseconds)."""
    head = identifier.rpartition("_")[2]
    if len(head) != 26 or any(c not in _CROCKFORD for c in head):
        return None
    millis = 0
    for char in head[:10]:
        millis = millis * 32 + _CROCKFORD.index(char)
    return datetime.fromtimestamp(millis / 1000, UTC)


def new_secret(prefix: str) -> str:
    """A bearer secret with 256 random bits; shown once, stored only as `hash_secret`."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    # A fast hash is enough: secrets carry 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


_ID_CHARACTERS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def plausible(value: str) -> bool:
    """Could this be one of our ids? Anything else (a NUL, 500 characters) cannot name a row."""
    return 0 < len(value) <= 64 and all(c in _ID_CHARACTERS for c in value)
