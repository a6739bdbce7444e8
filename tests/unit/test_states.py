"""States as StrEnums: the very strings the database stores and the API answers, serialised unchanged."""

import enum
import json

import orjson
import pytest

from emrtasks.domain import states
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.storage import webhooks as stored_webhooks


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (states.TaskStatus, ["processing", "created", "failed", "unknown"]),
        (states.JobState, ["queued", "running", "succeeded", "failed", "unknown"]),
        (states.ConnectionStatus, ["active", "login_required"]),
        (states.EndpointStatus, ["active", "disabled", "deleted"]),
        (states.DeliveryStatus, ["pending", "success", "failed"]),
    ],
)
def test_each_state_keeps_the_string_stored_and_answered(kind: type[enum.StrEnum], values: list[str]) -> None:
    assert [member.value for member in kind] == values
    assert [str(member) for member in kind] == values
    assert orjson.loads(orjson.dumps(list(kind))) == values
    assert json.loads(json.dumps(list(kind))) == values


def test_a_members_equals_the_rows_plain_string() -> None:
    assert states.JobState.QUEUED == "queued"
    assert {"queued": 1}[states.JobState.QUEUED] == 1


def test_the_modules_state_names_are_the_enum_members() -> None:
    assert jobs.QUEUED is states.JobState.QUEUED
    assert domain_tasks.UNKNOWN is states.TaskStatus.UNKNOWN
    assert domain_tasks.CONNECTION_LOGIN_REQUIRED is states.ConnectionStatus.LOGIN_REQUIRED
    assert stored_webhooks.DISABLED is states.EndpointStatus.DISABLED
    assert stored_webhooks.PENDING is states.DeliveryStatus.PENDING
