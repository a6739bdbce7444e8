"""The engine and its transactions: SQLite pragmas (WAL, busy timeout, foreign keys), write vs read
transactions.

On SQLite a write transaction starts with BEGIN IMMEDIATE, so two writers queue instead of failing
on a read-to-write upgrade (https://www.sqlite.org/lang_transaction.html).

A SQLite database in a file is used inline: the transactions that `read` and `write` open run their
statements with the standard library's sqlite3 on the event loop's own thread. A statement on a
small indexed table takes microseconds there, where handing it to an aiosqlite thread and back
took about 0.5 ms of the loop's time (docs/performance.md). Nothing waits inside SQLite: a writer
that finds the database locked by another process gives way to the loop and tries again, and only
a commit's fsync (a fraction of a millisecond, shared by a whole group commit) holds the loop.
The async engine stays for what needs it (migrations, and `:memory:` databases).
"""

import asyncio
import contextlib
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import sqlalchemy
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import CursorResult, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from emrtasks.storage import direct, pg

hot = direct.hot  # mark a statement built once for the driver-direct path (storage/direct.py)

_WRITE = "emrtasks_write"
_DURABLE = "emrtasks_durable"
T = TypeVar("T")


class Connection(Protocol):
    """What the storage modules use of a connection: an `AsyncConnection`, or an inline SQLite one."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]: ...


class InlineConnection:
    """A sync SQLAlchemy connection to a SQLite file, awaited like an `AsyncConnection`; hot
    statements run on its sqlite3 connection directly (storage/direct.py)."""

    __slots__ = ("_dbapi", "_sync", "dialect")

    def __init__(self, sync: SyncConnection) -> None:
        self._sync = sync
        self._dbapi: Any = sync.connection.dbapi_connection
        self.dialect = sync.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> direct.Rows:
        plan = direct.plan_for(statement, parameters, self.dialect)
        if plan is None:
            return self._sync.execute(statement, parameters)
        sql, arguments = plan.arguments(parameters)
        try:
            cursor = self._dbapi.execute(sql, arguments)
            if plan.returns_rows:
                return direct.rows_result(plan, cursor.fetchall())
            return direct.count_result(cursor.rowcount)
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(sql, None, error, sqlite3.Error, hide_parameters=True) from error


def create_engine(url: str, *, pool_size: int = 10, synchronous: str = "FULL") -> AsyncEngine:
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, synchronous, pool_size)
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


def _create_sqlite_engine(url: str, synchronous: str, pool_size: int) -> AsyncEngine:
    # A fixed pool: overflow connections would be opened and closed under load, each costing a
    # thread and the pragmas below.
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
    )
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"Invalid SQLite synchronous setting: {synchronous}")
    _configure_sqlite(engine.sync_engine, synchronous, busy_timeout_ms=30000, inline=False)
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        inline = sqlalchemy.create_engine(
            engine.url.set(drivername="sqlite+pysqlite"),
            # Busy waits happen in `_begin_write`, on the loop, never inside SQLite.
            connect_args={"timeout": 0, "check_same_thread": False},
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=60,
        )
        _configure_sqlite(inline, synchronous, busy_timeout_ms=0, inline=True)
        _INLINE[engine.sync_engine] = _Inline(inline, synchronous.upper())
    return engine


def _configure_sqlite(engine: Engine, synchronous: str, *, busy_timeout_ms: int, inline: bool) -> None:

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours (IMMEDIATE for writes).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            f"busy_timeout={busy_timeout_ms}",
            "foreign_keys=ON",
            f"synchronous={synchronous.upper()}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: SyncConnection) -> None:
        if not connection.get_execution_options().get(_WRITE, False):
            if inline:  # WAL readers are rarely told "busy" (recovery after a crash): wait a little
                _set_pragma(connection, "busy_timeout", str(_INLINE_READ_BUSY_MS))
            _driver_sql(connection, "BEGIN")
        elif not inline:  # an inline writer begins in `_begin_write`, where it may wait
            _begin_immediate(connection, synchronous)


# An inline reader's wait inside SQLite when told "busy"; an inline writer never waits there.
_INLINE_READ_BUSY_MS = 50


def _begin_immediate(connection: SyncConnection, synchronous: str, *, inline: bool = False) -> None:
    # Only what we acknowledge must survive a power loss; the rest (claims, outcomes a retry would
    # look up again) may skip the fsync.
    durable = connection.get_execution_options().get(_DURABLE, True)
    _set_pragma(connection, "synchronous", synchronous.upper() if durable else "NORMAL")
    if inline:
        _set_pragma(connection, "busy_timeout", "0")
    _driver_sql(connection, "BEGIN IMMEDIATE")


def _set_pragma(connection: SyncConnection, name: str, value: str) -> None:
    """Set a connection's pragma, only when it changes (it is remembered with the connection)."""
    info = connection.connection.info
    if info.get(name) != value:
        _driver_sql(connection, f"PRAGMA {name}={value}")
        info[name] = value


def _driver_sql(connection: SyncConnection, sql: str) -> None:
    """Run transaction control on the driver's connection: SQLAlchemy's execution of a statement
    (events, an execution context, a result) cost several times the statement here."""
    try:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql)
        cursor.close()
    except Exception as error:
        dbapi = connection.dialect.loaded_dbapi
        if isinstance(error, dbapi.Error):
            raise exc.DBAPIError.instance(sql, None, error, dbapi.Error, hide_parameters=True) from error
        raise


