"""Create Task body validation against both sandbox rule sets (subject_assignee and phone_call).

Every test asserts the exact headline (`error`, `message`) and, where it matters, the exact `errors` list.
"""

from typing import Any

import pytest

from emrtasks.domain import errors, tasks, validation
from emrtasks.emr import sandbox

FieldError = errors.FieldError

USER_IDS = frozenset(user.id for user in sandbox.USERS)
CALL_TYPE_IDS = frozenset(call_type.id for call_type in sandbox.CALL_TYPES)
RULE_SETS = {"subject_assignee": sandbox.SUBJECT_ASSIGNEE, "phone_call": sandbox.PHONE_CALL}
BOTH = tuple(RULE_SETS)

VALID_BODIES: dict[str, dict[str, Any]] = {
    "subject_assignee": {
        "description": "Review recent lab results.",
        "patient_mrn": "MRN-1001",
        "subject": "Follow-up appointment needed",
        "assignee_user_id": "usr_1001",
    },
    "phone_call": {
        "description": "Refill request for lisinopril.",
        "patient_mrn": "MRN-1002",
        "phone_call_type_id": "pct_01",
    },
}
REQUIRED = {
    "subject_assignee": ("description", "patient_mrn", "subject", "assignee_user_id"),
    "phone_call": ("description", "patient_mrn", "phone_call_type_id"),
}
OPTIONAL_STRINGS = {
    "subject_assignee": (),
    "phone_call": ("subject", "assignee_user_id"),
}
STRING_FIELDS = {
    "subject_assignee": ("description", "patient_mrn", "subject", "assignee_user_id"),
    "phone_call": ("description", "patient_mrn", "subject", "assignee_user_id", "phone_call_type_id"),
}
SA_UNSUPPORTED_MESSAGE = (
    "Unsupported field: phone_call_type_id is not supported by this EMR (subject_assignee rules)."
)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def body_for(rule_set: str, **changes: Any) -> dict[str, Any]:
    """The valid body of `rule_set` with fields replaced, added, or removed (value ABSENT)."""
    body = dict(VALID_BODIES[rule_set])
    for name, value in changes.items():
        if value is ABSENT:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def validate(
    body: object,
    rule_set: str,
    *,
    user_ids: frozenset[str] = USER_IDS,
    call_type_ids: frozenset[str] = CALL_TYPE_IDS,
) -> tasks.TaskRequest:
    return validation.validate_task_request(body, RULE_SETS[rule_set], user_ids, call_type_ids)


def refuse(body: object, rule_set: str, **directory: frozenset[str]) -> errors.Problem:
    with pytest.raises(errors.Problem) as caught:
        validate(body, rule_set, **directory)
    assert caught.value.status == 400
    return caught.value


def codes(problem: errors.Problem) -> list[str]:
    return [e.code for e in problem.errors]


# --- body shape ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="empty-list"),
        pytest.param([VALID_BODIES["subject_assignee"]], id="list-of-objects"),
        pytest.param("description=x", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param(True, id="boolean"),
    ],
)
def test_body_that_is_not_a_json_object_is_refused_as_invalid_body(body: object, rule_set: str) -> None:
    problem = refuse(body, rule_set)
    assert (problem.error, problem.message) == ("invalid_body", "Request body must be a JSON object.")
    assert problem.errors == ()


# --- missing required fields --------------------------------------------------------------------------

MISSING_FORMS = {"absent": ABSENT, "null": None, "empty": "", "spaces": "   ", "tabs-newlines": "\t\n "}


@pytest.mark.parametrize(
    ("rule_set", "field", "value"),
    [
        pytest.param(rule_set, field, value, id=f"{rule_set}-{field}-{form}")
        for rule_set, fields in REQUIRED.items()
        for field in fields
        for form, value in MISSING_FORMS.items()
    ],
)
def test_required_field_absent_null_or_blank_is_reported_missing(
    rule_set: str, field: str, value: Any
) -> None:
    problem = refuse(body_for(rule_set, **{field: value}), rule_set)
    message = f"Missing required field: {field}"
    assert (problem.error, problem.message) == ("missing_field", message)
    assert problem.errors == (FieldError(field, "missing_field", message),)


def test_blank_subject_counts_as_missing() -> None:
    problem = refuse(body_for("subject_assignee", subject="    "), "subject_assignee")
    assert problem.message == "Missing required field: subject"


