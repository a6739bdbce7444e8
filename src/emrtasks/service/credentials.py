"""Credential lifecycle (docs/security.md): list clients, rotate a client secret or an access token
with an overlap, disable, enable, delete. Each change, its audit row and the announcement to every
process commit in one transaction.

Deleting keeps the rows (the tasks' history and the audit trail point at them), wipes a connection's
EMR credentials, and ends pending work: queued jobs fail with their tasks, pending deliveries stop. A
job already running records its result.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from emrtasks.domain import errors, ids
from emrtasks.service import audit, auth
from emrtasks.service.context import Context
from emrtasks.storage import credentials, db
from emrtasks.storage.db import DbConnection
from emrtasks.webhooks import events

MAX_OVERLAP_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Rotated:
    id: str
    secret: str
    previous_expires_at: datetime | None


class ListedClient(TypedDict):
    """A client as the command line and the console list it (times as ISO 8601 text)."""

    client_id: str
    name: str
    state: str
    created_at: str
    previous_secret_expires_at: str | None


class DeletedClient(TypedDict):
    client_id: str
    state: str
    jobs_ended: int


class DeletedConnection(TypedDict):
    """What deleting a connection answers (`DELETE /v1/access-token` sends it as is)."""

    connection_id: str
    state: str
    jobs_ended: int


async def list_clients(ctx: Context) -> list[ListedClient]:
    async with db.read(ctx.engine) as conn:
        found = await credentials.list_clients(conn)
    return [
        {
            "client_id": row.client_id,
            "name": row.name,
            "state": row.state,
            "created_at": events.iso(row.created_at),
            "previous_secret_expires_at": _iso(row.previous_secret_expires_at),
        }
        for row in found
    ]


async def rotate_client_secret(
    ctx: Context, origin: audit.Origin, client_id: str, overlap_seconds: float = 0
) -> Rotated:
    now = ctx.clock()
    secret = ids.new_secret("cs")
    expires = _overlap_end(now, overlap_seconds)
    async with db.write(ctx.engine) as conn:
        found = await _live_client(conn, client_id)
        await credentials.update_client(
            conn,
            client_id,
            secret_hash=ids.hash_secret(secret),
            previous_secret_hash=found.secret_hash if expires else None,
            previous_secret_expires_at=expires,
        )
        await _changed(conn, origin, "client.rotate_secret", now, client_id=client_id)
    auth.forget_all(ctx)
    return Rotated(client_id, secret, expires)


async def set_client_disabled(ctx: Context, origin: audit.Origin, client_id: str, disabled: bool) -> str:
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        await _live_client(conn, client_id)
        await credentials.update_client(conn, client_id, disabled_at=now if disabled else None)
        action = "client.disable" if disabled else "client.enable"
        await _changed(conn, origin, action, now, client_id=client_id)
    auth.forget_all(ctx)
    return credentials.DISABLED if disabled else credentials.ACTIVE


async def delete_client(ctx: Context, origin: audit.Origin, client_id: str) -> DeletedClient:
    """The client, its connections and webhook endpoints, deleted together; pending work ends."""
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        await _live_client(conn, client_id)
        await credentials.update_client(conn, client_id, deleted_at=now)
        connection_ids = await credentials.connection_ids_of(conn, client_id)
        for connection_id in connection_ids:
            await credentials.update_connection(conn, connection_id, now, deleted_at=now, credentials=None)
        endpoint_ids = await credentials.delete_endpoints(conn, client_id, now)
        ended = await credentials.end_pending_work(conn, connection_ids, endpoint_ids, now)
        targets = {"connections": str(len(connection_ids)), "jobs_ended": str(ended)}
        await _changed(conn, origin, "client.delete", now, client_id=client_id, targets=targets)
    auth.forget_all(ctx)
    return {"client_id": client_id, "state": credentials.DELETED, "jobs_ended": ended}


async def rotate_connection_token(
    ctx: Context, origin: audit.Origin, connection_id: str, overlap_seconds: float = 0
) -> Rotated:
    now = ctx.clock()
    token = ids.new_secret("at")
    expires = _overlap_end(now, overlap_seconds)
    async with db.write(ctx.engine) as conn:
        found = await _live_connection(conn, connection_id)
        await credentials.update_connection(
            conn,
            connection_id,
            now,
            token_hash=ids.hash_secret(token),
            previous_token_hash=found.token_hash if expires else None,
            previous_token_expires_at=expires,
        )
        await _changed(
            conn,
            origin,
            "connection.rotate_token",
            now,
            client_id=found.connection.client_id,
            connection_id=connection_id,
        )
    auth.forget_all(ctx)
    return Rotated(connection_id, token, expires)


async def set_connection_disabled(
    ctx: Context, origin: audit.Origin, connection_id: str, disabled: bool
) -> str:
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        found = await _live_connection(conn, connection_id)
        await credentials.update_connection(conn, connection_id, now, disabled_at=now if disabled else None)
        action = "connection.disable" if disabled else "connection.enable"
        await _changed(
            conn, origin, action, now, client_id=found.connection.client_id, connection_id=connection_id
        )
    auth.forget_all(ctx)
    return credentials.DISABLED if disabled else credentials.ACTIVE


async def delete_connection(
    ctx: Context, origin: audit.Origin, connection_id: str, *, client_id: str | None = None
) -> DeletedConnection:
    """`client_id`: only if it is this client's (a client app revoking its own clinic link)."""
    now = ctx.clock()
    async with db.write(ctx.engine) as conn:
        found = await _live_connection(conn, connection_id)
        if client_id is not None and found.connection.client_id != client_id:
            raise errors.not_found("Connection")
        await credentials.update_connection(conn, connection_id, now, deleted_at=now, credentials=None)
        ended = await credentials.end_pending_work(conn, [connection_id], [], now)
        await _changed(
            conn,
            origin,
            "connection.delete",
            now,
            client_id=found.connection.client_id,
            connection_id=connection_id,
            targets={"jobs_ended": str(ended)},
        )
    auth.forget_all(ctx)
    return {"connection_id": connection_id, "state": credentials.DELETED, "jobs_ended": ended}


