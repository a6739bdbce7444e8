"""`verify_webhook` on deliveries signed here: Standard Webhooks signatures made with the official
package, and Cobalt's `cobalt-verification` (hex HMAC-SHA256 of the body) made with hmac."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

import emrtasks_client as sdk

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = (
    b'{"id":"evt_1","access_token_reference_id":"clinic-42","object":"event",'
    b'"created":"2026-11-30T11:59:26.020Z","type":"task.created","job_id":"job_1",'
    b'"data":{"task_id":"task_1","emr_task_id":"emrtask_1"}}'
)


def _standard_headers(body: bytes = BODY, secret: str = SECRET, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("evt_1", at, body),
    }


def _cobalt(body: bytes = BODY, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_standard_webhooks_delivery_verifies_and_gives_its_event():
    event = sdk.verify_webhook(BODY, _standard_headers(), SECRET)
    assert (event.id, event.type, event.data["task_id"]) == ("evt_1", "task.created", "task_1")
    assert event.access_token_reference_id == "clinic-42"
    assert event.attempts == () and event.delivery_status is None


def test_headers_are_matched_whatever_their_case_and_a_str_body_verifies_as_utf8():
    headers = {name.title(): value for name, value in _standard_headers().items()}
    assert sdk.verify_webhook(BODY.decode(), headers, SECRET).id == "evt_1"


def test_a_signature_listing_a_rotated_secret_beside_ours_verifies():
    headers = _standard_headers(secret=OTHER_SECRET)
    now = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    headers["webhook-signature"] += " " + Webhook(SECRET).sign("evt_1", now, BODY)
    assert sdk.verify_webhook(BODY, headers, SECRET).id == "evt_1"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"task_1", b"task_2"), headers),
        lambda body, headers: (body, {**headers, "webhook-id": "evt_2"}),
        lambda body, headers: (body, _standard_headers(secret=OTHER_SECRET)),
        lambda body, headers: (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),
        lambda body, headers: (body, _standard_headers(at=datetime.now(UTC) - timedelta(minutes=10))),
    ],
    ids=["body changed", "id changed", "other secret", "no signature", "ten minutes old"],
)
def test_a_tampered_foreign_or_stale_delivery_is_refused(tamper):
    body, headers = tamper(BODY, _standard_headers())
    with pytest.raises(sdk.WebhookVerificationError):
        sdk.verify_webhook(body, headers, SECRET)


def test_a_cobalt_signature_alone_is_not_accepted_unless_asked_for():
    headers = {"webhook-id": "evt_1", "cobalt-verification": _cobalt()}
    with pytest.raises(sdk.WebhookVerificationError, match="webhook-timestamp, webhook-signature"):
        sdk.verify_webhook(BODY, headers, SECRET)
    assert sdk.verify_webhook(BODY, headers, SECRET, cobalt=True).id == "evt_1"


def test_cobalt_verification_is_the_hex_hmac_of_the_exact_bytes_keyed_with_the_whole_secret():
    assert sdk.cobalt_signature(BODY, SECRET) == _cobalt()
    assert _cobalt() != hmac.new(b"k" * 32, BODY, hashlib.sha256).hexdigest()  # not the decoded key
    reordered = b'{"type":"task.created",' + BODY[1:].replace(b',"type":"task.created"', b"")
    with pytest.raises(sdk.WebhookVerificationError, match="does not match"):
        sdk.verify_webhook(reordered, {"cobalt-verification": _cobalt()}, SECRET, cobalt=True)
    with pytest.raises(sdk.WebhookVerificationError, match="does not match"):
        sdk.verify_webhook(BODY, {"cobalt-verification": _cobalt(secret=OTHER_SECRET)}, SECRET, cobalt=True)
    with pytest.raises(sdk.WebhookVerificationError, match="Missing header: cobalt-verification"):
        sdk.verify_webhook(BODY, _standard_headers(), SECRET, cobalt=True)


def test_with_cobalt_a_standard_signature_present_is_checked_too():
    good = {**_standard_headers(), "cobalt-verification": _cobalt()}
    assert sdk.verify_webhook(BODY, good, SECRET, cobalt=True).id == "evt_1"
    forged = {**_standard_headers(secret=OTHER_SECRET), "cobalt-verification": _cobalt()}
    with pytest.raises(sdk.WebhookVerificationError):
        sdk.verify_webhook(BODY, forged, SECRET, cobalt=True)


def test_a_signed_body_that_is_not_an_event_is_refused():
    body = b"[1, 2]"
    with pytest.raises(sdk.WebhookVerificationError, match="not an event"):
        sdk.verify_webhook(body, _standard_headers(body), SECRET)


def test_a_secret_that_is_not_a_webhook_secret_is_a_programming_error():
    with pytest.raises(ValueError, match="whsec_"):
        sdk.verify_webhook(BODY, _standard_headers(), "whsec_")
