"""Webhook delivery in process against a real receiver on loopback, verified with standardwebhooks."""

import asyncio
import dataclasses
import functools
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

import emrtasks
from emrtasks import bootstrap
from emrtasks.api.app import create_app
from emrtasks.domain import errors, ids
from emrtasks.domain import tasks as domain_tasks
from emrtasks.queue import jobs
from emrtasks.service import audit, create_task, webhook_delivery
from emrtasks.service import webhooks as service_webhooks
from emrtasks.storage import attempts as stored_attempts
from emrtasks.storage import db, tables
from emrtasks.storage import events as stored_events
from emrtasks.storage import webhooks as stored_webhooks
from tests.conftest import SUBJECT_TASK, make_tenant
from tests.receiver import Receiver


@pytest.fixture
def webhook_settings(settings):
    return settings.model_copy(
        update={
            "webhook_allow_insecure": True,
            "webhook_allow_private": True,
            "webhook_retry_schedule": "0,0.05,0.05,0.05",
            "worker_poll_seconds": 0.05,
        }
    )


async def _until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def _queue_idle(rt):
    """No delivery job waits or runs: every delivery ever queued has been attempted and settled."""
    async with db.read(rt.engine) as conn:
        waiting = select(func.count()).where(
            tables.jobs.c.kind == "deliver_webhook", tables.jobs.c.state.in_([jobs.QUEUED, jobs.RUNNING])
        )
        return (await conn.execute(waiting)).scalar() == 0


async def _deliveries_queued(rt):
    async with db.read(rt.engine) as conn:
        kind = select(func.count()).where(tables.jobs.c.kind == "deliver_webhook")
        return (await conn.execute(kind)).scalar()


async def _setup(rt, receiver):
    tenant = await make_tenant(rt)
    app = create_app(rt.ctx)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    answer = await http.post("/v1/webhook", json={"webhook_url": receiver.url}, headers=tenant.headers())
    assert answer.status_code == 201, answer.text
    receiver.secrets.append(answer.json()["webhook_secret"])
    return tenant, http, answer.json()["webhook_id"]


async def test_a_created_task_is_delivered_signed_and_verified(webhook_settings, tmp_path):
    with Receiver() as receiver:
        async with bootstrap.runtime(
            webhook_settings.model_copy(update={"key_file": str(tmp_path / "k")})
        ) as rt:
            assert rt.ctx.webhooks.user_agent == f"emrtasks/{emrtasks.__version__}"
            rt.ctx.webhooks = dataclasses.replace(rt.ctx.webhooks, user_agent="emrtasks-configured/7")
            tenant, http, _ = await _setup(rt, receiver)
            accepted = (await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)).json()
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 1)
            [delivery] = receiver.verified()
            assert delivery.event["type"] == "task.created"
            assert delivery.event["data"]["task_id"] == accepted["task_id"]
            assert delivery.headers["webhook-id"] == delivery.event["id"]
            assert delivery.headers["webhook-attempt"] == "1"
            assert delivery.headers["user-agent"] == "emrtasks-configured/7"  # the policy's, as configured

            async def recorded():  # the receiver has it; the attempt's record commits right after
                listed = (await http.get("/v1/webhook-events", headers=tenant.a)).json()["webhook_events"]
                return listed[0]["delivery_status"] != "pending" and listed

            await _until(recorded)
            listed = await recorded()
            assert listed[0]["delivery_status"] == "success"
            assert [a["status_code"] for a in listed[0]["attempts"]] == [200]
            await http.aclose()


async def test_a_failing_receiver_gets_the_same_bytes_again_until_it_answers(webhook_settings, tmp_path):
    with Receiver() as receiver:
        receiver.answers = [500, 500]
        async with bootstrap.runtime(
            webhook_settings.model_copy(update={"key_file": str(tmp_path / "k")})
        ) as rt:
            tenant, http, _ = await _setup(rt, receiver)
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.deliveries) == 3)
            first, second, third = receiver.deliveries
            assert [d.status for d in receiver.deliveries] == [500, 500, 200]
            assert [d.headers["webhook-attempt"] for d in receiver.deliveries] == ["1", "2", "3"]
            assert first.body == second.body == third.body
            assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1
            assert all(d.verified_by for d in receiver.deliveries)

            async def settled():
                events = (await http.get("/v1/webhook-events", headers=tenant.a)).json()["webhook_events"]
                return events[0]["delivery_status"] == "success"

            await _until(settled)
            await http.aclose()


