"""The engine and its transactions, whatever the database: `read`, `write`, the group commit.

`create_engine` makes SQLAlchemy's async engine for a URL. The transactions `read` and `write` open
run on the fastest path each database allows: a SQLite file inline on the event loop
(storage/sqlite.py), PostgreSQL on an asyncpg pool of its own (storage/pg.py), anything else
(a `:memory:` SQLite) through SQLAlchemy. Statements registered with `hot` run straight on the
driver (storage/direct.py). Every connection offers `execute` and `dialect` (`Connection`).
A database out of reach leaves these functions as the domain's `errors.Outage`, whatever the driver.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import exc, text
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from emrtasks.domain import errors
from emrtasks.storage import direct, pg, sqlite

hot = direct.hot  # mark a statement built once for the driver-direct path (storage/direct.py)

T = TypeVar("T")


class Connection(Protocol):
    """What the storage modules use of a connection: an `AsyncConnection`, an inline SQLite one or
    a PostgreSQL one of ours."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]: ...


def create_engine(url: str, *, pool_size: int = 10, synchronous: str = "FULL") -> AsyncEngine:
    if url.startswith("sqlite"):
        return sqlite.create_engine(url, synchronous, pool_size)
    # hide_parameters: statement errors must never carry patient data into logs.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,  # a fixed pool: no connections opened and closed under load
        pool_timeout=60,
        # No ping before each use: it cost a round trip per transaction. A statement that finds
        # its connection closed (a restart) fails once with an outage (503) and renews the pool.
        pool_pre_ping=False,
        hide_parameters=True,
    )


async def dispose(engine: AsyncEngine) -> None:
    """Close every pooled connection: SQLAlchemy's, the inline SQLite ones, asyncpg's."""
    inline = sqlite.inline(engine)
    if inline is not None:
        inline.engine.dispose()
    if engine.dialect.name == "postgresql":
        await pg.dispose(engine)
    await engine.dispose()


