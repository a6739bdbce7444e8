"""Webhook signing: Standard Webhooks v1 (HMAC-SHA256), Cobalt's `cobalt-verification`, and the headers
of one attempt.

Standard Webhooks signs `{webhook-id}.{webhook-timestamp}.{body}` over the exact bytes sent, keyed with
the base64 bytes after `whsec_`
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md).
Cobalt's verifier (https://docs.usecobalt.com/docs/webhooks/receiving) is
`crypto.createHmac('sha256', secretKey).update(JSON.stringify(payload)).digest('hex')`: the key is the
secret string itself as UTF-8 (`whsec_` and all), the content the JSON text alone.
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


def cobalt_signature(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the body, keyed with the whole secret string as UTF-8 (as Node's
    `createHmac` takes a string key). Events are serialised as `JSON.stringify` would, so the exact
    bytes sent are what a Cobalt verifier re-serialises."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
    """`secrets` newest first: Cobalt's single header is signed with the newest one only."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "webhook-attempt": str(attempt),
        "cobalt-verification": cobalt_signature(secrets[0], body),
        "content-type": "application/json",
        "user-agent": user_agent,
    }
