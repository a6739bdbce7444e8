"""Idempotency-Key on POST /v1/tasks, per draft-ietf-httpapi-idempotency-key-header."""

import asyncio
import hashlib

import orjson
from sqlalchemy import func, select

from emrtasks.service import tasks
from emrtasks.storage import db, idempotency, tables
from tests.conftest import SUBJECT_TASK, make_tenant


async def _count(runtime, table):
    async with db.read(runtime.engine) as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar()


async def test_the_same_key_and_body_replay_the_first_answer(api, tenant, runtime):
    headers = {**tenant.a, "Idempotency-Key": "key-1"}
    first = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    again = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _count(runtime, tables.tasks) == 1
    assert await _count(runtime, tables.jobs) == 1


async def test_a_quoted_structured_field_key_is_the_same_key(api, tenant):
    first = await api.post("/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": "abc"})
    again = await api.post("/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": '"abc"'})
    assert again.json()["task_id"] == first.json()["task_id"]


async def test_key_order_in_the_body_does_not_make_it_a_different_body(api, tenant):
    reordered = dict(reversed(list(SUBJECT_TASK.items())))
    first = await api.post("/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": "k"})
    again = await api.post("/v1/tasks", json=reordered, headers={**tenant.a, "Idempotency-Key": "k"})
    assert again.json()["task_id"] == first.json()["task_id"]


async def test_the_same_key_with_another_body_is_422(api, tenant, runtime):
    headers = {**tenant.a, "Idempotency-Key": "key-2"}
    await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    other = await api.post("/v1/tasks", json={**SUBJECT_TASK, "subject": "Other"}, headers=headers)
    assert other.status_code == 422
    assert other.json() == {
        "success": False,
        "error": "idempotency_key_reused",
        "message": "Idempotency-Key reused with a different request body.",
    }
    assert await _count(runtime, tables.tasks) == 1


async def test_a_refused_request_is_not_remembered(api, tenant, runtime):
    headers = {**tenant.a, "Idempotency-Key": "key-3"}
    refused = await api.post("/v1/tasks", json={**SUBJECT_TASK, "subject": ""}, headers=headers)
    assert refused.status_code == 400
    fixed = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    assert fixed.status_code == 202
    assert await _count(runtime, tables.idempotency_keys) == 1


async def test_keys_are_scoped_to_the_connection_and_the_client(api, tenant, runtime):
    other_client = await make_tenant(runtime, "other")
    phone = {"description": "x", "patient_mrn": "MRN-1001", "phone_call_type_id": "pct_01"}
    a = await api.post("/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": "shared"})
    b = await api.post("/v1/tasks", json=phone, headers={**tenant.b, "Idempotency-Key": "shared"})
    c = await api.post(
        "/v1/tasks", json=SUBJECT_TASK, headers={**other_client.a, "Idempotency-Key": "shared"}
    )
    assert a.status_code == b.status_code == c.status_code == 202
    assert len({a.json()["task_id"], b.json()["task_id"], c.json()["task_id"]}) == 3


async def test_a_key_still_in_flight_is_409(api, tenant, runtime):
    gate = asyncio.Event()
    original = runtime.ctx.adapters.directory

    async def slow_directory(connection, **kwargs):
        await gate.wait()
        return await original(connection, **kwargs)

    runtime.ctx.adapters.directory = slow_directory
    headers = {**tenant.a, "Idempotency-Key": "key-4"}
    first = asyncio.create_task(api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers))
    await asyncio.sleep(0.2)  # the first request now holds the key, waiting on the EMR directory
    second = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    gate.set()
    assert second.status_code == 409
    assert second.json()["error"] == "idempotency_key_in_flight"
    assert second.headers["Retry-After"] == "1"
    assert (await first).status_code == 202
    third = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    assert third.headers["Idempotent-Replayed"] == "true"


async def test_two_concurrent_requests_with_one_key_make_one_task(api, tenant, runtime):
    headers = {**tenant.a, "Idempotency-Key": "key-5"}
    answers = await asyncio.gather(
        *(api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers) for _ in range(8))
    )
    accepted = [a for a in answers if a.status_code == 202]
    assert {a.status_code for a in answers} <= {202, 409}
    assert len({a.json()["task_id"] for a in accepted}) == 1
    assert await _count(runtime, tables.tasks) == 1


async def test_a_malformed_key_is_400(api, tenant):
    answer = await api.post(
        "/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": "x" * 256}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_idempotency_key"


async def test_expired_keys_are_pruned(api, tenant, runtime, clock):
    await api.post("/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": "old"})
    clock.advance(24 * 3600 - 60)
    await tasks.prune_idempotency_keys(runtime.ctx)
    assert await _count(runtime, tables.idempotency_keys) == 1
    clock.advance(120)
    await tasks.prune_idempotency_keys(runtime.ctx)
    assert await _count(runtime, tables.idempotency_keys) == 0
    again = await api.post("/v1/tasks", json=SUBJECT_TASK, headers={**tenant.a, "Idempotency-Key": "old"})
    assert "Idempotent-Replayed" not in again.headers


async def test_a_claim_left_by_a_dead_process_is_taken_over(api, tenant, runtime, clock):
    fingerprint = hashlib.sha256(orjson.dumps(SUBJECT_TASK, option=orjson.OPT_SORT_KEYS)).hexdigest()
    await idempotency.claim(
        runtime.engine,
        record_id="idem_dead",
        client_id=tenant.client_id,
        connection_id=tenant.connection_a,
        key="orphan",
        fingerprint=fingerprint,
        now=clock(),
        expires_at=clock(),
    )
    headers = {**tenant.a, "Idempotency-Key": "orphan"}
    assert (await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)).status_code == 409
    clock.advance(120)  # its process never came back
    answer = await api.post("/v1/tasks", json=SUBJECT_TASK, headers=headers)
    assert answer.status_code == 202
    assert "Idempotent-Replayed" not in answer.headers