async def _events(http, headers):
    return (await http.get("/v1/webhook-events", headers=headers)).json()["webhook_events"]


async def test_a_410_disables_the_endpoint_until_it_is_enabled_again(webhook_settings, tmp_path):
    with Receiver() as receiver:
        receiver.answers = [410]
        async with bootstrap.runtime(
            webhook_settings.model_copy(update={"key_file": str(tmp_path / "k")})
        ) as rt:
            tenant, http, webhook_id = await _setup(rt, receiver)
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.deliveries) == 1)

            async def disabled():
                listed = (await http.get("/v1/webhook", headers=tenant.headers())).json()["webhook_urls"]
                return listed[0]["status"] == "disabled"

            await _until(disabled)
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)

            async def two_events():
                return len(await _events(http, tenant.a)) == 2

            await _until(two_events)
            await _until(lambda: _queue_idle(rt))  # a delivery queued for it would have run by now
            assert len(receiver.deliveries) == 1  # nothing goes to a disabled endpoint
            assert await _deliveries_queued(rt) == 1  # and none was ever queued for the second event
            enabled = await http.post(f"/v1/webhook/{webhook_id}/enable", headers=tenant.headers())
            assert enabled.json()["webhook"]["status"] == "active"
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 1)
            await http.aclose()


async def _run_due_jobs(rt):
    """Every due job, as a worker would run it, on the runtime's (injected) clock."""
    handlers = {
        "create_task": functools.partial(create_task.run_create_task, rt.ctx),
        "deliver_webhook": functools.partial(webhook_delivery.run_delivery, rt.ctx),
    }
    while claimed := await jobs.claim(rt.engine, worker_id="t", limit=9, lease_seconds=9, now=rt.ctx.clock()):
        for job in claimed:
            await handlers[job.kind](job)


async def test_after_a_rotation_both_secrets_sign_for_the_overlap_then_only_the_new(
    webhook_settings, tmp_path, clock
):
    """On the injected clock: the old secret still signs a moment before the overlap ends, not at its end.
    (A minute's overlap: the receiver checks each signature's time within five minutes of its own.)"""
    settings = webhook_settings.model_copy(
        update={"key_file": str(tmp_path / "k"), "webhook_secret_overlap_seconds": 60.0}
    )
    with Receiver() as receiver:
        async with bootstrap.runtime(settings, run_worker=False) as rt:
            rt.ctx.clock = clock
            tenant, http, webhook_id = await _setup(rt, receiver)
            old = receiver.secrets[0]
            rotated = (
                await http.post(f"/v1/webhook/{webhook_id}/rotate-secret", headers=tenant.headers())
            ).json()
            new = rotated["webhook"]["secret"]
            assert rotated["webhook"]["id"] == webhook_id and new != old
            receiver.secrets.append(new)
            for step in (0, 59, 1):  # at the rotation, a second before the overlap ends, at its end
                clock.advance(step)
                await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
                await _run_due_jobs(rt)
            await http.aclose()
    assert [len(d.signatures) for d in receiver.deliveries] == [2, 2, 1]
    assert [sorted(d.verified_by) for d in receiver.deliveries] == [sorted([old, new])] * 2 + [[new]]
    # Cobalt's one header: the newest secret from the rotation on, through the overlap and after.
    assert [d.cobalt_verified_by for d in receiver.deliveries] == [[new]] * 3


async def test_an_exhausted_event_stays_failed_until_it_is_resent(webhook_settings, tmp_path):
    with Receiver(default=500) as receiver:
        async with bootstrap.runtime(
            webhook_settings.model_copy(update={"key_file": str(tmp_path / "k")})
        ) as rt:
            tenant, http, _ = await _setup(rt, receiver)
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)

            async def failed():
                events = await _events(http, tenant.a)
                return events and events[0]["delivery_status"] == "failed"

            await _until(failed)
            assert len(receiver.deliveries) == 4  # the whole compressed schedule
            [event] = await _events(http, tenant.a)
            assert [a["attempt"] for a in event["attempts"]] == [1, 2, 3, 4]
            receiver.default = 200
            resent = await http.post(f"/v1/webhook-events/{event['id']}/retry", headers=tenant.headers())
            assert resent.status_code == 202
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 1)
            assert receiver.verified()[0].headers["webhook-attempt"] == "5"

            async def success():
                return (await _events(http, tenant.a))[0]["delivery_status"] == "success"

            await _until(success)
            await http.aclose()


