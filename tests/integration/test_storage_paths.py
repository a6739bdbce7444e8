"""The two fast paths under the storage modules: SQLite files run inline on the event loop's thread,
PostgreSQL's hot statements run on asyncpg directly (storage/pg.py). Both must behave like
SQLAlchemy's own execution: same rows, same exceptions, same transactions."""

import asyncio
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy import exc as sa_exc

from emrtasks.domain import errors
from emrtasks.storage import db
from emrtasks.storage.tables import clients

_INSERT = db.hot(insert(clients))
_BY_ID = db.hot(select(clients.c.id).where(clients.c.id == bindparam("b_id")))
_BY_IDS = db.hot(
    select(clients.c.id, clients.c.name, clients.c.created_at)
    .where(clients.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(clients.c.id)
)


def _client(client_id: str) -> dict[str, object]:
    return {"id": client_id, "name": f"n-{client_id}", "secret_hash": "h", "created_at": datetime.now(UTC)}


async def test_a_hot_statement_reads_what_sqlalchemy_reads(runtime):
    async with db.write(runtime.engine) as conn:
        for client_id in ("c1", "c2", "c3"):
            assert (await conn.execute(_INSERT, _client(client_id))).rowcount == 1
    plain = select(clients.c.id, clients.c.name, clients.c.created_at).order_by(clients.c.id)
    async with db.read(runtime.engine) as conn:
        hot = (await conn.execute(_BY_IDS, {"b_ids": ["c1", "c3"]})).all()
        rows = [r for r in (await conn.execute(plain)).all() if r.id in ("c1", "c3")]
        mapped = (await conn.execute(_BY_IDS, {"b_ids": ["c2"]})).mappings().first()
        names = list((await conn.execute(_BY_IDS, {"b_ids": ["c1", "c2"]})).scalars())
        none = (await conn.execute(_BY_IDS, {"b_ids": ["nobody"]})).first()
    assert [tuple(r) for r in hot] == [tuple(r) for r in rows]
    assert hot[0].name == "n-c1"
    assert hot[0].created_at.tzinfo is not None  # the UTC type's result processing ran
    assert mapped is not None and dict(mapped)["name"] == "n-c2"
    assert names == ["c1", "c2"]
    assert none is None


async def test_a_lost_database_leaves_a_transaction_as_the_domains_outage_with_the_drivers_cause(runtime):
    lost = sa_exc.OperationalError("SELECT 1", None, ConnectionResetError("the server went away"))
    for transaction in (db.write, db.read):
        with pytest.raises(errors.Outage) as caught:
            async with transaction(runtime.engine):
                raise lost
        assert caught.value.__cause__ is lost


async def test_a_statement_error_that_is_no_outage_leaves_a_transaction_unchanged(runtime):
    with pytest.raises(sa_exc.IntegrityError):
        async with db.write(runtime.engine) as conn:
            await conn.execute(_INSERT, _client("twice"))
            await conn.execute(_INSERT, _client("twice"))
    with pytest.raises(KeyError):
        async with db.read(runtime.engine):
            raise KeyError("not the database's fault")


async def test_a_duplicate_through_a_hot_statement_is_an_integrity_error_and_rolls_back(runtime):
    async with db.write(runtime.engine) as conn:
        await conn.execute(_INSERT, _client("dup"))
    with pytest.raises(sa_exc.IntegrityError):
        async with db.write(runtime.engine) as conn:
            await conn.execute(_INSERT, _client("other"))
            await conn.execute(_INSERT, _client("dup"))
    async with db.read(runtime.engine) as conn:
        found = (await conn.execute(_BY_IDS, {"b_ids": ["dup", "other"]})).scalars().all()
    assert list(found) == ["dup"]  # "other" went with the failed transaction


async def test_an_error_inside_a_write_rolls_it_back(runtime):
    with pytest.raises(RuntimeError):
        async with db.write(runtime.engine) as conn:
            await conn.execute(_INSERT, _client("gone"))
            raise RuntimeError("the caller failed")
    async with db.read(runtime.engine) as conn:
        assert (await conn.execute(_BY_IDS, {"b_ids": ["gone"]})).first() is None


async def test_a_sqlite_writer_waits_for_another_process_lock_without_holding_the_loop(runtime, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's file lock")
    path = db_url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, as far as SQLite can tell
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> float:
        started = time.monotonic()
        async with db.write(runtime.engine) as conn:
            await conn.execute(_INSERT, _client("after-the-lock"))
        return time.monotonic() - started

    beat = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()
    other.execute("COMMIT")
    waited = await asyncio.wait_for(writing, 5)
    beat.cancel()
    other.close()
    assert waited >= 0.3
    assert ticks >= 15  # the loop kept running while the writer waited
    async with db.read(runtime.engine) as conn:
        assert (await conn.execute(_BY_IDS, {"b_ids": ["after-the-lock"]})).first() is not None


async def test_postgresql_url_options_reach_the_direct_pool(db_url, runtime):
    """`?ssl=disable` and the like are read as SQLAlchemy's asyncpg dialect reads them, not sent to the
    server as settings (which made every request fail)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL URL options")
    engine = db.create_engine(f"{db_url}?ssl=disable&command_timeout=30")
    try:
        async with db.read(engine) as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose(engine)


async def test_a_hot_statement_missing_a_parameter_is_refused_not_bound_as_null(runtime):
    async with db.read(runtime.engine) as conn:
        for statement in (_BY_ID, _BY_IDS):
            with pytest.raises((ValueError, sa_exc.StatementError)):
                await conn.execute(statement, {"unrelated": 1})
