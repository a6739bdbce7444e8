"""Standard Webhooks signing (v1, HMAC-SHA256): secrets, signatures, and the headers of one attempt.

Signed content is `{webhook-id}.{webhook-timestamp}.{body}` over the exact bytes sent
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md).
"""

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    """24 to 64 random bytes per the spec; we use 32, base64, with the `whsec_` prefix."""
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<sig>` per active secret, space-separated (both during a rotation's overlap)."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def headers(
    *,
    secrets: Sequence[str],
    msg_id: str,
    timestamp: int,
    body: bytes,
    attempt: int,
    user_agent: str,
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "webhook-attempt": str(attempt),
        "content-type": "application/json",
        "user-agent": user_agent,
    }