async def test_recover_resends_every_event_since_a_time(webhook_settings, tmp_path):
    with Receiver() as receiver:
        async with bootstrap.runtime(
            webhook_settings.model_copy(update={"key_file": str(tmp_path / "k")})
        ) as rt:
            tenant, http, webhook_id = await _setup(rt, receiver)
            for _ in range(3):
                await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 3)
            answer = await http.post(
                f"/v1/webhook/{webhook_id}/recover",
                json={"since": "2000-01-01T00:00:00Z"},
                headers=tenant.headers(),
            )
            assert answer.status_code == 202
            assert answer.json()["scheduled"] == 3
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 6)
            ids = [d.headers["webhook-id"] for d in receiver.verified()]
            assert sorted(ids[:3]) == sorted(ids[3:])
            await http.aclose()


async def test_a_resend_asked_for_during_an_attempt_is_sent_after_it(webhook_settings, tmp_path):
    with Receiver() as receiver:
        receiver.delay_seconds = 0.5
        async with bootstrap.runtime(
            webhook_settings.model_copy(update={"key_file": str(tmp_path / "k")})
        ) as rt:
            tenant, http, _ = await _setup(rt, receiver)
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(receiver.wait_for, lambda r: r.in_flight == 1)
            [event] = await _events(http, tenant.a)
            resent = await http.post(f"/v1/webhook-events/{event['id']}/retry", headers=tenant.headers())
            assert resent.status_code == 202
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 2)
            assert [d.headers["webhook-attempt"] for d in receiver.verified()] == ["1", "2"]

            async def settled():
                [found] = await _events(http, tenant.a)
                return found["delivery_status"] == "success" and len(found["attempts"]) == 2

            await _until(settled)
            await http.aclose()


async def test_a_resend_does_not_wait_for_the_next_scheduled_retry(webhook_settings, tmp_path):
    settings = webhook_settings.model_copy(
        update={"key_file": str(tmp_path / "k"), "webhook_retry_schedule": "0,3600"}
    )
    with Receiver(default=500) as receiver:
        async with bootstrap.runtime(settings) as rt:
            tenant, http, webhook_id = await _setup(rt, receiver)
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)

            async def tried_once():
                events = await _events(http, tenant.a)
                return events and len(events[0]["attempts"]) == 1

            await _until(tried_once)  # the next retry is an hour away
            receiver.default = 200
            answer = await http.post(
                f"/v1/webhook/{webhook_id}/recover",
                json={"since": "2000-01-01T00:00:00Z"},
                headers=tenant.headers(),
            )
            assert (answer.status_code, answer.json()["scheduled"]) == (202, 1)
            await asyncio.to_thread(receiver.wait_for, lambda r: len(r.verified()) == 1, 5)
            assert receiver.verified()[0].headers["webhook-attempt"] == "2"
            await http.aclose()


async def test_an_endpoint_enabled_while_a_failing_attempt_runs_stays_enabled(webhook_settings, tmp_path):
    settings = webhook_settings.model_copy(
        update={"key_file": str(tmp_path / "k"), "webhook_disable_after_seconds": 3600}
    )
    with Receiver(default=500) as receiver:
        receiver.delay_seconds = 0.5
        async with bootstrap.runtime(settings) as rt:
            tenant, http, webhook_id = await _setup(rt, receiver)
            long_ago = rt.ctx.clock() - timedelta(hours=2)  # failing longer than the limit
            async with db.write(rt.engine) as conn:
                await stored_webhooks.update_endpoint(
                    conn, webhook_id, rt.ctx.clock(), failing_since=long_ago
                )
            await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(receiver.wait_for, lambda r: r.in_flight == 1)
            enabled = await http.post(f"/v1/webhook/{webhook_id}/enable", headers=tenant.headers())
            assert enabled.status_code == 200, enabled.text

            async def recorded():
                events = await _events(http, tenant.a)
                return events and len(events[0]["attempts"]) >= 1

            await _until(recorded)
            listed = (await http.get("/v1/webhook", headers=tenant.headers())).json()["webhook_urls"]
            assert [w["status"] for w in listed] == ["active"]
            await http.aclose()