@pytest.mark.parametrize(
    ("rule_set", "body", "named", "all_missing"),
    [
        pytest.param(
            "subject_assignee",
            {},
            "description",
            ["description", "patient_mrn", "subject", "assignee_user_id"],
            id="subject_assignee-empty-body",
        ),
        pytest.param(
            "subject_assignee",
            {"description": "x"},
            "patient_mrn",
            ["patient_mrn", "subject", "assignee_user_id"],
            id="subject_assignee-only-description",
        ),
        pytest.param(
            "subject_assignee",
            body_for("subject_assignee", assignee_user_id="", subject=None),
            "subject",
            ["subject", "assignee_user_id"],
            id="subject_assignee-subject-before-assignee",
        ),
        pytest.param(
            "subject_assignee",
            {"assignee_user_id": " ", "subject": "s", "patient_mrn": None, "description": "d"},
            "patient_mrn",
            ["patient_mrn", "assignee_user_id"],
            id="subject_assignee-body-order-does-not-matter",
        ),
        pytest.param(
            "phone_call",
            {},
            "description",
            ["description", "patient_mrn", "phone_call_type_id"],
            id="phone_call-empty-body",
        ),
        pytest.param(
            "phone_call",
            {"phone_call_type_id": "", "patient_mrn": "  ", "description": "d"},
            "patient_mrn",
            ["patient_mrn", "phone_call_type_id"],
            id="phone_call-patient_mrn-before-call-type",
        ),
        pytest.param(
            "phone_call",
            body_for("phone_call", phone_call_type_id=None),
            "phone_call_type_id",
            ["phone_call_type_id"],
            id="phone_call-only-call-type",
        ),
    ],
)
def test_first_missing_field_in_contract_order_is_named_and_every_missing_field_is_listed(
    rule_set: str, body: dict[str, Any], named: str, all_missing: list[str]
) -> None:
    problem = refuse(body, rule_set)
    assert (problem.error, problem.message) == ("missing_field", f"Missing required field: {named}")
    assert problem.errors == tuple(
        FieldError(name, "missing_field", f"Missing required field: {name}") for name in all_missing
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(field, value, id=f"{field}-{form}")
        for field in OPTIONAL_STRINGS["phone_call"]
        for form, value in MISSING_FORMS.items()
    ],
)
def test_optional_field_absent_null_or_blank_is_accepted_as_none(field: str, value: Any) -> None:
    request = validate(body_for("phone_call", **{field: value}), "phone_call")
    assert getattr(request, field) is None


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize(
    "value",
    [pytest.param(ABSENT, id="absent"), pytest.param(None, id="null"), pytest.param([], id="empty-list")],
)
def test_absent_null_or_empty_notify_list_is_accepted_as_empty_tuple(rule_set: str, value: Any) -> None:
    request = validate(body_for(rule_set, notify_list=value), rule_set)
    assert request.notify_list == ()


# --- wrong types --------------------------------------------------------------------------------------

WRONG_TYPES = {
    "int": 42,
    "zero": 0,
    "float": 1.5,
    "true": True,
    "false": False,
    "list": ["usr_1001"],
    "empty-list": [],
    "dict": {"id": "usr_1001"},
    "empty-dict": {},
}


@pytest.mark.parametrize(
    ("rule_set", "field", "value"),
    [
        pytest.param(rule_set, field, value, id=f"{rule_set}-{field}-{kind}")
        for rule_set, fields in STRING_FIELDS.items()
        for field in fields
        for kind, value in WRONG_TYPES.items()
    ],
)
def test_string_field_with_non_string_value_is_invalid_field(rule_set: str, field: str, value: Any) -> None:
    problem = refuse(body_for(rule_set, **{field: value}), rule_set)
    message = f"Invalid field: {field} must be a string."
    assert (problem.error, problem.message) == ("invalid_field", message)
    assert problem.errors == (FieldError(field, "invalid_type", message),)


def test_wrong_type_for_an_unsupported_field_is_reported_as_invalid_field() -> None:
    problem = refuse(body_for("subject_assignee", phone_call_type_id=7), "subject_assignee")
    message = "Invalid field: phone_call_type_id must be a string."
    assert (problem.error, problem.message) == ("invalid_field", message)
    assert problem.errors == (FieldError("phone_call_type_id", "invalid_type", message),)


