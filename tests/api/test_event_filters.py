"""GET /v1/webhook-events: Cobalt's `delivery_status`, `start_date` and `end_date` filters."""

import dataclasses
from datetime import UTC, datetime

import pytest

from emrtasks.storage import db
from emrtasks.storage import webhooks as stored_webhooks
from tests.conftest import SUBJECT_TASK, drain

DAY = 86400


@pytest.fixture(autouse=True)
def _loopback_urls_allowed(runtime):
    runtime.ctx.webhooks = dataclasses.replace(runtime.ctx.webhooks, allow_insecure=True, allow_private=True)


async def _task(api, runtime, tenant):
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    assert answer.status_code == 202, answer.text
    await drain(runtime)
    return answer.json()["job_id"]


async def _jobs(api, tenant, query):
    answer = await api.get(f"/v1/webhook-events?sort=created_at&{query}", headers=tenant.a)
    assert answer.status_code == 200, answer.text
    return [e["job_id"] for e in answer.json()["webhook_events"]]


async def _event_id(api, tenant, job_id):
    [event] = (await api.get(f"/v1/webhook-events?job_id={job_id}", headers=tenant.a)).json()[
        "webhook_events"
    ]
    return event["id"]


async def _set_deliveries(runtime, api, tenant, job_id, *statuses):
    """The event's delivery to each registered URL, in order, given these statuses."""
    event_id = await _event_id(api, tenant, job_id)
    assert (
        await api.post(f"/v1/webhook-events/{event_id}/retry", headers=tenant.headers())
    ).status_code == 202
    async with db.write(runtime.engine) as conn:
        endpoints = await stored_webhooks.list_endpoints(conn, tenant.client_id)
        for endpoint, status in zip(endpoints, statuses, strict=True):
            found = await stored_webhooks.find_delivery(conn, event_id, endpoint.id)
            assert found is not None
            await stored_webhooks.update_delivery(conn, found.id, runtime.ctx.clock(), status=status)


async def test_delivery_status_filters_by_the_status_the_listing_shows(api, runtime, tenant):
    # Events written before any URL; a resend then gives each one a delivery per URL, whose status
    # is set as each case needs. The one never resent has no delivery, so no status.
    never_sent, delivered, one_failed, one_pending = [await _task(api, runtime, tenant) for _ in range(4)]
    for path in ("a", "b"):
        registered = await api.post(
            "/v1/webhook", json={"webhook_url": f"http://127.0.0.1:9/{path}"}, headers=tenant.headers()
        )
        assert registered.status_code == 201
    await _set_deliveries(runtime, api, tenant, delivered, "success", "success")
    await _set_deliveries(runtime, api, tenant, one_failed, "success", "failed")
    await _set_deliveries(runtime, api, tenant, one_pending, "failed", "pending")
    assert await _jobs(api, tenant, "delivery_status=success") == [delivered]
    assert await _jobs(api, tenant, "delivery_status=failed") == [one_failed]
    assert await _jobs(api, tenant, "delivery_status=pending") == [one_pending]
    assert await _jobs(api, tenant, "") == [never_sent, delivered, one_failed, one_pending]
    listed = (await api.get("/v1/webhook-events?delivery_status=failed", headers=tenant.a)).json()
    assert [e["delivery_status"] for e in listed["webhook_events"]] == ["failed"]
    assert listed["pagination"]["total_count"] == 1


async def test_start_and_end_date_take_whole_utc_days_both_included(api, runtime, tenant, clock):
    clock.now = datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC)
    late_on_28th = await _task(api, runtime, tenant)
    clock.advance(1)
    start_of_29th = await _task(api, runtime, tenant)
    clock.advance(DAY - 1)
    end_of_29th = await _task(api, runtime, tenant)
    clock.advance(1)
    on_30th = await _task(api, runtime, tenant)
    assert await _jobs(api, tenant, "start_date=2026-11-29") == [start_of_29th, end_of_29th, on_30th]
    assert await _jobs(api, tenant, "end_date=2026-11-29") == [late_on_28th, start_of_29th, end_of_29th]
    only_29th = "start_date=2026-11-29&end_date=2026-11-29"
    assert await _jobs(api, tenant, only_29th) == [start_of_29th, end_of_29th]
    assert await _jobs(api, tenant, "start_date=2026-12-01") == []


@pytest.mark.parametrize(
    ("query", "name", "message"),
    [
        (
            "start_date=2026-02-30",
            "start_date",
            "Invalid parameter start_date: 2026-02-30 is not a date (YYYY-MM-DD).",
        ),
        (
            "end_date=2026-13-01",
            "end_date",
            "Invalid parameter end_date: 2026-13-01 is not a date (YYYY-MM-DD).",
        ),
        (
            "start_date=2026-11-30&end_date=2026-11-29",
            "end_date",
            "Invalid parameter end_date: must not be before start_date.",
        ),
        (
            "delivery_status=delivered",
            "delivery_status",
            "Invalid parameter delivery_status: Input should be 'pending', 'success' or 'failed'.",
        ),
    ],
)
async def test_a_bad_date_or_status_is_400_naming_the_parameter(api, tenant, query, name, message):
    answer = await api.get(f"/v1/webhook-events?{query}", headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json() == {
        "success": False,
        "error": "invalid_parameter",
        "message": message,
        "errors": [{"field": name, "code": "invalid_query", "message": message}],
    }


@pytest.mark.parametrize("value", ["2026-1-01", "30/11/2026", "2026-11-30T00:00:00Z", "1796000000", ""])
async def test_a_date_not_written_as_yyyy_mm_dd_is_400_naming_it(api, tenant, value):
    answer = await api.get("/v1/webhook-events", params={"start_date": value}, headers=tenant.a)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("Invalid parameter start_date: ")
