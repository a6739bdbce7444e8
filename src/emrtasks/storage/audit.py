"""The audit trail's rows: written inside the transaction of the work they record, listed for operators."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from emrtasks.storage import db
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import audit_events


async def insert_row(conn: DbConnection, row: Mapping[str, Any]) -> None:
    await conn.execute(_INSERT, dict(row))


async def insert_rows(conn: DbConnection, rows: list[dict[str, Any]]) -> None:
    """Several rows in one statement (reads batched by the group commit)."""
    if rows:
        await conn.execute(insert(audit_events), rows)


# Built once (every accepted task writes one; see jobs.py).
_INSERT = db.hot(insert(audit_events))


async def list_rows(
    conn: DbConnection,
    *,
    since: datetime | None,
    client_id: str | None,
    action: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.at, audit_events.c.id).limit(limit)
    if since is not None:
        query = query.where(audit_events.c.at >= since)
    if client_id is not None:
        query = query.where(audit_events.c.client_id == client_id)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    return [dict(row) for row in (await conn.execute(query)).mappings().all()]
