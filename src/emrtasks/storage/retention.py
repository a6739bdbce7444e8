"""What expires and then only takes room: Link's tokens, console sessions, and counting windows.

Each is kept a day past its end (a support question about a failed link still finds its row), then
deleted by the worker's housekeeping, a bounded number of rows per table per run so no transaction
grows with the backlog. Idempotency records have their own pruning (storage/idempotency.py); the
audit trail is never pruned here (its retention is the deployment's policy: docs/security.md).
"""

from datetime import datetime, timedelta

from sqlalchemy import Delete, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.storage import db
from emrtasks.storage.tables import console_sessions, link_tokens, public_tokens, rate_limits

KEPT_AFTER_END = timedelta(days=1)
BATCH = 5_000


def _expired_public_tokens(cutoff: datetime) -> Delete:
    chosen = select(public_tokens.c.id).where(public_tokens.c.expires_at < cutoff).limit(BATCH)
    return delete(public_tokens).where(public_tokens.c.id.in_(chosen.scalar_subquery()))


def _expired_link_tokens(cutoff: datetime) -> Delete:
    referenced = exists().where(public_tokens.c.link_token_id == link_tokens.c.id)
    chosen = select(link_tokens.c.id).where(link_tokens.c.expires_at < cutoff, ~referenced).limit(BATCH)
    return delete(link_tokens).where(link_tokens.c.id.in_(chosen.scalar_subquery()))


def _ended_console_sessions(cutoff: datetime) -> Delete:
    chosen = select(console_sessions.c.id).where(console_sessions.c.expires_at < cutoff).limit(BATCH)
    return delete(console_sessions).where(console_sessions.c.id.in_(chosen.scalar_subquery()))


def _past_windows(cutoff: datetime) -> Delete:
    # The longest counting window is an hour: a scope last counted a day ago starts afresh anyway.
    chosen = select(rate_limits.c.scope_key).where(rate_limits.c.window_start < cutoff).limit(BATCH)
    return delete(rate_limits).where(rate_limits.c.scope_key.in_(chosen.scalar_subquery()))


async def prune(engine: AsyncEngine, *, now: datetime) -> dict[str, int]:
    """Delete what ended more than a day before `now`; how many rows of each table went."""
    cutoff = now - KEPT_AFTER_END
    pruned: dict[str, int] = {}
    steps = (
        ("public_tokens", _expired_public_tokens),  # before the link tokens they point to
        ("link_tokens", _expired_link_tokens),
        ("console_sessions", _ended_console_sessions),
        ("rate_limits", _past_windows),
    )
    for name, statement in steps:
        async with db.write(engine, durable=False) as conn:  # a crash undoes it; the next run redoes it
            pruned[name] = int((await conn.execute(statement(cutoff))).rowcount)
    return pruned
