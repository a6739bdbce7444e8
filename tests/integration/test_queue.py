"""The jobs table as a queue: claims never overlap, leases expire and are reaped, finishes are fenced."""

import asyncio
from datetime import timedelta

from sqlalchemy import select

from emrtasks.domain import ids
from emrtasks.queue import jobs
from emrtasks.storage import db, tables


async def _enqueue(rt, count, *, kind="test", run_at_offset=0.0):
    now = rt.ctx.clock()
    created = []
    async with db.write(rt.engine) as conn:
        for _ in range(count):
            job_id = ids.new_id("job")
            await jobs.enqueue(conn, job_id=job_id, kind=kind, now=now, max_attempts=3)
            created.append(job_id)
        if run_at_offset:
            await conn.execute(tables.jobs.update().values(run_at=now + timedelta(seconds=run_at_offset)))
    return created


async def _state(rt, job_id):
    async with db.read(rt.engine) as conn:
        return await jobs.get_job(conn, job_id)


async def test_concurrent_claimers_never_take_the_same_job(runtime):
    created = await _enqueue(runtime, 200)

    async def claimer(name):
        mine = []
        while True:
            got = await jobs.claim(
                runtime.engine, worker_id=name, limit=7, lease_seconds=30, now=runtime.ctx.clock()
            )
            if not got:
                return mine
            mine.extend(j.id for j in got)

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(8)))
    claimed = [job_id for batch in results for job_id in batch]
    assert sorted(claimed) == sorted(created)
    assert len(set(claimed)) == len(claimed)


async def test_a_claim_raises_the_attempt_and_sets_a_lease(runtime, clock):
    [job_id] = await _enqueue(runtime, 1)
    [job] = await jobs.claim(runtime.engine, worker_id="w", limit=5, lease_seconds=30, now=clock())
    row = await _state(runtime, job_id)
    assert job.attempts == 1
    assert row["state"] == jobs.RUNNING
    assert row["locked_by"] == "w"
    assert row["lease_expires_at"] == clock() + timedelta(seconds=30)


async def test_jobs_due_later_are_not_claimed_until_due(runtime, clock):
    await _enqueue(runtime, 1, run_at_offset=60)
    assert await jobs.claim(runtime.engine, worker_id="w", limit=5, lease_seconds=30, now=clock()) == []
    assert await jobs.next_run_at(runtime.engine) == clock() + timedelta(seconds=60)
    clock.advance(61)
    assert len(await jobs.claim(runtime.engine, worker_id="w", limit=5, lease_seconds=30, now=clock())) == 1


async def test_the_reaper_returns_expired_leases_to_the_queue_for_reconciliation(runtime, clock):
    [job_id] = await _enqueue(runtime, 1)
    await jobs.claim(runtime.engine, worker_id="dead", limit=1, lease_seconds=30, now=clock())
    assert await jobs.reap(runtime.engine, now=clock() + timedelta(seconds=29)) == 0
    clock.advance(31)
    assert await jobs.reap(runtime.engine, now=clock()) == 1
    row = await _state(runtime, job_id)
    assert row["state"] == jobs.QUEUED
    assert row["reconcile"] is True
    assert row["last_error_code"] == jobs.LEASE_EXPIRED
    [again] = await jobs.claim(runtime.engine, worker_id="alive", limit=1, lease_seconds=30, now=clock())
    assert again.attempts == 2
    assert again.reconcile is True


async def test_a_heartbeat_keeps_a_running_job_from_being_reaped(runtime, clock):
    await _enqueue(runtime, 1)
    [job] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=clock())
    clock.advance(20)
    await jobs.extend_leases(runtime.engine, [job], worker_id="w", lease_seconds=30, now=clock())
    clock.advance(20)
    assert await jobs.reap(runtime.engine, now=clock()) == 0


