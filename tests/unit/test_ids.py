"""Prefixed, time-sortable ids and secrets with their hashes."""

import re
import time
from types import SimpleNamespace

import pytest

from emrtasks.domain import ids

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
ID_SUFFIX = re.compile(r"[0-9abcdefghjkmnpqrstvwxyz]{26}")


def _decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + CROCKFORD.index(char)
    return value


@pytest.mark.parametrize("prefix", ["task", "job", "emrtask", "evt"])
def test_id_is_prefix_underscore_and_26_crockford_characters(prefix: str) -> None:
    new = ids.new_id(prefix)
    head, _, suffix = new.partition("_")
    assert head == prefix
    assert len(suffix) == 26
    assert ID_SUFFIX.fullmatch(suffix)


def test_id_encodes_milliseconds_then_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time=lambda: 1_700_000_000.123))
    monkeypatch.setattr(ids, "os", SimpleNamespace(urandom=lambda n: b"\xff" * n))
    new = ids.new_id("task")
    suffix = new.removeprefix("task_")
    assert _decode(suffix[:10]) == 1_700_000_000_123
    assert suffix[10:] == "z" * 16


def test_id_at_epoch_with_zero_randomness_is_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(time=lambda: 0.0))
    monkeypatch.setattr(ids, "os", SimpleNamespace(urandom=lambda n: bytes(n)))
    assert ids.new_id("job") == "job_" + "0" * 26


def test_id_timestamp_is_now() -> None:
    before = int(time.time() * 1000)
    new = ids.new_id("task")
    after = int(time.time() * 1000)
    assert before <= _decode(new.removeprefix("task_")[:10]) <= after


def test_ids_sort_by_creation_time() -> None:
    created = []
    for _ in range(5):
        created.append(ids.new_id("task"))
        time.sleep(0.002)
    assert sorted(created) == created
    assert len(set(created)) == 5


def test_ids_are_unique() -> None:
    many = [ids.new_id("job") for _ in range(2000)]
    assert len(set(many)) == len(many)


def test_secret_is_prefixed_and_carries_256_random_bits() -> None:
    secret = ids.new_secret("cs_live")
    assert secret.startswith("cs_live_")
    token = secret.removeprefix("cs_live_")
    assert len(token) == 43  # token_urlsafe(32): 32 bytes, base64url without padding
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_secrets_are_unique() -> None:
    many = {ids.new_secret("at") for _ in range(500)}
    assert len(many) == 500


def test_hash_is_the_sha256_hex_digest() -> None:
    assert ids.hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hash_is_deterministic_and_differs_per_secret() -> None:
    secret = ids.new_secret("cs")
    assert ids.hash_secret(secret) == ids.hash_secret(secret)
    assert ids.hash_secret(secret) != ids.hash_secret(secret + "x")
    assert secret not in ids.hash_secret(secret)


def test_secret_matches_its_own_hash() -> None:
    secret = ids.new_secret("cs_live")
    assert ids.secret_matches(secret, ids.hash_secret(secret)) is True


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("cs_live_other", id="other-secret"),
        pytest.param("", id="empty"),
        pytest.param("cs_live_right ", id="trailing-space"),
        pytest.param("CS_LIVE_RIGHT", id="different-case"),
    ],
)
def test_wrong_secret_does_not_match(presented: str) -> None:
    assert ids.secret_matches(presented, ids.hash_secret("cs_live_right")) is False


def test_secret_does_not_match_when_the_stored_value_is_the_plain_secret() -> None:
    assert ids.secret_matches("cs_live_right", "cs_live_right") is False
