"""The sandbox EMR's own store: the tasks it holds per connection, each with its creation marker."""

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.storage import db
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import sandbox_emr_tasks

_INSERT = db.hot(insert(sandbox_emr_tasks))  # built once: every sandbox create runs it


class SandboxStore:
    """Implements `emr.sandbox.Store` on our database; each call is its own transaction, like a remote EMR."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = db.GroupCommitter(engine, durable=False)  # a test EMR

    async def insert_task(
        self,
        connection_id: str,
        emr_task_id: str,
        marker: str,
        record: dict[str, Any],
        now: datetime,
    ) -> None:
        values = {
            "id": emr_task_id,
            "connection_id": connection_id,
            "marker": marker,
            "record": record,
            "created_at": now,
        }

        async def work(conn: DbConnection) -> None:
            await conn.execute(_INSERT, values)

        await self._writer.run(work)

    async def list_tasks(
        self, connection_id: str, marker: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        t = sandbox_emr_tasks.c
        query = select(t.id, t.marker, t.record, t.created_at).where(t.connection_id == connection_id)
        if marker is not None:
            query = query.where(t.marker == marker)
        query = query.order_by(t.created_at, t.id).limit(limit)
        async with db.read(self._engine) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [dict(r) for r in rows]