NOTIFY_NOT_ARRAY_OF_STRINGS = {
    "string": "usr_1001",
    "int": 3,
    "true": True,
    "dict": {"0": "usr_1001"},
    "list-of-int": [1],
    "mixed-string-and-int": ["usr_1001", 2],
    "list-of-null": [None],
    "nested-list": [["usr_1001"]],
    "list-of-bool": [True],
    "list-of-dict": [{"id": "usr_1001"}],
}


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize(
    "value", [pytest.param(value, id=kind) for kind, value in NOTIFY_NOT_ARRAY_OF_STRINGS.items()]
)
def test_notify_list_that_is_not_an_array_of_strings_is_invalid_field(rule_set: str, value: Any) -> None:
    problem = refuse(body_for(rule_set, notify_list=value), rule_set)
    message = "Invalid field: notify_list must be an array of strings."
    assert (problem.error, problem.message) == ("invalid_field", message)
    assert problem.errors == (FieldError("notify_list", "invalid_type", message),)


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param([""], id="only-empty"),
        pytest.param(["usr_1001", "   "], id="spaces-after-valid"),
        pytest.param(["\t\n", "usr_1002"], id="whitespace-first"),
    ],
)
def test_notify_list_with_blank_entries_is_invalid_field(rule_set: str, value: list[str]) -> None:
    problem = refuse(body_for(rule_set, notify_list=value), rule_set)
    message = "Invalid field: notify_list must not contain blank entries."
    assert (problem.error, problem.message) == ("invalid_field", message)
    assert problem.errors == (FieldError("notify_list", "invalid_type", message),)


def test_first_wrong_type_in_field_order_is_the_headline() -> None:
    body = body_for("subject_assignee", subject=1, description=2)
    problem = refuse(body, "subject_assignee")
    assert problem.message == "Invalid field: description must be a string."
    assert problem.errors == (
        FieldError("description", "invalid_type", "Invalid field: description must be a string."),
        FieldError("subject", "invalid_type", "Invalid field: subject must be a string."),
    )


# --- unexpected fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_set", BOTH)
def test_one_unexpected_field_is_named(rule_set: str) -> None:
    problem = refuse(body_for(rule_set, priority="high"), rule_set)
    assert (problem.error, problem.message) == (
        "unexpected_fields",
        "Unexpected fields in request body: priority",
    )
    assert problem.errors == (FieldError("priority", "unexpected_field", "Unexpected field: priority."),)


@pytest.mark.parametrize("rule_set", BOTH)
def test_several_unexpected_fields_are_named_in_request_order(rule_set: str) -> None:
    body = {"zeta": 1, **VALID_BODIES[rule_set], "alpha": None, "Subject": "case matters"}
    problem = refuse(body, rule_set)
    assert (problem.error, problem.message) == (
        "unexpected_fields",
        "Unexpected fields in request body: zeta, alpha, Subject",
    )
    assert problem.errors == (
        FieldError("zeta", "unexpected_field", "Unexpected field: zeta."),
        FieldError("alpha", "unexpected_field", "Unexpected field: alpha."),
        FieldError("Subject", "unexpected_field", "Unexpected field: Subject."),
    )


def test_unexpected_field_with_null_value_is_still_unexpected() -> None:
    problem = refuse(body_for("phone_call", emr_task_id=None), "phone_call")
    assert problem.message == "Unexpected fields in request body: emr_task_id"


# --- unsupported fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("pct_01", id="known-call-type"),
        pytest.param("  pct_01 ", id="padded"),
        pytest.param("pct_99", id="unknown-call-type-not-looked-up"),
    ],
)
def test_phone_call_type_id_is_unsupported_under_subject_assignee_rules(value: str) -> None:
    problem = refuse(body_for("subject_assignee", phone_call_type_id=value), "subject_assignee")
    assert (problem.error, problem.message) == ("unsupported_field", SA_UNSUPPORTED_MESSAGE)
    assert problem.errors == (FieldError("phone_call_type_id", "unsupported_field", SA_UNSUPPORTED_MESSAGE),)


@pytest.mark.parametrize(
    "value", [pytest.param(value, id=form) for form, value in MISSING_FORMS.items() if value is not ABSENT]
)
def test_null_or_blank_unsupported_field_is_accepted_as_absent(value: Any) -> None:
    request = validate(body_for("subject_assignee", phone_call_type_id=value), "subject_assignee")
    assert request.phone_call_type_id is None


