"""Rate limits and quotas through the API: requests per second per connection and per client (429 with
Retry-After and the IETF RateLimit fields), webhook URLs per client, events per recover call.

The clock is the test's own (`clock`): buckets refill only when the test moves it."""

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from emrtasks.service import throttle
from emrtasks.storage import tables
from tests.api.helpers import NOTHING_STORED, count_rows, stored_counts
from tests.conftest import SUBJECT_TASK, drain


def _limit(runtime, **limits):
    runtime.ctx.request_limits = throttle.RequestLimits(burst_seconds=1, **limits)


def _assert_refused(answer, policy, quota, *, retry_after="1", reset="1"):
    assert answer.status_code == 429
    body = answer.json()
    assert (body["success"], body["error"]) == (False, "rate_limited")
    assert body["message"].startswith(f"Too many requests for this {policy}: the limit is ")
    assert answer.headers["retry-after"] == retry_after
    assert answer.headers["ratelimit-policy"] == f'"{policy}";q={quota};w=1'
    assert answer.headers["ratelimit"] == f'"{policy}";r=0;t={reset}'


async def test_the_defaults_come_from_the_settings(runtime):
    limits = runtime.ctx.request_limits
    assert limits.connections is not None and limits.clients is not None
    assert (limits.connections.limit.per_second, limits.connections.limit.capacity) == (200.0, 2000.0)
    assert (limits.clients.limit.per_second, limits.clients.limit.capacity) == (1000.0, 10000.0)
    assert runtime.ctx.webhooks.max_endpoints == 10
    assert runtime.ctx.webhooks.recover_max_events == 10_000


async def test_a_connection_past_its_rate_is_429_until_its_bucket_refills(api, runtime, tenant, clock):
    _limit(runtime, connection_per_second=2)
    for _ in range(2):
        assert (await api.get("/v1/settings", headers=tenant.a)).status_code == 200
    refused = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
    _assert_refused(refused, "connection", 2)
    assert await stored_counts(runtime) == NOTHING_STORED  # a refused task is not taken
    # The client's other connection has a bucket of its own.
    assert (await api.get("/v1/settings", headers=tenant.b)).status_code == 200
    clock.advance(0.5)  # one request's worth
    assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
    _assert_refused(await api.get("/v1/settings", headers=tenant.a), "connection", 2)


async def test_a_client_past_its_rate_is_429_on_every_connection_and_client_route(
    api, runtime, tenant, clock
):
    _limit(runtime, client_per_second=3)
    assert (await api.get("/v1/settings", headers=tenant.a)).status_code == 200
    assert (await api.get("/v1/settings", headers=tenant.b)).status_code == 200
    assert (await api.get("/v1/webhook", headers=tenant.headers())).status_code == 200
    _assert_refused(await api.get("/v1/webhook", headers=tenant.headers()), "client", 3)
    _assert_refused(await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.b), "client", 3)
    clock.advance(1)  # the whole bucket back
    for _ in range(3):
        assert (await api.get("/v1/webhook-events", headers=tenant.a)).status_code == 200


async def test_a_long_wait_is_announced_in_retry_after(api, runtime, tenant, clock):
    runtime.ctx.request_limits = throttle.RequestLimits(connection_per_second=0.1, burst_seconds=10)
    assert (await api.get("/v1/settings", headers=tenant.a)).status_code == 200
    refused = await api.get("/v1/settings", headers=tenant.a)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"  # one request a 10 s
    assert refused.headers["ratelimit-policy"] == '"connection";q=1;w=10'
    clock.advance(9)
    assert (await api.get("/v1/settings", headers=tenant.a)).headers["retry-after"] == "1"
    clock.advance(1)
    assert (await api.get("/v1/settings", headers=tenant.a)).status_code == 200


async def test_unauthenticated_requests_are_not_counted_against_the_client(api, runtime, tenant):
    _limit(runtime, client_per_second=1)
    for _ in range(5):
        wrong = await api.get("/v1/settings", headers={**tenant.a, "client_secret": "cs_wrong"})
        assert wrong.status_code == 401
    assert (await api.get("/v1/settings", headers=tenant.a)).status_code == 200


# --- quotas ----------------------------------------------------------------------------------------


def _allow_local_webhooks(runtime, **policy):
    runtime.ctx.webhooks = dataclasses.replace(
        runtime.ctx.webhooks, allow_insecure=True, allow_private=True, **policy
    )


