"""Readiness: can we reach the database right now."""

from emrtasks.domain import errors
from emrtasks.service.context import Context
from emrtasks.storage import db


async def check_database(ctx: Context) -> None:
    try:
        await db.ping(ctx.engine)
    except Exception as exc:
        raise errors.unavailable("The database cannot be reached.", 2) from exc
