"""Webhook signing: Standard Webhooks v1 (the spec's test vector, verification with the official package)
and Cobalt's `cobalt-verification` (a vector from Node's `createHmac`, verification with Python's hmac)."""

import base64
import hashlib
import hmac
import json
import re
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from emrtasks.webhooks import signing

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = json.dumps(
    {"type": "task.created", "timestamp": "2025-01-01T00:00:00Z", "data": {"id": "tsk_1"}},
    separators=(",", ":"),
).encode()


def make_headers(
    secrets: list[str], *, body: bytes = BODY, timestamp: int | None = None, msg_id: str = "evt_01"
) -> dict[str, str]:
    return signing.headers(
        secrets=secrets,
        msg_id=msg_id,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        body=body,
        attempt=1,
        user_agent="emrtasks/test",
    )


def test_sign_matches_the_standard_webhooks_spec_test_vector() -> None:
    assert signing.sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE


def test_sign_matches_the_official_package_signature() -> None:
    moment = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)
    expected = Webhook(SPEC_SECRET).sign(SPEC_MSG_ID, moment, SPEC_PAYLOAD.decode())
    assert signing.sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == expected


def test_signature_header_with_one_secret_is_a_single_v1_signature() -> None:
    header = signing.signature_header([SPEC_SECRET], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)
    assert header == SPEC_SIGNATURE


def test_headers_we_build_verify_with_the_official_package() -> None:
    secret = signing.new_secret()
    assert Webhook(secret).verify(BODY, make_headers([secret])) == json.loads(BODY)


def test_headers_verify_with_the_official_package_for_the_spec_secret() -> None:
    assert Webhook(SPEC_SECRET).verify(SPEC_PAYLOAD, make_headers([SPEC_SECRET], body=SPEC_PAYLOAD)) == {
        "test": 2432232314
    }


def test_several_signatures_in_the_header_verify_when_one_is_valid() -> None:
    secret = signing.new_secret()
    built = make_headers([secret])
    bogus_v1 = "v1," + base64.b64encode(b"\x00" * 32).decode()
    other_scheme = "v1a," + base64.b64encode(b"\x01" * 64).decode()
    built["webhook-signature"] = f"{bogus_v1} {other_scheme} {built['webhook-signature']}"
    assert Webhook(secret).verify(BODY, built) == json.loads(BODY)


def test_a_tampered_body_fails_verification() -> None:
    secret = signing.new_secret()
    built = make_headers([secret])
    tampered = BODY.replace(b"tsk_1", b"tsk_2")
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(tampered, built)


def test_a_reserialised_body_fails_verification() -> None:
    secret = signing.new_secret()
    built = make_headers([secret])
    reserialised = json.dumps(json.loads(BODY)).encode()  # adds spaces after ':' and ','
    assert reserialised != BODY
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(reserialised, built)


def test_a_wrong_secret_fails_verification() -> None:
    built = make_headers([signing.new_secret()])
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(signing.new_secret()).verify(BODY, built)


def test_a_timestamp_six_minutes_old_fails_verification() -> None:
    secret = signing.new_secret()
    built = make_headers([secret], timestamp=int(time.time()) - 6 * 60)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, built)


def test_a_timestamp_six_minutes_ahead_fails_verification() -> None:
    secret = signing.new_secret()
    built = make_headers([secret], timestamp=int(time.time()) + 6 * 60)
    with pytest.raises(WebhookVerificationError, match="too new"):
        Webhook(secret).verify(BODY, built)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_fails_verification(missing: str) -> None:
    secret = signing.new_secret()
    built = make_headers([secret])
    del built[missing]
    with pytest.raises(WebhookVerificationError, match="Missing required headers"):
        Webhook(secret).verify(BODY, built)


def test_the_signature_covers_the_message_id() -> None:
    secret = signing.new_secret()
    built = make_headers([secret], msg_id="evt_01")
    built["webhook-id"] = "evt_02"
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(BODY, built)


def test_during_rotation_the_header_has_two_signatures_and_each_secret_alone_verifies() -> None:
    current, previous = signing.new_secret(), signing.new_secret()
    built = make_headers([current, previous])
    signatures = built["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    timestamp = int(built["webhook-timestamp"])
    assert signatures == [
        signing.sign(current, "evt_01", timestamp, BODY),
        signing.sign(previous, "evt_01", timestamp, BODY),
    ]
    assert Webhook(current).verify(BODY, built) == json.loads(BODY)
    assert Webhook(previous).verify(BODY, built) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, built)


def test_new_secret_is_whsec_prefixed_base64_of_32_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(raw) == 32