async def _changed(
    conn: DbConnection,
    origin: audit.Origin,
    action: str,
    now: datetime,
    *,
    client_id: str | None = None,
    connection_id: str | None = None,
    targets: dict[str, str] | None = None,
) -> None:
    await credentials.announce(conn, now)
    ids_of = {"client_id": client_id, "connection_id": connection_id, **(targets or {})}
    await audit.record_in(
        conn, origin, action, now, targets=ids_of, client_id=client_id, connection_id=connection_id
    )


async def _live_client(conn: DbConnection, client_id: str) -> credentials.ClientCredentials:
    found = await credentials.client_credentials(conn, client_id)
    if found is None or found.state == credentials.DELETED:
        raise errors.not_found("Client")
    return found


async def _live_connection(conn: DbConnection, connection_id: str) -> credentials.ConnectionCredentials:
    """Disabled or not, but not deleted: a deleted credential stays deleted."""
    found = await _connection(conn, connection_id)
    if found is None or found.state == credentials.DELETED:
        raise errors.not_found("Connection")
    return found


async def _connection(conn: DbConnection, connection_id: str) -> credentials.ConnectionCredentials | None:
    token_hash = await credentials.token_hash_of(conn, connection_id)
    if token_hash is None:
        return None
    return await credentials.connection_by_token_hash(conn, token_hash)


def _overlap_end(now: datetime, overlap_seconds: float) -> datetime | None:
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise errors.Problem(
            400,
            "invalid_overlap",
            f"--overlap-seconds must be between 0 and {MAX_OVERLAP_SECONDS}.",
        )
    return now + timedelta(seconds=overlap_seconds) if overlap_seconds > 0 else None


def _iso(value: datetime | None) -> str | None:
    return events.iso(value) if value is not None else None


async def revoke_access_token(
    ctx: Context, origin: audit.Origin, client_id: str, access_token: str | None
) -> DeletedConnection:
    """`DELETE /v1/access-token`: a client app deletes its own clinic link, whatever the
    connection's status (a connection whose EMR login broke can be revoked too)."""
    if not access_token:
        raise errors.unauthorized(errors.INVALID_TOKEN, *errors.missing_headers(access_token=access_token))
    async with db.read(ctx.engine) as conn:
        found = await credentials.connection_by_token_hash(conn, ids.hash_secret(access_token))
    if found is None or found.state == credentials.DELETED or found.connection.client_id != client_id:
        raise errors.unauthorized(errors.INVALID_TOKEN, errors.WRONG_TOKEN)
    if found.token_hash != ids.hash_secret(access_token):
        expires = found.previous_token_expires_at
        if expires is None or ctx.clock() >= expires:
            raise errors.unauthorized(errors.INVALID_TOKEN, errors.WRONG_TOKEN)
    return await delete_connection(ctx, origin, found.connection.id, client_id=client_id)