async def test_a_slow_endpoint_does_not_hold_up_another(webhook_settings, tmp_path):
    settings = webhook_settings.model_copy(
        update={"key_file": str(tmp_path / "k"), "webhook_endpoint_concurrency": 2, "worker_concurrency": 4}
    )
    with Receiver() as slow, Receiver() as fast:
        slow.delay_seconds = 1.0
        async with bootstrap.runtime(settings) as rt:
            tenant, http, _ = await _setup(rt, slow)
            registered = await http.post(
                "/v1/webhook", json={"webhook_url": fast.url}, headers=tenant.headers()
            )
            fast.secrets.append(registered.json()["webhook_secret"])
            for _ in range(6):
                await http.post("/v1/tasks", json=SUBJECT_TASK, headers=tenant.a)
            await asyncio.to_thread(fast.wait_for, lambda r: len(r.verified()) == 6, 10)
            await asyncio.to_thread(slow.wait_for, lambda r: len(r.verified()) == 6, 10)
            slow_arrivals = sorted(d.received_at for d in slow.deliveries)
            # Two at a time, one second each: the slow endpoint never held more than its share of
            # the four worker slots, so all six fast deliveries arrived before its third began.
            assert slow.max_in_flight == 2
            assert max(d.received_at for d in fast.deliveries) < slow_arrivals[2]
            await http.aclose()


async def test_a_resend_racing_the_record_of_an_attempt_is_not_lost(runtime, tenant, monkeypatch):
    """The worker's record of an attempt and a resend request in flight at the same moment: on
    PostgreSQL the two transactions overlap; the resend must end up as a job, not as a mark on a
    delivery whose job has already finished."""
    ctx = runtime.ctx
    ctx.webhooks = dataclasses.replace(ctx.webhooks, allow_insecure=True, allow_private=True)
    client = domain_tasks.Client(tenant.client_id, "tests")
    with Receiver() as receiver:
        await service_webhooks.register(
            ctx, audit.as_client(client.id), client, {"webhook_url": receiver.url}
        )
        event_id = ids.new_id("evt")
        async with db.write(runtime.engine) as conn:
            await stored_events.insert_event(
                conn,
                event_id=event_id,
                client_id=tenant.client_id,
                connection_id=tenant.connection_a,
                event_type="task.created",
                job_id=None,
                task_id=None,
                body='{"id": "' + event_id + '"}',
                now=ctx.clock(),
            )
            await service_webhooks.fan_out(ctx, conn, tenant.client_id, event_id, ctx.clock())
        [job] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=60, now=ctx.clock())
        paused, go = asyncio.Event(), asyncio.Event()
        record = stored_attempts.record

        async def pausing(conn, **values):
            written = await record(conn, **values)
            paused.set()
            await go.wait()  # the record's transaction is open, its job row settled
            return written

        monkeypatch.setattr(stored_attempts, "record", pausing)
        recording = asyncio.create_task(webhook_delivery.run_delivery(ctx, job))
        await asyncio.wait_for(paused.wait(), 10)
        resending = asyncio.create_task(
            service_webhooks.resend_event(ctx, audit.as_client(client.id), client, event_id)
        )
        await asyncio.sleep(0.3)  # the resend reaches the database while the record is open
        go.set()
        await asyncio.wait_for(recording, 10)
        await asyncio.wait_for(resending, 10)
        async with db.read(runtime.engine) as conn:
            [found] = (await stored_webhooks.delivery_summaries(conn, [event_id]))[event_id]
            current = await jobs.get_job(conn, found.job_id)
        assert current is not None
        # Either the resend is a new queued job, or the recorded job was made due again.
        assert current["state"] == jobs.QUEUED, (found, current)
        assert found.status == stored_webhooks.PENDING


async def test_one_url_registered_twice_at_once_is_registered_once(runtime, tenant):
    """Two processes registering the same URL at the same moment: one 201, one 409 (a unique
    index among the endpoints not deleted; on PostgreSQL both used to succeed)."""
    ctx = runtime.ctx
    ctx.webhooks = dataclasses.replace(ctx.webhooks, allow_insecure=True, allow_private=True)
    client = domain_tasks.Client(tenant.client_id, "tests")
    body = {"webhook_url": "http://127.0.0.1:9/hook"}
    answers = await asyncio.gather(
        *(service_webhooks.register(ctx, audit.as_client(client.id), client, body) for _ in range(4)),
        return_exceptions=True,
    )
    registered = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if isinstance(a, errors.Problem)]
    assert (len(registered), len(refused)) == (1, 3), answers
    assert {p.status for p in refused} == {409}
    listed = await service_webhooks.list_endpoints(ctx, client)
    assert [e["url"] for e in listed] == [body["webhook_url"]]