async def test_a_worker_whose_lease_was_taken_over_cannot_commit_its_result(runtime, clock):
    [job_id] = await _enqueue(runtime, 1)
    [stale] = await jobs.claim(runtime.engine, worker_id="slow", limit=1, lease_seconds=30, now=clock())
    clock.advance(31)
    await jobs.reap(runtime.engine, now=clock())
    [fresh] = await jobs.claim(runtime.engine, worker_id="new", limit=1, lease_seconds=30, now=clock())
    async with db.write(runtime.engine) as conn:
        assert await jobs.finish(conn, stale, jobs.SUCCEEDED, now=clock()) is False
    async with db.write(runtime.engine) as conn:
        assert await jobs.finish(conn, fresh, jobs.FAILED, now=clock(), error_code="X") is True
    row = await _state(runtime, job_id)
    assert (row["state"], row["last_error_code"], row["attempts"]) == (jobs.FAILED, "X", 2)


async def test_a_finished_job_cannot_be_finished_again(runtime, clock):
    await _enqueue(runtime, 1)
    [job] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=clock())
    async with db.write(runtime.engine) as conn:
        assert await jobs.finish(conn, job, jobs.SUCCEEDED, now=clock())
    async with db.write(runtime.engine) as conn:
        assert not await jobs.reschedule(
            conn, job, run_at=clock(), now=clock(), reconcile=False, error_code=None, error=None
        )


async def test_claims_take_the_oldest_due_jobs_first(runtime, clock):
    first = await _enqueue(runtime, 1)
    clock.advance(1)
    second = await _enqueue(runtime, 1)
    [job] = await jobs.claim(runtime.engine, worker_id="w", limit=1, lease_seconds=30, now=clock())
    assert job.id == first[0]
    async with db.read(runtime.engine) as conn:
        queued = (
            (await conn.execute(select(tables.jobs.c.id).where(tables.jobs.c.state == "queued")))
            .scalars()
            .all()
        )
    assert queued == second


async def _enqueue_group(rt, count, group, limit, offset_seconds=0.0):
    now = rt.ctx.clock() + timedelta(seconds=offset_seconds)
    rows = [
        {
            "id": ids.new_id("job"),
            "kind": "test",
            "state": jobs.QUEUED,
            "payload": {},
            "attempts": 0,
            "max_attempts": 3,
            "run_at": now,
            "reconcile": False,
            "group_key": group,
            "group_limit": limit,
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(count)
    ]
    async with db.write(rt.engine) as conn:
        await conn.execute(tables.jobs.insert(), rows)
    return [r["id"] for r in rows]


async def test_one_groups_backlog_does_not_hold_up_another_groups_single_job(runtime, clock):
    await _enqueue_group(runtime, 10_000, "clinic-a", 4, offset_seconds=-60)
    [single] = await _enqueue_group(runtime, 1, "clinic-b", 4)
    first = await jobs.claim(runtime.engine, worker_id="w", limit=16, lease_seconds=30, now=clock())
    second = await jobs.claim(runtime.engine, worker_id="w", limit=16, lease_seconds=30, now=clock())
    claimed = first + second
    assert single in [j.id for j in claimed]
    assert sum(j.group_key == "clinic-a" for j in claimed) == 4  # never past the clinic's limit


async def test_a_full_group_gets_nothing_until_one_of_its_jobs_finishes(runtime, clock):
    await _enqueue_group(runtime, 10, "g", 2)
    running = await jobs.claim(runtime.engine, worker_id="w", limit=10, lease_seconds=30, now=clock())
    assert len(running) == 2
    assert await jobs.claim(runtime.engine, worker_id="w", limit=10, lease_seconds=30, now=clock()) == []
    async with db.write(runtime.engine) as conn:
        await jobs.finish(conn, running[0], jobs.SUCCEEDED, now=clock())
    assert len(await jobs.claim(runtime.engine, worker_id="w", limit=10, lease_seconds=30, now=clock())) == 1


async def test_deferring_a_group_holds_only_its_queued_jobs(runtime, clock):
    mine = await _enqueue_group(runtime, 3, "slow-clinic", 8)
    other = await _enqueue_group(runtime, 1, "other-clinic", 8)
    async with db.write(runtime.engine) as conn:
        await jobs.defer_group(conn, "slow-clinic", clock() + timedelta(seconds=30))
    claimed = await jobs.claim(runtime.engine, worker_id="w", limit=10, lease_seconds=30, now=clock())
    assert [j.id for j in claimed] == other
    clock.advance(31)
    later = await jobs.claim(runtime.engine, worker_id="w", limit=10, lease_seconds=30, now=clock())
    assert sorted(j.id for j in later) == sorted(mine)
