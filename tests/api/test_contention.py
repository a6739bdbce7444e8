"""A change that loses to a concurrent transaction (PostgreSQL's deadlock victim) is run again whole, and
one that keeps losing is a 503 to retry, never a 500; nothing of a lost try stays written."""

import dataclasses
from datetime import timedelta

from sqlalchemy import select

from emrtasks.domain import errors
from emrtasks.service import webhooks
from emrtasks.storage import tables
from tests.api.helpers import count_rows
from tests.conftest import SUBJECT_TASK, drain


async def _two_events_and_an_endpoint(api, runtime, tenant):
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)
    for _ in range(2):
        assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
    await drain(runtime)
    registered = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=tenant.headers()
    )
    return registered.json()["webhook_id"]


def _losing(monkeypatch, times):
    """schedule_delivery loses to a concurrent transaction its first `times` calls, after writing."""
    schedule = webhooks.schedule_delivery
    calls = []

    async def losing(*args, **kwargs):
        calls.append(1)
        scheduled = await schedule(*args, **kwargs)
        if len(calls) <= times:
            raise errors.Contention("40P01")
        return scheduled

    monkeypatch.setattr(webhooks, "schedule_delivery", losing)
    return calls


async def _audit_actions(runtime):
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(select(tables.audit_events.c.action, tables.audit_events.c.outcome))
        return [tuple(row) for row in rows]


async def test_a_recover_that_loses_a_deadlock_is_run_again_and_schedules_each_event_once(
    api, runtime, tenant, clock, monkeypatch
):
    webhook_id = await _two_events_and_an_endpoint(api, runtime, tenant)
    calls = _losing(monkeypatch, times=1)
    since = (clock() - timedelta(hours=1)).isoformat()
    answer = await api.post(
        f"/v1/webhook/{webhook_id}/recover", json={"since": since}, headers=tenant.headers()
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["scheduled"] == 2
    assert len(calls) == 3  # one lost try (rolled back), then both events
    assert await count_rows(runtime, tables.deliveries) == 2
    assert (await _audit_actions(runtime)).count(("webhook.recover", "success")) == 1


async def test_a_resend_that_loses_a_deadlock_is_run_again(api, runtime, tenant, monkeypatch):
    await _two_events_and_an_endpoint(api, runtime, tenant)
    event_id = (await api.get("/v1/webhook-events", headers=tenant.a)).json()["webhook_events"][0]["id"]
    calls = _losing(monkeypatch, times=2)
    answer = await api.post(f"/v1/webhook-events/{event_id}/retry", headers=tenant.headers())
    assert answer.status_code == 202, answer.text
    assert len(calls) == 3
    assert await count_rows(runtime, tables.deliveries) == 1
    assert (await _audit_actions(runtime)).count(("event.resend", "success")) == 1


async def test_a_change_that_keeps_losing_is_503_with_retry_after_and_writes_nothing(
    api, runtime, tenant, clock, monkeypatch
):
    webhook_id = await _two_events_and_an_endpoint(api, runtime, tenant)
    _losing(monkeypatch, times=100)
    since = (clock() - timedelta(hours=1)).isoformat()
    answer = await api.post(
        f"/v1/webhook/{webhook_id}/recover", json={"since": since}, headers=tenant.headers()
    )
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json() == {
        "success": False,
        "error": "service_unavailable",
        "message": "The service was busy with a conflicting change and wrote nothing. Please retry.",
    }
    assert await count_rows(runtime, tables.deliveries) == 0
