"""The real worker loop: woken by a commit in its process, runs jobs concurrently, stops cleanly."""

import asyncio
import time

import pytest

from emrtasks import bootstrap
from emrtasks.emr import sandbox
from emrtasks.queue import jobs
from emrtasks.service import tasks
from emrtasks.storage import connections, db
from tests.conftest import SUBJECT_TASK, make_tenant


async def _wait_terminal(rt, connection, task_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = await tasks.get_task(rt.ctx, connection, task_id)
        if task["status"] != "processing":
            return task
        await asyncio.sleep(0.005)
    raise AssertionError("task did not finish")


async def test_an_idle_worker_is_woken_by_a_new_task_without_waiting_for_its_poll(settings):
    settings = settings.model_copy(update={"worker_poll_seconds": 30.0})
    async with bootstrap.runtime(settings) as rt:
        tenant = await make_tenant(rt)
        async with db.read(rt.engine) as conn:
            connection = await connections.get_connection(conn, tenant.connection_a)
        await asyncio.sleep(0.2)  # let the worker go idle on its 30 s poll
        started = time.monotonic()
        accepted = await tasks.accept_task(rt.ctx, connection, dict(SUBJECT_TASK))
        task = await _wait_terminal(rt, connection, accepted.task_id)
        assert task["status"] == "created"
        assert time.monotonic() - started < 5  # far below the 30 s poll: the wake-up worked


async def test_the_worker_runs_many_tasks_and_each_reaches_the_emr_once(settings):
    async with bootstrap.runtime(settings) as rt:
        tenant = await make_tenant(rt, latency_ms=5)
        async with db.read(rt.engine) as conn:
            connection = await connections.get_connection(conn, tenant.connection_a)
        accepted = [await tasks.accept_task(rt.ctx, connection, dict(SUBJECT_TASK)) for _ in range(40)]
        for item in accepted:
            assert (await _wait_terminal(rt, connection, item.task_id))["status"] == "created"
        held = await rt.ctx.adapters.deps.sandbox_store.list_tasks(connection.id)
        assert sorted(h["marker"] for h in held) == sorted(a.task_id for a in accepted)


async def test_stopping_releases_a_job_waiting_on_the_emr_for_reconciliation(settings, monkeypatch):
    settings = settings.model_copy(update={"worker_grace_seconds": 0.1})
    reached, never = asyncio.Event(), asyncio.Event()

    async def slow_emr(adapter):
        reached.set()
        await never.wait()  # the EMR never answers: only the worker's stop ends the call

    monkeypatch.setattr(sandbox.SandboxAdapter, "_wait", slow_emr)
    async with bootstrap.runtime(settings) as rt:
        tenant = await make_tenant(rt)
        async with db.read(rt.engine) as conn:
            connection = await connections.get_connection(conn, tenant.connection_a)
        accepted = await tasks.accept_task(rt.ctx, connection, dict(SUBJECT_TASK))
        await asyncio.wait_for(reached.wait(), timeout=30)
    async with bootstrap.runtime(settings, run_worker=False) as rt, db.read(rt.engine) as conn:
        row = await jobs.get_job(conn, accepted.job_id)
    assert row["state"] == jobs.QUEUED
    assert row["reconcile"] is True
    assert row["last_error_code"] == "WORKER_STOPPED"


async def test_on_postgres_a_job_enqueued_by_another_process_wakes_an_idle_worker(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite other processes are found by polling")
    idle = settings.model_copy(update={"worker_poll_seconds": 30.0})
    async with bootstrap.runtime(idle) as worker_side, bootstrap.runtime(idle, run_worker=False) as api_side:
        tenant = await make_tenant(api_side)
        async with db.read(api_side.engine) as conn:
            connection = await connections.get_connection(conn, tenant.connection_a)
        await asyncio.sleep(0.5)  # the worker is idle on its 30 s poll, its listener connected
        started = time.monotonic()
        accepted = await tasks.accept_task(api_side.ctx, connection, dict(SUBJECT_TASK))
        task = await _wait_terminal(api_side, connection, accepted.task_id)
        assert task["status"] == "created"
        assert time.monotonic() - started < 5  # woken by NOTIFY, not by the 30 s poll
        assert worker_side.worker is not None
