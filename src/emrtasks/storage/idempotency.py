"""Idempotency-Key records: claimed in flight before the work, completed with the response in the work's
own transaction, released when the request is refused, pruned when expired."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.storage import db, rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import idempotency_keys

IN_FLIGHT = "in_flight"
COMPLETED = "completed"


@dataclass(frozen=True)
class KeyRecord:
    """An Idempotency-Key held: in flight, or completed with the answer it gave (`response`, JSON)."""

    id: str
    client_id: str
    connection_id: str
    key: str
    fingerprint: str
    state: str
    status_code: int | None
    response: str | None
    created_at: datetime
    expires_at: datetime


async def claim(
    engine: AsyncEngine,
    *,
    record_id: str,
    client_id: str,
    connection_id: str,
    key: str,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
) -> KeyRecord | None:
    """Take the key for this request (None), or return the record that already holds it."""
    try:
        async with db.write(engine) as conn:
            await conn.execute(
                insert(idempotency_keys).values(
                    id=record_id,
                    client_id=client_id,
                    connection_id=connection_id,
                    key=key,
                    fingerprint=fingerprint,
                    state=IN_FLIGHT,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return None
    except IntegrityError:
        async with db.read(engine) as conn:
            found = await _find(conn, client_id, connection_id, key)
        if found is None:  # released between our insert and this read: try once more
            return await claim(
                engine,
                record_id=record_id,
                client_id=client_id,
                connection_id=connection_id,
                key=key,
                fingerprint=fingerprint,
                now=now,
                expires_at=expires_at,
            )
        return found


class ClaimLost(Exception):
    """The in-flight claim was taken over (its holder was slow past the abandonment time)."""


async def complete(conn: DbConnection, record_id: str, status_code: int, response: str) -> None:
    """Inside the transaction that does the work, so the record and the work commit together; if the
    claim is no longer ours, ClaimLost rolls the work back: another request owns the key now."""
    result = await conn.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.id == record_id, idempotency_keys.c.state == IN_FLIGHT)
        .values(state=COMPLETED, status_code=status_code, response=response)
    )
    if result.rowcount != 1:
        raise ClaimLost(record_id)


async def release(engine: AsyncEngine, record_id: str) -> None:
    """Forget an in-flight claim whose request was refused: refusals are not stored."""
    async with db.write(engine) as conn:
        await conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.id == record_id, idempotency_keys.c.state == IN_FLIGHT
            )
        )


async def take_over(engine: AsyncEngine, record_id: str, *, abandoned_before: datetime) -> bool:
    """Delete an in-flight claim left by a process that died; True if it was there to delete."""
    async with db.write(engine) as conn:
        result = await conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.id == record_id,
                idempotency_keys.c.state == IN_FLIGHT,
                idempotency_keys.c.created_at < abandoned_before,
            )
        )
    return bool(result.rowcount)


async def prune(engine: AsyncEngine, *, now: datetime) -> int:
    async with db.write(engine) as conn:
        result = await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at < now))
    return int(result.rowcount)


async def _find(conn: DbConnection, client_id: str, connection_id: str, key: str) -> KeyRecord | None:
    query = select(idempotency_keys).where(
        idempotency_keys.c.client_id == client_id,
        idempotency_keys.c.connection_id == connection_id,
        idempotency_keys.c.key == key,
    )
    return rows.first(KeyRecord, (await conn.execute(query)).mappings().first())
