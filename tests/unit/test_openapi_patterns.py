"""The OpenAPI document's string patterns say exactly what the validators enforce: a value matches the
pattern if and only if the server accepts it."""

import re
import sys
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emrtasks.api import patterns
from emrtasks.domain import errors, rules, validation

RULES = rules.Rules(
    name="all_optional",
    emr="test",
    fields=(
        rules.FieldRule("description", True),
        rules.FieldRule("patient_mrn", True),
        rules.FieldRule("subject", False),
        rules.FieldRule("assignee_user_id", False),
        rules.FieldRule("notify_list", False),
    ),
)
# Mostly characters at the edges of the rules: whitespace, control, format, NUL, ordinary.
EDGE = st.sampled_from(
    [" ", "\t", "\n", "\x00", "\x1c", "\x7f", "\x85", "\xa0", "\u200b", "\u202e", "\ufeff", "a"]
)
TEXTS = st.lists(st.one_of(EDGE, st.characters()), max_size=8).map("".join)


def _field_problems(name: str, value: object) -> list[str]:
    body = {"description": "d", "patient_mrn": "m", name: value}
    try:
        validation.validate_task_request(body, RULES, user_ids=_Everyone(), call_type_ids=())
    except errors.Problem as problem:
        return [e.code for e in problem.errors if e.field is not None and e.field.split("[")[0] == name]
    return []


class _Everyone:
    def __contains__(self, _item: object) -> bool:
        return True


def test_the_refused_ranges_are_the_running_pythons_control_and_format_characters():
    listed = {code for low, high in patterns.REFUSED_IN_IDS for code in range(low, high + 1)}
    actual = {code for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) in ("Cc", "Cf")}
    assert listed == actual


@settings(max_examples=400)
@given(TEXTS)
@example(" MRN-1 ")
@example("\tMRN\t")
@example("MRN\u200b1")
@example(" ")
def test_a_required_id_matches_its_pattern_exactly_when_the_server_takes_it(value):
    accepted = _field_problems("patient_mrn", value) == []
    assert (re.fullmatch(patterns.ID, value) is not None) == accepted


@settings(max_examples=400)
@given(TEXTS)
@example("")
@example("  ")
@example("usr\x00")
def test_an_optional_id_matches_its_pattern_exactly_when_the_server_takes_it(value):
    accepted = _field_problems("assignee_user_id", value) == []
    assert (re.fullmatch(patterns.OPTIONAL_ID, value) is not None) == accepted


@settings(max_examples=400)
@given(TEXTS)
@example(" \n ")
@example("line one\nline two")
@example("a\x00")
def test_required_text_matches_its_pattern_exactly_when_the_server_takes_it(value):
    accepted = _field_problems("description", value) == []
    assert (re.fullmatch(patterns.TEXT, value) is not None) == accepted


@settings(max_examples=200)
@given(TEXTS)
def test_optional_text_matches_its_pattern_exactly_when_the_server_takes_it(value):
    accepted = _field_problems("subject", value) == []
    assert (re.fullmatch(patterns.OPTIONAL_TEXT, value) is not None) == accepted


@settings(max_examples=200)
@given(st.lists(TEXTS, max_size=3))
def test_notify_list_entries_match_the_id_pattern_exactly_when_the_server_takes_them(values):
    accepted = _field_problems("notify_list", values) == []
    assert all(re.fullmatch(patterns.ID, v) for v in values) == accepted


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("k", True),
        ('"k"', True),
        ('""', False),
        ("x" * 255, True),
        ("x" * 256, False),
        ('"' + "x" * 255 + '"', True),
    ],
)
def test_the_idempotency_key_pattern_takes_one_to_255_printable_characters(key, valid):
    assert (re.fullmatch(patterns.IDEMPOTENCY_KEY, key) is not None) == valid


def test_the_whitespace_ranges_are_what_str_strip_removes():
    listed = {code for low, high in patterns.WHITESPACE for code in range(low, high + 1)}
    assert listed == {code for code in range(sys.maxunicode + 1) if chr(code).isspace()}


@settings(max_examples=300)
@given(TEXTS, st.integers(min_value=2, max_value=6))
@example(" abc ", 3)
@example("abcd", 3)
def test_a_bounded_id_counts_its_length_after_trimming_as_the_server_does(value, most):
    bounded = re.fullmatch(patterns.trimmed(patterns.REFUSED_CLASS, most), value) is not None
    unbounded = re.fullmatch(patterns.ID, value) is not None
    assert bounded == (unbounded and len(value.strip()) <= most)


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://hooks.example.com/x", True),
        (" HTTPS://h/ ", True),
        ("https://" + "h" * 2040, True),
        ("https://" + "h" * 2041, False),
        ("http://" + "h" * 2041, True),
        ("ftp://h", False),
        ("https://h/a b", False),
        ("https://", False),
    ],
)
def test_the_webhook_url_pattern_takes_http_urls_of_at_most_2048_characters_once_trimmed(url, valid):
    assert (re.fullmatch(patterns.WEBHOOK_URL, url) is not None) == valid
