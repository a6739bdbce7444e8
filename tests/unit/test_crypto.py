"""Encryption at rest: each ciphertext is bound to its table, row and column."""

import os

import pytest
from cryptography.exceptions import InvalidTag

from emrtasks.storage import crypto

HERE = crypto.Where("webhook_endpoints", "wh_1", "secret")


@pytest.fixture
def cipher() -> crypto.Cipher:
    return crypto.Cipher(os.urandom(32))


def test_a_value_decrypts_where_it_was_sealed(cipher):
    sealed = cipher.encrypt("whsec_abc", HERE)
    assert sealed.startswith("v2:")
    assert cipher.decrypt(sealed, HERE) == "whsec_abc"


@pytest.mark.parametrize(
    "elsewhere",
    [
        crypto.Where("webhook_endpoints", "wh_2", "secret"),  # another row
        crypto.Where("webhook_endpoints", "wh_1", "previous_secret"),  # another column
        crypto.Where("connections", "wh_1", "secret"),  # another table
        crypto.Where("webhook_endpoints", "wh_1secret", ""),  # the same letters, split otherwise
    ],
)
def test_a_ciphertext_moved_to_another_row_column_or_table_fails_to_decrypt(cipher, elsewhere):
    sealed = cipher.encrypt("whsec_abc", HERE)
    with pytest.raises(InvalidTag):
        cipher.decrypt(sealed, elsewhere)


def test_a_v1_value_from_before_the_migration_is_still_read(cipher):
    legacy = cipher.encrypt_legacy("whsec_old")
    assert legacy.startswith("v1:")
    assert cipher.decrypt(legacy, HERE) == "whsec_old"


def test_an_unknown_format_is_refused(cipher):
    with pytest.raises(ValueError, match="unknown secret format"):
        cipher.decrypt("plain", HERE)
