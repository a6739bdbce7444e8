"""Housekeeping deletes what ended more than a day ago, and nothing still in use, on both databases."""

from datetime import timedelta

from sqlalchemy import func, select

from emrtasks.domain import ids
from emrtasks.service import retention
from emrtasks.storage import db, tables
from emrtasks.storage import retention as stored_retention


async def _link_token(conn, tenant, expires_at, *, with_public_token: bool = False) -> str:
    token_id = ids.new_id("lt")
    await conn.execute(
        tables.link_tokens.insert(),
        {
            "id": token_id,
            "token_hash": token_id.ljust(64, "0"),
            "client_id": tenant.client_id,
            "user_id": "u",
            "org_id": "o",
            "tries": 0,
            "created_at": expires_at - timedelta(minutes=30),
            "expires_at": expires_at,
        },
    )
    if with_public_token:
        public_id = ids.new_id("pt")
        await conn.execute(
            tables.public_tokens.insert(),
            {
                "id": public_id,
                "token_hash": public_id.ljust(64, "0"),
                "link_token_id": token_id,
                "client_id": tenant.client_id,
                "connection_id": tenant.connection_a,
                "created_at": expires_at,
                "expires_at": expires_at + timedelta(minutes=10),
            },
        )
    return token_id


async def _ids(engine, table, column) -> set[str]:
    async with db.read(engine) as conn:
        return {row[0] for row in (await conn.execute(select(column))).all()}


async def test_expired_rows_go_a_day_after_their_end_and_live_ones_stay(runtime, tenant, clock):
    now = clock()
    async with db.write(runtime.engine) as conn:
        await _console_session(conn, now - timedelta(days=1, minutes=1))
        current = await _console_session(conn, now + timedelta(hours=1))
        await _link_token(conn, tenant, now - timedelta(days=2), with_public_token=True)
        recent = await _link_token(conn, tenant, now - timedelta(hours=2))
        live = await _link_token(conn, tenant, now + timedelta(minutes=20), with_public_token=True)
        for scope, started in (("old", now - timedelta(days=2)), ("current", now - timedelta(minutes=5))):
            await conn.execute(
                tables.rate_limits.insert(), {"scope_key": scope, "window_start": started, "used": 1}
            )
    await retention.prune_expired(runtime.ctx)
    assert await _ids(runtime.engine, tables.link_tokens, tables.link_tokens.c.id) == {recent, live}
    async with db.read(runtime.engine) as conn:
        left = (await conn.execute(select(tables.public_tokens.c.link_token_id))).scalars().all()
        assert left == [live]
        assert (await conn.execute(select(func.count()).select_from(tables.rate_limits))).scalar() == 1
    assert await _ids(runtime.engine, tables.rate_limits, tables.rate_limits.c.scope_key) == {"current"}
    assert await _ids(runtime.engine, tables.console_sessions, tables.console_sessions.c.id) == {current}


async def test_a_run_deletes_at_most_a_batch_per_table(runtime, tenant, clock, monkeypatch):
    monkeypatch.setattr(stored_retention, "BATCH", 2)
    async with db.write(runtime.engine) as conn:
        for _ in range(5):
            await _link_token(conn, tenant, clock() - timedelta(days=3))
    assert (await stored_retention.prune(runtime.engine, now=clock()))["link_tokens"] == 2
    assert len(await _ids(runtime.engine, tables.link_tokens, tables.link_tokens.c.id)) == 3


async def _console_session(conn, expires_at) -> str:
    operator_id, session_id = ids.new_id("op"), ids.new_id("cs")
    at = expires_at - timedelta(hours=8)
    await conn.execute(
        tables.operators.insert(),
        {
            "id": operator_id,
            "email": f"{operator_id}@example.com",
            "password_hash": "not a real hash",
            "role": "viewer",
            "created_at": at,
            "updated_at": at,
        },
    )
    await conn.execute(
        tables.console_sessions.insert(),
        {
            "id": session_id,
            "token_hash": session_id.ljust(64, "0"),
            "operator_id": operator_id,
            "created_at": at,
            "last_seen_at": at,
            "expires_at": expires_at,
        },
    )
    return session_id
