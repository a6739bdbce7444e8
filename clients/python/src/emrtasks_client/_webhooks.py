"""`verify_webhook`: check a delivery's signature before trusting its event. Standard Webhooks through
the official `standardwebhooks` package; Cobalt's `cobalt-verification` header on request."""

import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from standardwebhooks import webhooks as standard

from emrtasks_client import _exceptions, _models

COBALT_HEADER = "cobalt-verification"
_STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def verify_webhook(
    body: bytes | str, headers: Mapping[str, str], secret: str, *, cobalt: bool = False
) -> _models.Event:
    """The delivery's event, once its signature is verified against the endpoint's `secret`
    (`whsec_...`, as `register_webhook` returned it); else `WebhookVerificationError`.

    Pass the body exactly as received (bytes), never re-serialised JSON. By default the Standard
    Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) are required: the
    signature is checked in constant time and a timestamp more than 5 minutes off is refused.

    `cobalt=True` takes Cobalt's header instead, for receivers written for Cobalt: `cobalt-verification`
    must be the lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the secret string
    whole (`whsec_...` as UTF-8). That header signs no timestamp, so it does not stop replays: dedupe
    on `webhook-id`. Where the delivery also carries `webhook-signature` (emrtasks sends both), that
    is verified too."""
    payload = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {name.lower(): value for name, value in headers.items()}
    if cobalt:
        _verify_cobalt(payload, lowered, secret)
        if "webhook-signature" in lowered:
            _verify_standard(payload, lowered, secret)
    else:
        _verify_standard(payload, lowered, secret)
    return _event(payload)


def cobalt_signature(body: bytes, secret: str) -> str:
    """The `cobalt-verification` value for a body: lowercase hex HMAC-SHA256 keyed with the secret string."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _verify_standard(payload: bytes, headers: dict[str, str], secret: str) -> None:
    missing = [name for name in _STANDARD_HEADERS if not headers.get(name)]
    if missing:
        raise _exceptions.WebhookVerificationError(f"Missing header: {', '.join(missing)}")
    try:
        verifier = standard.Webhook(secret)
    except (binascii.Error, ValueError, standard.EmptyWebhookSecretError) as error:
        raise ValueError("secret must be the whsec_... value the webhook was registered with") from error
    try:
        verifier.verify(payload, headers, json_parse=False)
    except standard.WebhookVerificationError as error:
        raise _exceptions.WebhookVerificationError(str(error)) from error


def _verify_cobalt(payload: bytes, headers: dict[str, str], secret: str) -> None:
    given = headers.get(COBALT_HEADER)
    if not given:
        raise _exceptions.WebhookVerificationError(f"Missing header: {COBALT_HEADER}")
    if not secret:
        raise ValueError("secret must be the whsec_... value the webhook was registered with")
    expected = cobalt_signature(payload, secret)
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise _exceptions.WebhookVerificationError(f"{COBALT_HEADER} does not match the body")


def _event(payload: bytes) -> _models.Event:
    try:
        raw: Any = json.loads(payload)
        if not isinstance(raw, Mapping):
            raise TypeError("not a JSON object")
        return _models.Event.from_json(raw)
    except (ValueError, TypeError, KeyError) as error:
        raise _exceptions.WebhookVerificationError(f"The signed body is not an event: {error!r}") from error
