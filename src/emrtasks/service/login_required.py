"""A connection's EMR login broke: the connection turns `login_required` and its client is told once,
by a `login_required` event in its event log and to its webhooks (the same outbox as task events).

Once per break: only the caller whose update moved the connection from active to login_required
writes the event, in the same transaction; a second process noticing at the same moment finds the
connection already changed (on PostgreSQL its update waits for the first and then matches no row)."""

from datetime import datetime

from emrtasks.domain import ids
from emrtasks.service import webhooks
from emrtasks.service.context import Context
from emrtasks.storage import connections
from emrtasks.storage import events as stored_events
from emrtasks.storage.db import DbConnection
from emrtasks.webhooks import events


async def record(ctx: Context, conn: DbConnection, connection_id: str, now: datetime) -> bool:
    """Inside a write transaction: mark the connection and write its event; False if already broken."""
    if not await connections.break_login(conn, connection_id, now):
        return False
    found = await connections.get_connection(conn, connection_id)
    if found is None:
        return False
    event_id = ids.new_id("evt")
    body = events.envelope(
        event_id=event_id,
        event_type=events.LOGIN_REQUIRED,
        reference_id=found.reference_id,
        job_id=None,
        created=now,
        data=events.login_required_data(found.id, found.reference_id, found.emr),
    )
    await stored_events.insert_event(
        conn,
        event_id=event_id,
        client_id=found.client_id,
        connection_id=found.id,
        event_type=events.LOGIN_REQUIRED,
        job_id=None,
        task_id=None,
        body=events.serialize(body),
        now=now,
    )
    await webhooks.fan_out(ctx, conn, found.client_id, event_id, now)
    return True
