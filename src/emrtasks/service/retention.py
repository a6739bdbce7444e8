"""Housekeeping: rows that expired a day ago go (storage/retention.py); what went is logged."""

import logging

from emrtasks.service.context import Context
from emrtasks.storage import retention as stored_retention

log = logging.getLogger(__name__)


async def prune_expired(ctx: Context) -> None:
    pruned = await stored_retention.prune(ctx.engine, now=ctx.clock())
    if any(pruned.values()):
        log.info("pruned expired rows: %s", ", ".join(f"{n} {name}" for name, n in pruned.items() if n))