class _Inline:
    def __init__(self, engine: Engine, synchronous: str) -> None:
        self.engine = engine
        self.synchronous = synchronous


# The inline engine of each SQLite async engine that has one.
_INLINE: "weakref.WeakKeyDictionary[Any, _Inline]" = weakref.WeakKeyDictionary()


def _inline(engine: AsyncEngine) -> _Inline | None:
    return _INLINE.get(engine.sync_engine) if engine.dialect.name == "sqlite" else None


async def dispose(engine: AsyncEngine) -> None:
    """Close every pooled connection: SQLAlchemy's, the inline SQLite ones, asyncpg's."""
    inline = _inline(engine)
    if inline is not None:
        inline.engine.dispose()
    if engine.dialect.name == "postgresql":
        await _PG_POOLS.close(engine)
    await engine.dispose()


# How long an inline writer keeps trying while another process holds SQLite's write lock.
_LOCKED_PATIENCE_SECONDS = 30.0


async def _begin_write(sync: SyncConnection, synchronous: str) -> None:
    """Start a write transaction, giving way to the event loop while another process writes."""
    delay = 0.001
    deadline = time.monotonic() + _LOCKED_PATIENCE_SECONDS
    while True:
        sync.begin()  # SQLAlchemy's transaction; the database's starts here:
        try:
            _begin_immediate(sync, synchronous, inline=True)
            return
        except exc.OperationalError as error:
            sync.rollback()
            if not _is_locked(error) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _is_locked(error: exc.OperationalError) -> bool:
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message


@asynccontextmanager
async def write(engine: AsyncEngine, *, durable: bool = True) -> AsyncIterator[Connection]:
    """A transaction that will write: committed on exit, rolled back on error. `durable=False` (SQLite)
    lets the commit skip the fsync: for writes that a crash may undo because a retry redoes them.

    On SQLite, writers of one process take turns on an asyncio lock first: SQLite lets one writer
    in at a time anyway, and a writer that waits in SQLite's busy handler sleeps in steps of
    milliseconds, which is what made every write slow under load."""
    inline = _inline(engine)
    if inline is not None:
        async with _writer_turn(engine):
            with inline.engine.connect() as sync:
                sync = sync.execution_options(**{_WRITE: True, _DURABLE: durable})
                await _begin_write(sync, inline.synchronous)
                try:
                    yield InlineConnection(sync)
                except BaseException:
                    sync.rollback()
                    raise
                sync.commit()
        return
    if engine.dialect.name == "postgresql":
        async with _pg_connection(engine) as on_pg:
            transaction = await on_pg.begin()
            try:
                yield on_pg
            except BaseException:
                with contextlib.suppress(Exception):  # a lost connection cannot roll back
                    await on_pg.end(transaction, commit=False)
                raise
            await on_pg.end(transaction, commit=True)
        return
    async with _writer_turn(engine), engine.connect() as conn:
        conn = await conn.execution_options(**{_WRITE: True, _DURABLE: durable})
        async with conn.begin():
            yield conn


@asynccontextmanager
async def _pg_connection(engine: AsyncEngine) -> AsyncIterator[pg.PgConnection]:
    try:
        pool = await _PG_POOLS.get(engine)
        acquired = pool.acquire(timeout=_PG_ACQUIRE_SECONDS)
        raw = await acquired.__aenter__()
    except TimeoutError as error:  # every pooled connection busy that long: an outage too (503)
        raise exc.TimeoutError(f"no database connection came free in {_PG_ACQUIRE_SECONDS:g} s") from error
    except Exception as error:  # the server is down or starting: an outage, in SQLAlchemy's words
        raise pg.translated(error, "connect", engine.dialect) from error
    try:
        yield pg.PgConnection(pool, raw, engine.dialect)
    finally:
        # Releasing resets the connection; on one the server closed that fails, after asyncpg has
        # dropped it from the pool. Whatever the transaction came to is already decided (and raised).
        with contextlib.suppress(Exception):
            await acquired.__aexit__(None, None, None)


_PG_POOLS = pg.Pools()
_PG_ACQUIRE_SECONDS = 60.0  # as SQLAlchemy's pool_timeout was


def _writer_turn(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[Any]:
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    lock = _SQLITE_WRITERS.get(engine.sync_engine)
    if lock is None:
        lock = _SQLITE_WRITERS[engine.sync_engine] = asyncio.Lock()
    return lock


_SQLITE_WRITERS: "weakref.WeakKeyDictionary[Any, asyncio.Lock]" = weakref.WeakKeyDictionary()


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[Connection]:
    inline = _inline(engine)
    if inline is not None:
        with inline.engine.connect() as sync, sync.begin():
            yield InlineConnection(sync)
        return
    if engine.dialect.name == "postgresql":
        # No BEGIN and ROLLBACK round trips: under READ COMMITTED every statement reads its own
        # snapshot inside a transaction too, so a read-only transaction would buy nothing.
        async with _pg_connection(engine) as on_pg:
            yield on_pg
        return
    async with engine.connect() as conn, conn.begin():
        yield conn


async def ping(engine: AsyncEngine) -> None:
    inline = _inline(engine)
    if inline is not None:
        with inline.engine.connect() as sync:
            sync.execute(text("SELECT 1"))
        return
    if engine.dialect.name == "postgresql":
        async with _pg_connection(engine) as on_pg:
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
    if isinstance(error, exc.OperationalError | exc.InterfaceError | OSError):
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
