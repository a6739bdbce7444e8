"""Rows read by position (the hot statements' columns) are built field by field in the table's column
order, and a StrEnum field gets its member: a reordered table or dataclass fails here, not in a worker."""

import dataclasses

import pytest

from emrtasks.domain import states
from emrtasks.storage import rows, tables
from emrtasks.storage import tasks as stored_tasks
from emrtasks.storage import webhooks as stored_webhooks

POSITIONAL = [
    (stored_tasks.TaskRow, tables.tasks),
    (stored_webhooks.DeliveryRow, tables.deliveries),
    (stored_webhooks.Endpoint, tables.webhook_endpoints),
]


@pytest.mark.parametrize(("cls", "table"), POSITIONAL, ids=[c.__name__ for c, _ in POSITIONAL])
def test_a_row_read_by_position_has_its_tables_columns_in_order(cls, table):
    assert [f.name for f in dataclasses.fields(cls)] == [c.name for c in table.c]


def test_a_state_column_becomes_its_member_and_other_columns_stay_as_read():
    values = ["dlv_1", "evt_1", "wh_1", "cli_1", "failed", 3, None, False, None, "t0", "t1"]
    built = rows.from_values(stored_webhooks.DeliveryRow, values)
    assert built.status is states.DeliveryStatus.FAILED
    assert (built.id, built.attempts, built.created_at) == ("dlv_1", 3, "t0")
    named = dict(zip([c.name for c in tables.deliveries.c], values, strict=True))
    assert rows.build(stored_webhooks.DeliveryRow, named) == built


def test_a_row_with_a_column_missing_is_refused():
    with pytest.raises(ValueError):
        rows.from_values(stored_webhooks.DeliveryRow, ["dlv_1", "evt_1"])
    with pytest.raises(KeyError):
        rows.build(stored_webhooks.DeliveryRow, {"id": "dlv_1"})
