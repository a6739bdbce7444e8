"""Group commit: many callers' writes in one transaction, each answered after the commit, and one
caller's failure kept to that caller."""

import asyncio
from datetime import UTC, datetime

from sqlalchemy import event, func, insert, select

from emrtasks.storage import db, tables


async def _client(conn, client_id):
    now = datetime.now(UTC)
    await conn.execute(insert(tables.clients).values(id=client_id, name="n", secret_hash="h", created_at=now))
    return client_id


async def test_concurrent_writes_share_transactions_and_all_commit(runtime):
    commits = []
    event.listen(runtime.engine.sync_engine, "commit", lambda conn: commits.append(1))
    writer = db.GroupCommitter(runtime.engine)
    ids = await asyncio.gather(*(writer.run(lambda c, i=i: _client(c, f"ci_{i}")) for i in range(200)))
    assert ids == [f"ci_{i}" for i in range(200)]
    async with db.read(runtime.engine) as conn:
        assert (await conn.execute(select(func.count()).select_from(tables.clients))).scalar() == 200
    assert len(commits) < 100  # batched: far fewer commits than writes


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