def test_phone_call_rules_accept_every_contract_field() -> None:
    body = body_for("phone_call", subject="Refill", assignee_user_id="usr_1002", notify_list=["usr_1003"])
    request = validate(body, "phone_call")
    assert request == tasks.TaskRequest(
        description="Refill request for lisinopril.",
        patient_mrn="MRN-1002",
        subject="Refill",
        assignee_user_id="usr_1002",
        phone_call_type_id="pct_01",
        notify_list=("usr_1003",),
    )


# --- limits -------------------------------------------------------------------------------------------

STRING_LIMITS = [
    pytest.param(rule_set, field, limit, id=f"{rule_set}-{field}-{limit}")
    for rule_set, field, limit in (
        ("subject_assignee", "description", 4000),
        ("subject_assignee", "patient_mrn", 64),
        ("subject_assignee", "subject", 255),
        ("subject_assignee", "assignee_user_id", 64),
        ("phone_call", "description", 4000),
        ("phone_call", "patient_mrn", 64),
        ("phone_call", "subject", 255),
        ("phone_call", "assignee_user_id", 64),
        ("phone_call", "phone_call_type_id", 64),
    )
]


def _directory_with(value: str) -> dict[str, frozenset[str]]:
    """Directories that know `value`, so a long id is refused only for its length."""
    return {"user_ids": USER_IDS | {value}, "call_type_ids": CALL_TYPE_IDS | {value}}


@pytest.mark.parametrize(("rule_set", "field", "limit"), STRING_LIMITS)
def test_string_at_its_limit_is_accepted(rule_set: str, field: str, limit: int) -> None:
    value = "x" * limit
    request = validate(body_for(rule_set, **{field: value}), rule_set, **_directory_with(value))
    assert getattr(request, field) == value


@pytest.mark.parametrize(("rule_set", "field", "limit"), STRING_LIMITS)
def test_string_one_over_its_limit_is_limit_exceeded(rule_set: str, field: str, limit: int) -> None:
    value = "x" * (limit + 1)
    problem = refuse(body_for(rule_set, **{field: value}), rule_set, **_directory_with(value))
    message = f"Invalid field: {field} must be at most {limit} characters."
    assert (problem.error, problem.message) == ("limit_exceeded", message)
    assert problem.errors == (FieldError(field, "too_long", message),)


@pytest.mark.parametrize(("rule_set", "field", "limit"), STRING_LIMITS)
def test_length_limit_is_measured_after_trimming(rule_set: str, field: str, limit: int) -> None:
    value = "x" * limit
    body = body_for(rule_set, **{field: f"  {value}\n"})
    assert getattr(validate(body, rule_set, **_directory_with(value)), field) == value


@pytest.mark.parametrize("rule_set", BOTH)
def test_notify_list_with_ten_entries_is_accepted(rule_set: str) -> None:
    notify = [sandbox.USERS[i % len(sandbox.USERS)].id for i in range(10)]
    assert validate(body_for(rule_set, notify_list=notify), rule_set).notify_list == tuple(notify)


@pytest.mark.parametrize("rule_set", BOTH)
def test_notify_list_with_eleven_entries_is_limit_exceeded(rule_set: str) -> None:
    problem = refuse(body_for(rule_set, notify_list=["usr_1001"] * 11), rule_set)
    message = "Invalid field: notify_list must have at most 10 entries."
    assert (problem.error, problem.message) == ("limit_exceeded", message)
    assert problem.errors == (FieldError("notify_list", "too_many", message),)


@pytest.mark.parametrize("rule_set", BOTH)
def test_notify_entry_at_64_characters_is_accepted(rule_set: str) -> None:
    entry = "u" * 64
    body = body_for(rule_set, notify_list=["usr_1001", entry])
    assert validate(body, rule_set, user_ids=USER_IDS | {entry}).notify_list == ("usr_1001", entry)


@pytest.mark.parametrize("rule_set", BOTH)
def test_notify_entry_over_64_characters_is_limit_exceeded_with_its_index(rule_set: str) -> None:
    entry = "u" * 65
    body = body_for(rule_set, notify_list=["usr_1001", entry, "usr_1002", entry])
    problem = refuse(body, rule_set, user_ids=USER_IDS | {entry})
    assert (problem.error, problem.message) == (
        "limit_exceeded",
        "Invalid field: notify_list[1] must be at most 64 characters.",
    )
    assert problem.errors == (
        FieldError(
            "notify_list[1]", "too_long", "Invalid field: notify_list[1] must be at most 64 characters."
        ),
        FieldError(
            "notify_list[3]", "too_long", "Invalid field: notify_list[3] must be at most 64 characters."
        ),
    )