@asynccontextmanager
async def write(engine: AsyncEngine, *, durable: bool = True) -> AsyncIterator[Connection]:
    """A transaction that will write: committed on exit, rolled back on error. `durable=False` (SQLite)
    lets the commit skip the fsync: for writes that a crash may undo because a retry redoes them.

    On SQLite, writers of one process take turns on an asyncio lock first: SQLite lets one writer
    in at a time anyway, and a writer that waits in SQLite's busy handler sleeps in steps of
    milliseconds, which is what made every write slow under load."""
    with _outages_as_domain_errors():
        async with _write(engine, durable) as conn:
            yield conn


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """A transaction that only reads."""
    with _outages_as_domain_errors():
        async with _read(engine) as conn:
            yield conn


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database: raises `errors.Outage` if it cannot be reached."""
    with _outages_as_domain_errors():
        await _ping(engine)


@contextlib.contextmanager
def _outages_as_domain_errors() -> Iterator[None]:
    try:
        yield
    except (exc.DBAPIError, OSError) as error:
        if is_outage(error):
            raise errors.Outage(type(error).__name__) from error
        raise
    except exc.TimeoutError as error:  # no pooled connection came free in time
        raise errors.Outage(type(error).__name__) from error


@asynccontextmanager
async def _write(engine: AsyncEngine, durable: bool) -> AsyncIterator[Connection]:
    inline = sqlite.inline(engine)
    if inline is not None:
        async with sqlite.writer_turn(engine):
            with inline.engine.connect() as sync:
                sync = sync.execution_options(**{sqlite.WRITE: True, sqlite.DURABLE: durable})
                await sqlite.begin_write(sync, inline.synchronous)
                try:
                    yield sqlite.InlineConnection(sync)
                except BaseException:
                    sync.rollback()
                    raise
                sync.commit()
        return
    if engine.dialect.name == "postgresql":
        async with pg.connection(engine) as on_pg:
            transaction = await on_pg.begin()
            try:
                yield on_pg
            except BaseException:
                with contextlib.suppress(Exception):  # a lost connection cannot roll back
                    await on_pg.end(transaction, commit=False)
                raise
            await on_pg.end(transaction, commit=True)
        return
    async with sqlite.writer_turn(engine), engine.connect() as conn:
        conn = await conn.execution_options(**{sqlite.WRITE: True, sqlite.DURABLE: durable})
        async with conn.begin():
            yield conn


@asynccontextmanager
async def _read(engine: AsyncEngine) -> AsyncIterator[Connection]:
    inline = sqlite.inline(engine)
    if inline is not None:
        with inline.engine.connect() as sync, sync.begin():
            yield sqlite.InlineConnection(sync)
        return
    if engine.dialect.name == "postgresql":
        # No BEGIN and ROLLBACK round trips: under READ COMMITTED every statement reads its own
        # snapshot inside a transaction too, so a read-only transaction would buy nothing.
        async with pg.connection(engine) as on_pg:
            yield on_pg
        return
    async with engine.connect() as conn, conn.begin():
        yield conn


async def _ping(engine: AsyncEngine) -> None:
    inline = sqlite.inline(engine)
    if inline is not None:
        with inline.engine.connect() as sync:
            sync.execute(text("SELECT 1"))
        return
    if engine.dialect.name == "postgresql":
        async with pg.connection(engine) as on_pg:
            await on_pg.execute(_PING)
        return
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


_PING = hot(text("SELECT 1"))


async def after_migrations(engine: AsyncEngine) -> None:
    """On PostgreSQL, nothing but migrations uses SQLAlchemy's own pool: close what they opened, so a
    process holds `pool_size` connections (asyncpg's), not one more."""
    if engine.dialect.name == "postgresql":
        await engine.dispose()


# SQLSTATE class 08 (connection exception) and 57P01-57P03 (shutting down, restarting, starting up).
_OUTAGE_STATES = ("08", "57P01", "57P02", "57P03")


def is_outage(error: BaseException) -> bool:
    """Whether a database error means the database is unreachable right now, not that we erred."""
    if isinstance(error, errors.Outage | exc.OperationalError | exc.InterfaceError | OSError):
        return True
    if getattr(error, "connection_invalidated", False):
        return True
    cause: BaseException | None = error
    for _ in range(4):
        if cause is None:
            return False
        state = str(getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None) or "")
        if state.startswith(_OUTAGE_STATES) or isinstance(cause, OSError):
            return True
        cause = getattr(cause, "orig", None) or cause.__cause__
    return False


class GroupCommitter:
    """Runs many callers' write transactions as one: each caller's work joins the next batch, and
    every caller is answered only after that batch has committed (nothing is acknowledged early).

    One commit (one fsync on SQLite, one round trip on PostgreSQL) then serves many requests. If a
    batch fails, its works are run again one transaction each, so one caller's error (a unique key,
    a lost lease) reaches that caller alone. Works must touch only the database: they may run twice.
    """

    def __init__(self, engine: AsyncEngine, max_batch: int = 128, *, durable: bool = True) -> None:
        self._engine = engine
        self._durable = durable
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[Connection], Awaitable[Any]], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Callable[[Connection], Awaitable[Any]], asyncio.Future[Any]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                live = [(work, future) for work, future in batch if not future.cancelled()]
                if live:
                    await self._commit(live)
        except BaseException as exc:  # cancelled, or a work raised past Exception: nobody waits forever
            for _work, future in [*batch, *self._pending]:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("writer stopped")
                    )
            self._pending = []
            raise

    async def _commit(
        self, batch: list[tuple[Callable[[Connection], Awaitable[Any]], asyncio.Future[Any]]]
    ) -> None:
        try:
            async with write(self._engine, durable=self._durable) as conn:
                results = [await work(conn) for work, _future in batch]
        except Exception as error:
            if is_outage(error):  # the database is out of reach: alone, each would wait as long again
                for _work, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            if len(batch) == 1:
                await self._alone(*batch[0])
            else:
                for work, future in batch:
                    await self._alone(work, future)
            return
        for (_work, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _alone(self, work: Callable[[Connection], Awaitable[Any]], future: asyncio.Future[Any]) -> None:
        try:
            async with write(self._engine, durable=self._durable) as conn:
                result = await work(conn)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
