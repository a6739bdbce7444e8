"""Vendors' call budgets, shared by every process: one row per scope, counted in fixed windows.

A fixed window starting on the hour (DrChrono) or the minute (eClinicalWorks) is how those vendors
count, so it spends exactly what they allow; a token bucket would refill mid-window and overrun it.
Taking a call is one statement (an upsert that counts only while the window has room), so
concurrent takers on PostgreSQL queue on the row and never grant more than the budget.
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from emrtasks.storage import db
from emrtasks.storage.tables import UTCDateTime

# A window older than the stored one (a process whose clock lags) counts in the stored one.
_TAKE = db.hot(
    text(
        """
        INSERT INTO rate_limits (scope_key, window_start, used) VALUES (:scope_key, :window_start, 1)
        ON CONFLICT (scope_key) DO UPDATE SET
            used = CASE WHEN rate_limits.window_start < excluded.window_start
                        THEN 1 ELSE rate_limits.used + 1 END,
            window_start = CASE WHEN rate_limits.window_start < excluded.window_start
                                THEN excluded.window_start ELSE rate_limits.window_start END
        WHERE rate_limits.window_start < excluded.window_start OR rate_limits.used < :calls
        RETURNING used
        """
    )
    .bindparams(bindparam("window_start", type_=UTCDateTime), bindparam("calls", type_=Integer))
    .columns(used=Integer)
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


async def take(
    engine: AsyncEngine, scope_key: str, *, calls: int, per_seconds: float, now: datetime
) -> float | None:
    """Take one call from the scope's budget: None if granted, else the seconds until it refills."""
    start = window_start(now, per_seconds)
    parameters = {"scope_key": scope_key, "window_start": start, "calls": calls}
    async with db.autocommit(engine) as conn:  # a power cut may forget a few counts (SQLite)
        granted = (await conn.execute(_TAKE, parameters)).first()
    if granted is not None:
        return None
    return max((start + timedelta(seconds=per_seconds) - now).total_seconds(), 0.001)


def window_start(now: datetime, per_seconds: float) -> datetime:
    """The start of the window `now` falls in: windows start on multiples of `per_seconds` since the
    epoch, so hourly ones on the hour and minutely ones on the minute (UTC)."""
    elapsed = (now - _EPOCH) // _MICROSECOND  # whole numbers: every process finds the same start
    return _EPOCH + _MICROSECOND * (elapsed - elapsed % round(per_seconds * 1_000_000))
