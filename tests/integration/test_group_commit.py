"""Group commit: many callers' writes in one transaction, each answered after the commit, and one
caller's failure kept to that caller."""

import asyncio
from datetime import UTC, datetime

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, insert, select

from emrtasks.domain import errors
from emrtasks.storage import db, tables


async def _client(conn, client_id):
    now = datetime.now(UTC)
    await conn.execute(insert(tables.clients).values(id=client_id, name="n", secret_hash="h", created_at=now))
    return client_id


async def test_concurrent_writes_share_transactions_and_all_commit(runtime, monkeypatch):
    commits = []
    write = db.write

    def counting(engine, **options):  # every transaction of the committer opens here
        commits.append(1)
        return write(engine, **options)

    monkeypatch.setattr(db, "write", counting)
    writer = db.GroupCommitter(runtime.engine)
    ids = await asyncio.gather(*(writer.run(lambda c, i=i: _client(c, f"ci_{i}")) for i in range(200)))
    assert ids == [f"ci_{i}" for i in range(200)]
    async with db.read(runtime.engine) as conn:
        assert (await conn.execute(select(func.count()).select_from(tables.clients))).scalar() == 200
    assert 1 <= len(commits) < 100  # batched: far fewer commits than writes


async def test_one_failing_write_fails_only_its_caller(runtime):
    writer = db.GroupCommitter(runtime.engine)

    async def broken(conn):
        await _client(conn, "ci_dup")
        await _client(conn, "ci_dup")  # primary key violation

    results = await asyncio.gather(
        *(writer.run(lambda c, i=i: _client(c, f"ci_ok_{i}")) for i in range(20)),
        writer.run(broken),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, Exception)] == [results[-1]]
    async with db.read(runtime.engine) as conn:
        stored = set((await conn.execute(select(tables.clients.c.id))).scalars())
    assert stored == {f"ci_ok_{i}" for i in range(20)}


async def test_a_write_is_answered_only_after_its_commit(runtime):
    writer = db.GroupCommitter(runtime.engine)
    await writer.run(lambda c: _client(c, "ci_seen"))
    async with db.read(runtime.engine) as conn:  # another connection sees it at once
        assert (await conn.execute(select(tables.clients.c.id))).scalars().all() == ["ci_seen"]


async def test_a_batch_failing_because_the_database_is_out_of_reach_fails_every_caller_at_once(runtime):
    """Not one transaction per caller afterwards: each would wait out the outage again."""
    writer = db.GroupCommitter(runtime.engine)
    calls = []

    async def unreachable(conn, i):
        calls.append(i)
        raise sa_exc.OperationalError("SELECT 1", None, ConnectionRefusedError("the database is down"))

    results = await asyncio.gather(
        *(writer.run(lambda c, i=i: unreachable(c, i)) for i in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, errors.Outage) for r in results)
    assert all(isinstance(r.__cause__, sa_exc.OperationalError) for r in results)
    assert calls == [0]  # the batch stopped at the first, and no work was run again alone


class _Deadlock(Exception):
    sqlstate = "40P01"  # what asyncpg's DeadlockDetectedError carries


async def test_a_write_that_loses_a_deadlock_alone_is_run_again_and_commits(runtime):
    writer = db.GroupCommitter(runtime.engine)
    runs = []

    async def loses_once(conn):
        runs.append(1)
        await _client(conn, "ci_retried")
        if len(runs) <= 2:  # in its batch, then alone the first time
            raise sa_exc.DBAPIError("UPDATE jobs", None, _Deadlock("deadlock detected"))
        return "done"

    assert await writer.run(loses_once) == "done"
    assert len(runs) == 3
    async with db.read(runtime.engine) as conn:
        assert (await conn.execute(select(tables.clients.c.id))).scalars().all() == ["ci_retried"]


async def test_a_write_that_keeps_losing_is_contention_for_its_caller_alone(runtime):
    writer = db.GroupCommitter(runtime.engine)

    async def always_loses(conn):
        raise sa_exc.DBAPIError("UPDATE jobs", None, _Deadlock("deadlock detected"))

    lost, fine = await asyncio.gather(
        writer.run(always_loses), writer.run(lambda c: _client(c, "ci_fine")), return_exceptions=True
    )
    assert isinstance(lost, errors.Contention) and not isinstance(lost, errors.Outage)
    assert fine == "ci_fine"


async def test_a_real_deadlock_on_postgresql_is_contention_and_runs_again(runtime):
    """Two transactions lock two rows in opposite orders: PostgreSQL fails one of them (40P01)."""
    if runtime.engine.dialect.name != "postgresql":
        return  # SQLite lets one writer in at a time: it cannot deadlock
    async with db.write(runtime.engine) as conn:
        await _client(conn, "ci_a")
        await _client(conn, "ci_b")
    both_hold_one = asyncio.Barrier(2)

    async def lock(first, second, barrier=None):
        async with db.write(runtime.engine) as conn:
            for client_id in (first, second):
                await conn.execute(
                    tables.clients.update().where(tables.clients.c.id == client_id).values(name=first)
                )
                if barrier is not None and client_id == first:
                    await barrier.wait()
        return first

    results = await asyncio.wait_for(
        asyncio.gather(
            lock("ci_a", "ci_b", both_hold_one), lock("ci_b", "ci_a", both_hold_one), return_exceptions=True
        ),
        30,
    )
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(lost) == 1 and isinstance(lost[0], errors.Contention), results
    assert await db.retry_contention(lambda: lock("ci_a", "ci_b")) == "ci_a"  # alone, it commits
