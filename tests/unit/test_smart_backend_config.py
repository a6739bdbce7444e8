"""What a `fhir` connection's settings need for each way of getting a token, named by check_config;
and the assertion's header and claims as built, before any server sees them."""

from datetime import UTC, datetime

import jwt
import pytest

from emrtasks.emr import fhir, signing
from tests.contract.keys import FixedSigner

BASE = {"base_url": "https://fhir.example.org/r4", "mrn_system": "urn:mrn"}
SMART = {
    **BASE,
    "auth": "smart_backend",
    "token_url": "https://fhir.example.org/token",
    "client_id": "emrtasks",
    "scope": "system/Task.write",
}


@pytest.mark.parametrize("missing", ["token_url", "client_id", "scope"])
def test_smart_backend_names_each_setting_it_needs(missing):
    config = {k: v for k, v in SMART.items() if k != missing}
    assert fhir.check_config(config) == [f"auth smart_backend needs {missing}"]


def test_smart_backend_refuses_a_secret_it_would_never_use():
    problems = fhir.check_config({**SMART, "client_secret": "s3cret"})
    assert any("client_secret" in p for p in problems)


def test_an_unknown_auth_is_refused_and_the_old_ways_still_pass():
    assert fhir.check_config({**SMART, "auth": "magic"}) == [
        "auth must be one of smart_backend, client_secret, token"
    ]
    secret = {**BASE, "token_url": "https://x/token", "client_id": "c", "client_secret": "s"}
    assert fhir.check_config(secret) == []
    assert fhir.check_config({**BASE, "access_token": "t"}) == []
    assert fhir.check_config({**BASE, "token_url": "https://x/token", "client_id": "c"}) == [
        "auth client_secret needs token_url, client_id and client_secret"
    ]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_the_assertion_names_its_key_and_lives_at_most_five_minutes(alg):
    signer = FixedSigner(alg)
    now = datetime.now(UTC)
    token = signing.client_assertion(signer.key, "emrtasks", "https://x/token", now)
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": signer.kid, "typ": "JWT"}
    claims = jwt.decode(token, jwt.PyJWK(signer.jwk).key, algorithms=[alg], audience="https://x/token")
    assert claims["iss"] == claims["sub"] == "emrtasks"
    assert claims["iat"] == int(now.timestamp()) and 0 < claims["exp"] - claims["iat"] <= 300
    again = signing.client_assertion(signer.key, "emrtasks", "https://x/token", now)
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


def test_a_signing_key_never_shows_its_private_half():
    key = FixedSigner().key
    assert "PRIVATE" not in repr(key) and "PRIVATE" not in str(key)