def test_notify_list_over_count_still_lists_each_over_long_entry() -> None:
    entry = "u" * 65
    body = body_for("phone_call", notify_list=["usr_1001"] * 10 + [entry])
    problem = refuse(body, "phone_call", user_ids=USER_IDS | {entry})
    assert problem.error == "limit_exceeded"
    too_many = FieldError(
        "notify_list", "too_many", "Invalid field: notify_list must have at most 10 entries."
    )
    too_long = FieldError(
        "notify_list[10]", "too_long", "Invalid field: notify_list[10] must be at most 64 characters."
    )
    assert sorted(problem.errors, key=repr) == sorted((too_many, too_long), key=repr)


def test_over_long_unknown_assignee_is_both_too_long_and_not_found() -> None:
    value = "x" * 65
    problem = refuse(body_for("subject_assignee", assignee_user_id=value), "subject_assignee")
    assert (problem.error, problem.message) == (
        "limit_exceeded",
        "Invalid field: assignee_user_id must be at most 64 characters.",
    )
    assert problem.errors == (
        FieldError(
            "assignee_user_id", "too_long", "Invalid field: assignee_user_id must be at most 64 characters."
        ),
        # An answer repeats at most 64 characters of what was sent.
        FieldError("assignee_user_id", "user_not_found", f"User not found: {'x' * 61}...."),
    )


# --- directory checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize(
    "assignee",
    [pytest.param("usr_9999", id="unknown"), pytest.param("USR_1001", id="wrong-case")],
)
def test_unknown_assignee_is_user_not_found(rule_set: str, assignee: str) -> None:
    problem = refuse(body_for(rule_set, assignee_user_id=assignee), rule_set)
    assert (problem.error, problem.message) == ("user_not_found", "User not found.")
    assert problem.errors == (
        FieldError("assignee_user_id", "user_not_found", f"User not found: {assignee}."),
    )


@pytest.mark.parametrize("rule_set", BOTH)
def test_unknown_notify_entry_is_user_not_found_with_its_index(rule_set: str) -> None:
    body = body_for(rule_set, notify_list=["usr_1001", "usr_1002", "ghost"])
    problem = refuse(body, rule_set)
    assert (problem.error, problem.message) == ("user_not_found", "User not found.")
    assert problem.errors == (FieldError("notify_list[2]", "user_not_found", "User not found: ghost."),)


@pytest.mark.parametrize("rule_set", BOTH)
def test_every_unknown_notify_entry_is_listed(rule_set: str) -> None:
    body = body_for(rule_set, notify_list=["ghost", "usr_1001", " spirit "])
    problem = refuse(body, rule_set)
    assert problem.errors == (
        FieldError("notify_list[0]", "user_not_found", "User not found: ghost."),
        FieldError("notify_list[2]", "user_not_found", "User not found: spirit."),
    )


@pytest.mark.parametrize("call_type", ["pct_99", "PCT_01", "Prescription refill"])
def test_unknown_phone_call_type_is_phone_call_type_not_found(call_type: str) -> None:
    problem = refuse(body_for("phone_call", phone_call_type_id=call_type), "phone_call")
    assert (problem.error, problem.message) == ("phone_call_type_not_found", "Phone call type not found.")
    assert problem.errors == (
        FieldError(
            "phone_call_type_id", "phone_call_type_not_found", f"Phone call type not found: {call_type}."
        ),
    )


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize("user", [user.id for user in sandbox.USERS])
def test_every_seeded_user_is_a_valid_assignee_and_notify_entry(rule_set: str, user: str) -> None:
    request = validate(body_for(rule_set, assignee_user_id=user, notify_list=[user]), rule_set)
    assert (request.assignee_user_id, request.notify_list) == (user, (user,))


@pytest.mark.parametrize("call_type", [call_type.id for call_type in sandbox.CALL_TYPES])
def test_every_seeded_call_type_is_accepted(call_type: str) -> None:
    assert validate(
        body_for("phone_call", phone_call_type_id=call_type), "phone_call"
    ).phone_call_type_id == (call_type)