async def test_an_eleventh_webhook_url_is_409_naming_the_limit(api, runtime, tenant):
    _allow_local_webhooks(runtime)
    for n in range(10):
        answer = await api.post(
            "/v1/webhook", json={"webhook_url": f"http://127.0.0.1:9/hook-{n}"}, headers=tenant.headers()
        )
        assert answer.status_code == 201
    eleventh = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook-10"}, headers=tenant.headers()
    )
    assert eleventh.status_code == 409
    assert eleventh.json() == {
        "success": False,
        "error": "webhook_limit_reached",
        "message": "Too many webhook URLs: a client may register at most 10. "
        "Delete one (DELETE /v1/webhook/{webhook_id}) before registering another.",
    }
    assert await count_rows(runtime, tables.webhook_endpoints) == 10
    # Deleting one makes room.
    first = (await api.get("/v1/webhook", headers=tenant.headers())).json()["webhook_urls"][0]["id"]
    assert (await api.delete(f"/v1/webhook/{first}", headers=tenant.headers())).status_code == 200
    again = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook-10"}, headers=tenant.headers()
    )
    assert again.status_code == 201


async def test_registrations_at_once_never_pass_the_webhook_limit(api, runtime, tenant):
    _allow_local_webhooks(runtime, max_endpoints=3)
    answers = await asyncio.gather(
        *(
            api.post(
                "/v1/webhook",
                json={"webhook_url": f"http://127.0.0.1:9/at-once-{n}"},
                headers=tenant.headers(),
            )
            for n in range(8)
        )
    )
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 5
    assert await count_rows(runtime, tables.webhook_endpoints) == 3


async def test_recover_schedules_at_most_the_cap_and_says_how_to_go_on(api, runtime, tenant, clock):
    _allow_local_webhooks(runtime, recover_max_events=3)
    start = clock()
    for _ in range(5):
        assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
    await drain(runtime)  # five task.created events, written in the same instant, before any endpoint
    events = (await api.get("/v1/webhook-events", headers=tenant.a)).json()["webhook_events"]
    assert len(events) == 5
    registered = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=tenant.headers()
    )
    webhook_id = registered.json()["webhook_id"]
    since = (start - timedelta(hours=1)).isoformat()

    first = await api.post(
        f"/v1/webhook/{webhook_id}/recover", json={"since": since}, headers=tenant.headers()
    )
    assert first.status_code == 202
    body = first.json()
    assert (body["scheduled"], body["complete"]) == (3, False)
    assert body["message"] == (
        "Scheduled the first 3 events, the most one recover call schedules. "
        "Send the `next` object as the body of another recover call for the rest."
    )
    assert body["next"]["since"] == body["since"]
    assert await count_rows(runtime, tables.deliveries) == 3

    rest = await api.post(f"/v1/webhook/{webhook_id}/recover", json=body["next"], headers=tenant.headers())
    assert rest.status_code == 202
    assert (rest.json()["scheduled"], rest.json()["complete"]) == (2, True)
    assert "next" not in rest.json()
    assert await count_rows(runtime, tables.deliveries) == 5  # each event once: none skipped, none twice


async def test_recover_after_an_event_of_another_client_is_400(api, runtime, tenant):
    _allow_local_webhooks(runtime)
    registered = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=tenant.headers()
    )
    answer = await api.post(
        f"/v1/webhook/{registered.json()['webhook_id']}/recover",
        json={"since": "2026-01-01T00:00:00Z", "after_event_id": "evt_unknown"},
        headers=tenant.headers(),
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "after_event_id"


@pytest.mark.parametrize("scheduled", [2, 3])
async def test_recover_at_or_under_the_cap_is_complete(api, runtime, tenant, clock, scheduled):
    _allow_local_webhooks(runtime, recover_max_events=3)
    start = clock()
    for _ in range(scheduled):
        assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).status_code == 202
        clock.advance(0.01)
    await drain(runtime)
    registered = await api.post(
        "/v1/webhook", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=tenant.headers()
    )
    answer = await api.post(
        f"/v1/webhook/{registered.json()['webhook_id']}/recover",
        json={"since": (start - timedelta(hours=1)).isoformat()},
        headers=tenant.headers(),
    )
    assert answer.status_code == 202
    assert (answer.json()["scheduled"], answer.json()["complete"]) == (scheduled, True)
    assert "next" not in answer.json()
