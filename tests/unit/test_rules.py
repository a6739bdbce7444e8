"""`Rules` as data: the sandbox rule sets and the public shape of `GET /v1/tasks/requirements`."""

import json

import pytest

from emrtasks.domain import rules
from emrtasks.emr import sandbox

SUBJECT_ASSIGNEE_DESCRIBED = {
    "emr": "sandbox",
    "rules": "subject_assignee",
    "required": ["description", "patient_mrn", "subject", "assignee_user_id"],
    "optional": ["notify_list"],
    "unsupported": ["phone_call_type_id"],
    "fields": {
        "description": {"required": True, "type": "string", "emr_field": "task.body", "max_length": 4000},
        "patient_mrn": {
            "required": True,
            "type": "string",
            "emr_field": "task.patient (by MRN)",
            "max_length": 64,
        },
        "subject": {"required": True, "type": "string", "emr_field": "task.title", "max_length": 255},
        "assignee_user_id": {
            "required": True,
            "type": "string",
            "emr_field": "task.assignee",
            "max_length": 64,
        },
        "notify_list": {
            "required": False,
            "type": "array of strings",
            "emr_field": "task.watchers",
            "max_length": 64,
            "max_items": 10,
        },
    },
    "assignee_identified_by": "EMR user id",
    "patient_identified_by": "MRN",
    "finds_by_marker": True,
    "notes": ["A task with a title and an assignee, like Cobalt's Example A."],
}
PHONE_CALL_DESCRIBED = {
    "emr": "sandbox",
    "rules": "phone_call",
    "required": ["description", "patient_mrn", "phone_call_type_id"],
    "optional": ["subject", "assignee_user_id", "notify_list"],
    "unsupported": [],
    "fields": {
        "description": {
            "required": True,
            "type": "string",
            "emr_field": "phone_call.note",
            "max_length": 4000,
        },
        "patient_mrn": {
            "required": True,
            "type": "string",
            "emr_field": "phone_call.patient (by MRN)",
            "max_length": 64,
        },
        "subject": {
            "required": False,
            "type": "string",
            "emr_field": "phone_call.summary",
            "max_length": 255,
        },
        "assignee_user_id": {
            "required": False,
            "type": "string",
            "emr_field": "phone_call.assigned_to",
            "max_length": 64,
        },
        "phone_call_type_id": {
            "required": True,
            "type": "string",
            "emr_field": "phone_call.type",
            "max_length": 64,
        },
        "notify_list": {
            "required": False,
            "type": "array of strings",
            "emr_field": "phone_call.cc",
            "max_length": 64,
            "max_items": 10,
        },
    },
    "assignee_identified_by": "EMR user id",
    "patient_identified_by": "MRN",
    "finds_by_marker": True,
    "notes": ["A phone-call record with a call type and a notify list, like Cobalt's Example B."],
}
DESCRIBED = [
    pytest.param(sandbox.SUBJECT_ASSIGNEE, SUBJECT_ASSIGNEE_DESCRIBED, id="subject_assignee"),
    pytest.param(sandbox.PHONE_CALL, PHONE_CALL_DESCRIBED, id="phone_call"),
]
SANDBOX_RULES = [
    pytest.param(sandbox.SUBJECT_ASSIGNEE, id="subject_assignee"),
    pytest.param(sandbox.PHONE_CALL, id="phone_call"),
]


@pytest.mark.parametrize(("task_rules", "expected"), DESCRIBED)
def test_describe_gives_the_exact_requirements_of_each_sandbox_rule_set(
    task_rules: rules.Rules, expected: dict[str, object]
) -> None:
    assert task_rules.describe() == expected


@pytest.mark.parametrize(("task_rules", "expected"), DESCRIBED)
def test_describe_lists_fields_in_contract_order(
    task_rules: rules.Rules, expected: dict[str, object]
) -> None:
    described = task_rules.describe()
    assert list(described) == list(expected)
    fields = described["fields"]
    assert isinstance(fields, dict)
    assert list(fields) == [name for name in rules.FIELD_ORDER if name in fields]


@pytest.mark.parametrize("task_rules", SANDBOX_RULES)
def test_describe_is_plain_json(task_rules: rules.Rules) -> None:
    described = task_rules.describe()
    assert json.loads(json.dumps(described)) == described


@pytest.mark.parametrize("task_rules", SANDBOX_RULES)
def test_required_optional_and_unsupported_partition_the_contract_fields(task_rules: rules.Rules) -> None:
    parts = (*task_rules.required, *task_rules.optional, *task_rules.unsupported)
    assert sorted(parts) == sorted(rules.FIELD_ORDER)
    assert len(set(parts)) == len(rules.FIELD_ORDER)


@pytest.mark.parametrize("task_rules", SANDBOX_RULES)
def test_always_required_fields_are_required_by_every_sandbox_rule_set(task_rules: rules.Rules) -> None:
    assert set(rules.ALWAYS_REQUIRED) <= set(task_rules.required)


def test_rule_finds_a_field_by_name_or_returns_none() -> None:
    found = sandbox.SUBJECT_ASSIGNEE.rule("subject")
    assert found == rules.FieldRule("subject", True, max_length=255, target="task.title")
    assert sandbox.SUBJECT_ASSIGNEE.rule("phone_call_type_id") is None
    assert sandbox.PHONE_CALL.rule("nonexistent") is None


def test_sandbox_rule_sets_are_registered_by_name() -> None:
    assert dict(sandbox.RULE_SETS) == {
        "subject_assignee": sandbox.SUBJECT_ASSIGNEE,
        "phone_call": sandbox.PHONE_CALL,
    }
    assert sandbox.DEFAULT_RULES == "subject_assignee"


def test_field_without_limits_is_described_without_limit_keys() -> None:
    bare = rules.Rules(
        name="bare",
        emr="test",
        fields=(
            rules.FieldRule("description", True),
            rules.FieldRule("patient_mrn", True),
            rules.FieldRule("notify_list", False),
        ),
        finds_by_marker=False,
    )
    assert bare.describe() == {
        "emr": "test",
        "rules": "bare",
        "required": ["description", "patient_mrn"],
        "optional": ["notify_list"],
        "unsupported": ["subject", "assignee_user_id", "phone_call_type_id"],
        "fields": {
            "description": {"required": True, "type": "string", "emr_field": ""},
            "patient_mrn": {"required": True, "type": "string", "emr_field": ""},
            "notify_list": {"required": False, "type": "array of strings", "emr_field": ""},
        },
        "assignee_identified_by": "EMR user id",
        "patient_identified_by": "MRN",
        "finds_by_marker": False,
        "notes": [],
    }


def test_unsupported_fields_follow_contract_order_not_rule_order() -> None:
    reordered = rules.Rules(
        name="reordered",
        emr="test",
        fields=(rules.FieldRule("patient_mrn", True), rules.FieldRule("description", True)),
    )
    assert reordered.required == ("patient_mrn", "description")
    assert reordered.unsupported == ("subject", "assignee_user_id", "phone_call_type_id", "notify_list")
