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
