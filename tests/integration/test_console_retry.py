"""Retrying an `unknown` task from the console, at the service: two operators at once queue it once
(the second is refused), and a task no longer `unknown` is not queued again."""

import asyncio
import dataclasses

import pytest

from emrtasks.domain import errors
from emrtasks.service import audit, console_actions, tasks
from emrtasks.storage import db
from emrtasks.storage import tasks as stored_tasks
from tests.conftest import SUBJECT_TASK, drain, make_tenant


async def _unknown_task(runtime, **sandbox):
    tenant = await make_tenant(runtime, "lossy", unknown_rate=1.0, **sandbox)
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, task_max_attempts=1)
    connection = await _connection(runtime, tenant.connection_a)
    accepted = await tasks.accept_task(runtime.ctx, connection, SUBJECT_TASK)
    await drain(runtime)
    runtime.ctx.policy = dataclasses.replace(runtime.ctx.policy, task_max_attempts=8)
    return accepted.task_id


async def _connection(runtime, connection_id):
    from emrtasks.storage import connections

    async with db.read(runtime.engine) as conn:
        return await connections.get_connection(conn, connection_id)


async def _status(runtime, task_id):
    async with db.read(runtime.engine) as conn:
        found = await stored_tasks.get_task(conn, task_id)
    assert found is not None
    return found.status


def _operator(n):
    return audit.Origin(audit.OPERATOR, f"operator:op_{n}")


async def test_two_operators_retrying_at_once_queue_the_task_once(runtime):
    task_id = await _unknown_task(runtime)
    assert await _status(runtime, task_id) == "unknown"
    results = await asyncio.gather(
        *(
            console_actions.retry_unknown(runtime.ctx, _operator(n), task_id, "checked the EMR")
            for n in range(2)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, errors.Problem)]
    assert len(refused) == 1 and refused[0].status == 409
    assert await _status(runtime, task_id) == "processing"
    assert await drain(runtime) == 1  # one job, one attempt: the lookup found the task written
    assert await _status(runtime, task_id) == "created"


async def test_a_task_that_is_not_unknown_is_not_retried(runtime):
    task_id = await _unknown_task(runtime)
    await console_actions.retry_unknown(runtime.ctx, _operator(1), task_id, "checked")
    with pytest.raises(errors.Problem) as raised:
        await console_actions.retry_unknown(runtime.ctx, _operator(2), task_id, "checked")
    assert raised.value.status == 409 and "this one is processing" in raised.value.message