def test_directory_lookups_use_trimmed_values() -> None:
    body = body_for("phone_call", phone_call_type_id=" pct_02 ", assignee_user_id="\tusr_1004 ")
    request = validate({**body, "notify_list": [" grp_2001 "]}, "phone_call")
    assert (request.phone_call_type_id, request.assignee_user_id, request.notify_list) == (
        "pct_02",
        "usr_1004",
        ("grp_2001",),
    )


def test_directory_is_the_one_passed_in() -> None:
    problem = refuse(VALID_BODIES["subject_assignee"], "subject_assignee", user_ids=frozenset())
    assert problem.errors == (FieldError("assignee_user_id", "user_not_found", "User not found: usr_1001."),)


# --- headline priority --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_set", "body", "error", "message", "expected_codes"),
    [
        pytest.param(
            "subject_assignee",
            body_for("subject_assignee", subject=5, priority="high"),
            "unexpected_fields",
            "Unexpected fields in request body: priority",
            ["unexpected_field", "invalid_type"],
            id="unexpected-beats-wrong-type",
        ),
        pytest.param(
            "subject_assignee",
            {"extra": 1},
            "unexpected_fields",
            "Unexpected fields in request body: extra",
            ["unexpected_field"] + ["missing_field"] * 4,
            id="unexpected-beats-missing",
        ),
        pytest.param(
            "subject_assignee",
            body_for("subject_assignee", description=ABSENT, subject=["x"]),
            "invalid_field",
            "Invalid field: subject must be a string.",
            ["missing_field", "invalid_type"],
            id="wrong-type-beats-missing",
        ),
        pytest.param(
            "phone_call",
            body_for("phone_call", patient_mrn=None, notify_list="usr_1001"),
            "invalid_field",
            "Invalid field: notify_list must be an array of strings.",
            ["missing_field", "invalid_type"],
            id="notify-wrong-type-beats-missing",
        ),
        pytest.param(
            "subject_assignee",
            body_for("subject_assignee", assignee_user_id=ABSENT, phone_call_type_id="pct_01"),
            "missing_field",
            "Missing required field: assignee_user_id",
            ["missing_field", "unsupported_field"],
            id="missing-beats-unsupported",
        ),
        pytest.param(
            "phone_call",
            body_for("phone_call", patient_mrn="  ", phone_call_type_id="pct_99"),
            "missing_field",
            "Missing required field: patient_mrn",
            ["missing_field", "phone_call_type_not_found"],
            id="missing-beats-unknown-call-type",
        ),
        pytest.param(
            "subject_assignee",
            body_for("subject_assignee", description="x" * 4001, phone_call_type_id="pct_01"),
            "unsupported_field",
            SA_UNSUPPORTED_MESSAGE,
            ["too_long", "unsupported_field"],
            id="unsupported-beats-limit",
        ),
        pytest.param(
            "subject_assignee",
            body_for("subject_assignee", subject="x" * 256, assignee_user_id="usr_9999"),
            "limit_exceeded",
            "Invalid field: subject must be at most 255 characters.",
            ["too_long", "user_not_found"],
            id="limit-beats-unknown-assignee",
        ),
        pytest.param(
            "phone_call",
            body_for("phone_call", assignee_user_id="ghost", notify_list=["usr_1001"] * 11),
            "limit_exceeded",
            "Invalid field: notify_list must have at most 10 entries.",
            ["too_many", "user_not_found"],
            id="notify-count-beats-unknown-assignee",
        ),
        pytest.param(
            "phone_call",
            body_for("phone_call", phone_call_type_id="pct_99", notify_list=["ghost"]),
            "user_not_found",
            "User not found.",
            ["user_not_found", "phone_call_type_not_found"],
            id="unknown-user-beats-unknown-call-type",
        ),
    ],
)
def test_headline_names_the_highest_priority_problem(
    rule_set: str, body: dict[str, Any], error: str, message: str, expected_codes: list[str]
) -> None:
    problem = refuse(body, rule_set)
    assert (problem.error, problem.message) == (error, message)
    assert codes(problem) == expected_codes


