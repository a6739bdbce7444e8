"""The audit trail's rows: written inside the transaction of the work they record, listed for operators."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from emrtasks.storage import db, rows
from emrtasks.storage.db import DbConnection
from emrtasks.storage.tables import audit_events


@dataclass(frozen=True)
class AuditRow:
    """One row of the trail: when, who, what, which ids, from where, which request, how it ended."""

    id: str
    at: datetime
    actor_type: str
    actor_id: str | None
    client_id: str | None
    connection_id: str | None
    action: str
    targets: dict[str, str]
    source_address: str | None
    request_id: str | None
    outcome: str

    def values(self) -> dict[str, object]:
        """The row's columns, as the insert takes them."""
        return {
            "id": self.id,
            "at": self.at,
            "actor_type": self.actor_type,
            "actor_id": self.actor_id,
            "client_id": self.client_id,
            "connection_id": self.connection_id,
            "action": self.action,
            "targets": self.targets,
            "source_address": self.source_address,
            "request_id": self.request_id,
            "outcome": self.outcome,
        }


async def insert_row(conn: DbConnection, row: AuditRow) -> None:
    await conn.execute(_INSERT, row.values())


# Built once (every accepted task writes one; see jobs.py).
_INSERT = db.hot(insert(audit_events))


async def list_rows(
    conn: DbConnection,
    *,
    since: datetime | None,
    client_id: str | None,
    action: str | None,
    limit: int,
) -> list[AuditRow]:
    query = select(audit_events).order_by(audit_events.c.at, audit_events.c.id).limit(limit)
    if since is not None:
        query = query.where(audit_events.c.at >= since)
    if client_id is not None:
        query = query.where(audit_events.c.client_id == client_id)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    return rows.build_all(AuditRow, (await conn.execute(query)).mappings().all())