def test_new_secret_differs_each_time() -> None:
    secrets = {signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50


def test_new_secret_is_accepted_by_the_official_package() -> None:
    secret = signing.new_secret()
    webhook = Webhook(secret)
    moment = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)
    assert webhook.sign("evt_01", moment, BODY.decode()) == signing.sign(
        secret, "evt_01", SPEC_TIMESTAMP, BODY
    )


def test_headers_hold_exactly_the_standard_webhooks_headers_plus_attempt_type_and_agent() -> None:
    secret = signing.new_secret()
    built = signing.headers(
        secrets=[secret],
        msg_id="evt_01",
        timestamp=1700000000,
        body=BODY,
        attempt=3,
        user_agent="emrtasks/1.2.3",
    )
    assert built == {
        "webhook-id": "evt_01",
        "webhook-timestamp": "1700000000",
        "webhook-signature": signing.sign(secret, "evt_01", 1700000000, BODY),
        "webhook-attempt": "3",
        "cobalt-verification": signing.cobalt_signature(secret, BODY),
        "content-type": "application/json",
        "user-agent": "emrtasks/1.2.3",
    }


# Cobalt's documented verifier, run in Node 20 on the spec secret and the compact form of the spec
# payload: crypto.createHmac("sha256", secret).update(JSON.stringify({test: 2432232314})).digest("hex")
COBALT_BODY = b'{"test":2432232314}'
COBALT_VECTOR = "78dd34208881d421fa3a5c6234cab4568e4b390c903fc1a2668d1e71c68fb9c9"


def _python_cobalt_verify(secret: str, body: bytes, signature: str) -> bool:
    """Cobalt's check in Python: hex HMAC-SHA256 of the body keyed with the secret string's UTF-8."""
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def test_cobalt_signature_matches_what_nodes_create_hmac_gives_for_the_same_key_and_body() -> None:
    assert signing.cobalt_signature(SPEC_SECRET, COBALT_BODY) == COBALT_VECTOR


def test_cobalt_signature_is_keyed_with_the_whole_secret_string_not_its_decoded_bytes() -> None:
    decoded_key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    keyed_by_bytes = hmac.new(decoded_key, COBALT_BODY, hashlib.sha256).hexdigest()
    assert signing.cobalt_signature(SPEC_SECRET, COBALT_BODY) != keyed_by_bytes


def test_cobalt_signature_is_64_lowercase_hex_characters_with_no_prefix() -> None:
    signature = signing.cobalt_signature(signing.new_secret(), BODY)
    assert len(signature) == 64
    assert set(signature) <= set("0123456789abcdef")


def test_the_cobalt_header_verifies_with_python_hmac_and_the_secret() -> None:
    secret = signing.new_secret()
    assert _python_cobalt_verify(secret, BODY, make_headers([secret])["cobalt-verification"])


def test_the_cobalt_header_fails_for_a_tampered_body_or_another_secret() -> None:
    secret = signing.new_secret()
    header = make_headers([secret])["cobalt-verification"]
    assert not _python_cobalt_verify(secret, BODY.replace(b"tsk_1", b"tsk_2"), header)
    assert not _python_cobalt_verify(signing.new_secret(), BODY, header)


def test_during_rotation_the_cobalt_header_is_signed_with_the_newest_secret_only() -> None:
    newest, previous = signing.new_secret(), signing.new_secret()
    header = make_headers([newest, previous])["cobalt-verification"]
    assert _python_cobalt_verify(newest, BODY, header)
    assert not _python_cobalt_verify(previous, BODY, header)
    assert " " not in header


def test_the_cobalt_header_does_not_depend_on_the_timestamp_or_attempt() -> None:
    secret = signing.new_secret()
    first = make_headers([secret], timestamp=1700000000)["cobalt-verification"]
    later = make_headers([secret], timestamp=1700000999, msg_id="evt_02")["cobalt-verification"]
    assert first == later == signing.cobalt_signature(secret, BODY)


def _docs_cobalt_check() -> object:
    """The Python check shown in docs/webhooks.md under "Cobalt clients", run as written."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    section = doc.split("## Cobalt clients", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(match.group(1)), namespace)  # the block is indented under a list item
    return namespace["cobalt_verified"]


def test_the_python_check_in_the_docs_verifies_our_header_and_refuses_another_secret() -> None:
    check = _docs_cobalt_check()
    secret = signing.new_secret()
    header = make_headers([secret])["cobalt-verification"]
    assert check(BODY, header, secret) is True  # type: ignore[operator]
    assert check(BODY, header, signing.new_secret()) is False  # type: ignore[operator]
