"""The audit trail (HIPAA 164.312(b)): one row per PHI read, accepted task, credential, webhook or
connection change and operator action: when, who (client, connection, operator), what, which ids,
from where, which request, and how it ended. Never PHI: no MRN, name or description goes in.

A change writes its row inside its own transaction (`record_in`, or `changing` around a service's
change), so the row exists exactly when the change does; a refused change leaves its row through the
group commit. A read writes its row through the group commit (`record`), batched with other writers,
and answers only after that commit: nothing is shown that is not on the trail.
"""

import contextlib
import getpass
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emrtasks.domain import errors, ids
from emrtasks.service.context import Context
from emrtasks.storage import audit as stored_audit
from emrtasks.storage import db
from emrtasks.storage.db import DbConnection

log = logging.getLogger(__name__)

CLIENT = "client"
CONNECTION = "connection"
OPERATOR = "operator"
LINK_USER = "link_user"  # the person at the Link page, named by the client's own user_id (never PII)

SUCCESS = "success"
DENIED = "denied"
NOT_FOUND = "not_found"
FAILED = "failed"


@dataclass(frozen=True)
class Origin:
    """Who acts and from where: the API caller (client or connection) or an operator at the CLI."""

    actor_type: str
    actor_id: str | None
    client_id: str | None = None
    connection_id: str | None = None
    source_address: str | None = None
    request_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def as_client(
    client_id: str | None, source_address: str | None = None, request_id: str | None = None
) -> Origin:
    """A client app calling with its own credentials."""
    return Origin(CLIENT, client_id, client_id, None, source_address, request_id)


def operator(request_id: str | None = None) -> Origin:
    """The CLI's operator: the OS user and host (what an operator's session can tell of itself)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    return Origin(
        actor_type=OPERATOR,
        actor_id=f"cli:{user}"[:255],
        source_address=f"cli@{socket.gethostname()}"[:64],
        request_id=request_id or ids.new_id("req"),
    )


def row(
    origin: Origin,
    action: str,
    now: datetime,
    *,
    targets: Mapping[str, str | None] | None = None,
    outcome: str = SUCCESS,
    client_id: str | None = None,
    connection_id: str | None = None,
) -> stored_audit.AuditRow:
    return stored_audit.AuditRow(
        id=ids.new_id("aud"),
        at=now,
        actor_type=origin.actor_type,
        actor_id=origin.actor_id,
        client_id=client_id or origin.client_id,
        connection_id=connection_id or origin.connection_id,
        action=action,
        targets={key: value for key, value in (targets or {}).items() if value is not None},
        source_address=origin.source_address,
        request_id=origin.request_id,
        outcome=outcome,
    )


async def record_in(conn: DbConnection, origin: Origin, action: str, now: datetime, **values: Any) -> None:
    """Inside the transaction of the work recorded: the row commits with it, or not at all."""
    await stored_audit.insert_row(conn, row(origin, action, now, **values))


async def record(ctx: Context, origin: Origin, action: str, **values: Any) -> None:
    """Through the group commit (durable), batched with every other writer's work."""
    entry = row(origin, action, ctx.clock(), **values)

    async def work(conn: DbConnection) -> None:
        await stored_audit.insert_row(conn, entry)

    await ctx.writer.run(work)


def outcome_of(problem: errors.Problem) -> str:
    if problem.status == 404:
        return NOT_FOUND
    return DENIED if problem.status in (401, 403) else FAILED


@dataclass
class Change:
    """The audit row of one change, written by the service inside the change's own transaction."""

    origin: Origin
    action: str
    targets: dict[str, str | None]
    written: bool = False

    async def write(
        self, conn: DbConnection, now: datetime, *, outcome: str = SUCCESS, **values: Any
    ) -> None:
        await record_in(conn, self.origin, self.action, now, targets=self.targets, outcome=outcome, **values)
        self.written = True


@contextlib.asynccontextmanager
async def changing(
    ctx: Context, origin: Origin, action: str, targets: Mapping[str, str | None] | None = None
) -> AsyncIterator[Change]:
    """Around a service's change: the body writes the row in its transaction (`Change.write`), so the
    row commits with the change or not at all. A refused change (a Problem) rolls its transaction
    back, so its row, with how it ended, goes through the group commit before the answer."""
    change = Change(origin, action, dict(targets or {}))
    try:
        yield change
    except errors.Problem as problem:
        await record(ctx, origin, action, targets=change.targets, outcome=outcome_of(problem))
        raise
    if not change.written:  # a path that committed without its row: the trail still gets one
        log.error("audit: %s finished without writing its row in its transaction", action)
        await record(ctx, origin, action, targets=change.targets)


@contextlib.asynccontextmanager
async def recorded(
    ctx: Context, origin: Origin, action: str, targets: Mapping[str, str | None] | None = None
) -> AsyncIterator[dict[str, str | None]]:
    """Around a read of patient data: its row, with how it ended, is committed before the answer."""
    found: dict[str, str | None] = dict(targets or {})
    try:
        yield found
    except errors.Problem as problem:
        await record(ctx, origin, action, targets=found, outcome=outcome_of(problem))
        raise
    await record(ctx, origin, action, targets=found)


def safe_id(value: str | None) -> str | None:
    """An id as given by a caller, if it could be one of ours (anything else is not kept)."""
    if value is None:
        return None
    return value if ids.plausible(value) else "(invalid)"


async def list_rows(
    ctx: Context, *, since: datetime | None, client_id: str | None, action: str | None, limit: int
) -> list[stored_audit.AuditRow]:
    async with db.read(ctx.engine) as conn:
        return await stored_audit.list_rows(
            conn, since=since, client_id=client_id, action=action, limit=limit
        )
