"""The connection's EMR as clients may browse it: requirements, users, phone call types, patients."""

import math
from typing import Any

from emrtasks.domain import errors, outcomes
from emrtasks.domain import tasks as domain_tasks
from emrtasks.service import admin
from emrtasks.service.context import Context


def requirements(ctx: Context, connection: domain_tasks.Connection) -> dict[str, Any]:
    return ctx.adapters.for_connection(connection).rules.describe()


async def users(ctx: Context, connection: domain_tasks.Connection) -> list[dict[str, str]]:
    known = await _directory(ctx, connection)
    return [{"id": u.id, "name": u.name, "kind": u.kind} for u in known.users.values()]


async def call_types(ctx: Context, connection: domain_tasks.Connection) -> list[dict[str, str]]:
    known = await _directory(ctx, connection)
    return [{"id": c.id, "name": c.name} for c in known.call_types.values()]


async def patients(
    ctx: Context, connection: domain_tasks.Connection, mrn: str | None, page: int, page_size: int
) -> tuple[list[dict[str, str]], dict[str, int]]:
    adapter = ctx.adapters.for_connection(connection)
    try:
        found = await adapter.search_patients(mrn or None)
    except outcomes.AdapterError as exc:
        if exc.outcome.code == outcomes.LOGIN_REQUIRED:
            await admin.mark_login_required(ctx, connection)
            raise errors.login_required() from exc
        message = f"The EMR could not be searched: {exc.outcome.description}"
        raise errors.unavailable(message, _retry_after(exc.outcome)) from exc
    start = (page - 1) * page_size
    chosen = [p.as_public() for p in found[start : start + page_size]]
    return chosen, pagination(len(found), page, page_size)


def pagination(total: int, page: int, page_size: int) -> dict[str, int]:
    return {
        "current_page": page,
        "total_pages": max(1, -(-total // page_size)),
        "total_count": total,
        "page_size": page_size,
    }


async def _directory(ctx: Context, connection: domain_tasks.Connection) -> Any:
    try:
        return await ctx.adapters.directory(connection)
    except outcomes.AdapterError as exc:
        if exc.outcome.code == outcomes.LOGIN_REQUIRED:
            await admin.mark_login_required(ctx, connection)
            raise errors.login_required() from exc
        message = f"The EMR's directory could not be read: {exc.outcome.description}"
        raise errors.unavailable(message, _retry_after(exc.outcome)) from exc


def _retry_after(outcome: outcomes.Outcome) -> int:
    """Whole seconds a client should wait: the EMR's own word (a spent call budget, a Retry-After)."""
    wait = outcome.retry_after if isinstance(outcome, outcomes.RetryLater) else None
    return max(1, math.ceil(wait)) if wait else 1