def test_errors_list_has_one_entry_per_problem() -> None:
    body = {
        "description": 5,
        "subject": "   ",
        "assignee_user_id": "usr_9999",
        "phone_call_type_id": "pct_01",
        "notify_list": ["usr_1001", "nobody", "x" * 65],
        "extra": True,
    }
    problem = refuse(body, "subject_assignee")
    assert (problem.error, problem.message) == (
        "unexpected_fields",
        "Unexpected fields in request body: extra",
    )
    assert problem.errors == (
        FieldError("extra", "unexpected_field", "Unexpected field: extra."),
        FieldError("description", "invalid_type", "Invalid field: description must be a string."),
        FieldError("patient_mrn", "missing_field", "Missing required field: patient_mrn"),
        FieldError("subject", "missing_field", "Missing required field: subject"),
        FieldError("phone_call_type_id", "unsupported_field", SA_UNSUPPORTED_MESSAGE),
        FieldError(
            "notify_list[2]", "too_long", "Invalid field: notify_list[2] must be at most 64 characters."
        ),
        FieldError("assignee_user_id", "user_not_found", "User not found: usr_9999."),
        FieldError("notify_list[1]", "user_not_found", "User not found: nobody."),
        FieldError("notify_list[2]", "user_not_found", f"User not found: {'x' * 61}...."),
    )


def test_problem_errors_render_as_contract_dicts() -> None:
    problem = refuse(body_for("subject_assignee", subject=None), "subject_assignee")
    assert [e.as_dict() for e in problem.errors] == [
        {"field": "subject", "code": "missing_field", "message": "Missing required field: subject"}
    ]


# --- valid requests -----------------------------------------------------------------------------------


def test_valid_subject_assignee_request_comes_back_trimmed_with_absent_optionals_none() -> None:
    body = {
        "description": "  Review recent lab results.\nThen call back.  ",
        "patient_mrn": " MRN-1001 ",
        "subject": "\tFollow-up  appointment needed\n",
        "assignee_user_id": " usr_1001",
    }
    assert validate(body, "subject_assignee") == tasks.TaskRequest(
        description="Review recent lab results.\nThen call back.",
        patient_mrn="MRN-1001",
        subject="Follow-up  appointment needed",
        assignee_user_id="usr_1001",
        phone_call_type_id=None,
        notify_list=(),
    )


def test_valid_phone_call_request_comes_back_trimmed_with_absent_optionals_none() -> None:
    body = {"description": " Refill. ", "patient_mrn": "MRN-1002 ", "phone_call_type_id": " pct_01"}
    assert validate(body, "phone_call") == tasks.TaskRequest(
        description="Refill.",
        patient_mrn="MRN-1002",
        subject=None,
        assignee_user_id=None,
        phone_call_type_id="pct_01",
        notify_list=(),
    )


@pytest.mark.parametrize("rule_set", BOTH)
def test_notify_list_comes_back_as_a_tuple_of_trimmed_entries_in_order(rule_set: str) -> None:
    body = body_for(rule_set, notify_list=[" usr_1003", "usr_1001 ", "usr_1003"])
    request = validate(body, rule_set)
    assert type(request.notify_list) is tuple
    assert request.notify_list == ("usr_1003", "usr_1001", "usr_1003")


@pytest.mark.parametrize("rule_set", BOTH)
def test_valid_body_is_not_modified(rule_set: str) -> None:
    body = body_for(rule_set, notify_list=[" usr_1003 "], description="  padded  ")
    snapshot = {k: list(v) if isinstance(v, list) else v for k, v in body.items()}
    validate(body, rule_set)
    assert body == snapshot


@pytest.mark.parametrize("rule_set", BOTH)
@pytest.mark.parametrize("field", ["patient_mrn", "notify_list"])
@pytest.mark.parametrize("bad", ["MRN-1\n001", "MRN\r1001", "MRN\x1b[31m", "MRN\x7f1"])
def test_an_id_with_a_control_character_inside_is_invalid_field(rule_set: str, field: str, bad: str) -> None:
    value: Any = [bad] if field == "notify_list" else bad
    problem = refuse(body_for(rule_set, **{field: value}), rule_set)
    message = f"Invalid field: {field} must not contain control characters."
    assert (problem.error, problem.message) == ("invalid_field", message)
    assert problem.errors == (FieldError(field, "invalid_type", message),)


@pytest.mark.parametrize("rule_set", BOTH)
def test_line_breaks_in_free_text_and_around_ids_are_fine(rule_set: str) -> None:
    body = body_for(rule_set, description="Line one.\nLine two.\tTabbed.", patient_mrn="\tMRN-1001\n")
    request = validation.validate_task_request(body, RULE_SETS[rule_set], USER_IDS, CALL_TYPE_IDS)
    assert request.description == "Line one.\nLine two.\tTabbed."
    assert request.patient_mrn == "MRN-1001"
