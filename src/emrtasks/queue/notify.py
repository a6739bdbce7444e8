"""Wake-ups across processes on PostgreSQL: enqueues NOTIFY on commit, workers LISTEN.

A notification reaches only the connections listening at that moment, so the worker keeps its
fallback poll, and a listener that reconnects wakes its worker once for whatever it missed
(https://www.postgresql.org/docs/current/sql-notify.html).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import make_url, text

from emrtasks.storage import db, steps
from emrtasks.storage.db import DbConnection

CHANNEL = steps.JOBS_CHANNEL
log = logging.getLogger("emrtasks.worker")


async def notify(conn: DbConnection) -> None:
    """Inside an enqueueing transaction: listeners hear it when (and only if) it commits. Once per
    transaction is enough (PostgreSQL folds repeats anyway), which saves a round trip per job when a
    group commit enqueues many."""
    if conn.dialect.name != "postgresql" or conn.notified:
        return
    conn.notified = True
    await conn.execute(_NOTIFY)


_NOTIFY = db.hot(text(f"SELECT pg_notify('{CHANNEL}', '')"))


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """One dedicated connection that LISTENs and calls `on_notify`; reconnects with backoff."""

    def __init__(self, database_url: str, on_notify: Callable[[], None], channel: str = CHANNEL) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._on_notify = on_notify
        self._channel = channel

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await self._listen_until_lost(stop)
                delay = 0.5
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "%s notifications unavailable (%s); polling until they return",
                    self._channel,
                    type(exc).__name__,
                )
            if not stop.is_set():
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 10.0)

    async def _listen_until_lost(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, self._heard)
            self._on_notify()  # anything enqueued while we were not listening
            waits = {asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())}
            _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        finally:
            if not conn.is_closed():
                await conn.close(timeout=5)

    def _heard(self, *_args: Any) -> None:
        self._on_notify()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
