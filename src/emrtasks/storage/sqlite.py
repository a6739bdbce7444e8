"""SQLite, used inline: `db.read` and `db.write` on a SQLite file run sqlite3 on the event loop's thread.

A statement on a small indexed table takes microseconds there, where handing it to an aiosqlite
thread and back took about 0.4 ms of the loop's time (docs/performance.md). Nothing waits inside
SQLite: a write transaction starts with BEGIN IMMEDIATE (two writers queue instead of failing on a
read-to-write upgrade, https://www.sqlite.org/lang_transaction.html), writers of one process take
turns on an asyncio lock first, and a writer that finds the file locked by another process gives
way to the loop and tries again. Only a commit's fsync holds the loop, shared by a whole group
commit. Every connection runs in WAL mode with foreign keys on. The async engine stays for what
needs it (migrations, and `:memory:` databases).
"""

import asyncio
import contextlib
import os
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from emrtasks.storage import direct

# Execution options of a connection: a write transaction, and whether its commit must be durable.
WRITE = "emrtasks_write"
DURABLE = "emrtasks_durable"


class InlineConnection:
    """A sync SQLAlchemy connection to a SQLite file, awaited like an `AsyncConnection`; hot
    statements run on its sqlite3 connection directly (storage/direct.py)."""

    __slots__ = ("_dbapi", "_sync", "dialect", "notified")

    def __init__(self, sync: SyncConnection) -> None:
        self._sync = sync
        self._dbapi: Any = sync.connection.dbapi_connection
        self.dialect = sync.dialect
        self.notified = False  # SQLite has no NOTIFY; part of every connection all the same

    async def execute(self, statement: Executable, parameters: Any = None) -> direct.Rows:
        plan = direct.plan_for(statement, parameters, self.dialect)
        if plan is None:
            return self._sync.execute(statement, parameters)
        sql, arguments = plan.arguments(parameters)
        try:
            cursor = self._dbapi.execute(sql, arguments)
            if plan.returns_rows:
                keys = [column[0] for column in cursor.description or ()]
                return direct.rows_result(plan, cursor.fetchall(), keys)
            return direct.count_result(cursor.rowcount)
        except sqlite3.Error as error:
            raise exc.DBAPIError.instance(sql, None, error, sqlite3.Error, hide_parameters=True) from error


def create_engine(url: str, synchronous: str, pool_size: int) -> AsyncEngine:
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
        owner_only(database)
        inline = sqlalchemy.create_engine(
            engine.url.set(drivername="sqlite+pysqlite"),
            # Busy waits happen in `begin_write`, on the loop, never inside SQLite.
            connect_args={"timeout": 0, "check_same_thread": False},
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=60,
        )
        _configure_sqlite(inline, synchronous, busy_timeout_ms=0, inline=True)
        _INLINE[engine.sync_engine] = Inline(inline, synchronous.upper())
    return engine


def owner_only(database: str) -> None:
    """Create the database file readable by its owner only (it holds PHI), and take group and other
    access away from it and its WAL and shared-memory files if an older start left them open.
    SQLite creates the WAL and SHM files with the database file's mode, so they follow it."""
    path = Path(database)
    # A missing directory is left for SQLite to report when a connection is opened.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


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
        if not connection.get_execution_options().get(WRITE, False):
            if inline:  # WAL readers are rarely told "busy" (recovery after a crash): wait a little
                _set_pragma(connection, "busy_timeout", str(_INLINE_READ_BUSY_MS))
            _driver_sql(connection, "BEGIN")
        elif not inline:  # an inline writer begins in `begin_write`, where it may wait
            _begin_immediate(connection, synchronous)


# An inline reader's wait inside SQLite when told "busy"; an inline writer never waits there.
_INLINE_READ_BUSY_MS = 50


def _begin_immediate(connection: SyncConnection, synchronous: str, *, inline: bool = False) -> None:
    # Only what we acknowledge must survive a power loss; the rest (claims, outcomes a retry would
    # look up again) may skip the fsync.
    durable = connection.get_execution_options().get(DURABLE, True)
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


class Inline:
    """The transactions of `db.read`, `db.write` and `db.ping` on a SQLite file, on the loop's thread."""

    def __init__(self, engine: Engine, synchronous: str) -> None:
        self.engine = engine
        self.synchronous = synchronous

    @asynccontextmanager
    async def write(self, owner: AsyncEngine, durable: bool) -> AsyncIterator[InlineConnection]:
        async with writer_turn(owner):
            with self.engine.connect() as sync:
                sync = sync.execution_options(**{WRITE: True, DURABLE: durable})
                await begin_write(sync, self.synchronous)
                try:
                    yield InlineConnection(sync)
                except BaseException:
                    sync.rollback()
                    raise
                sync.commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[InlineConnection]:
        with self.engine.connect() as sync, sync.begin():
            yield InlineConnection(sync)

    def autocommit(self, owner: AsyncEngine) -> contextlib.AbstractAsyncContextManager[InlineConnection]:
        return self.write(owner, durable=False)  # its own transaction; a power cut may undo it

    async def ping(self) -> None:
        with self.engine.connect() as sync:
            sync.execute(text("SELECT 1"))


# The inline engine of each SQLite async engine that has one.
_INLINE: "weakref.WeakKeyDictionary[Any, Inline]" = weakref.WeakKeyDictionary()


def inline(engine: AsyncEngine) -> Inline | None:
    return _INLINE.get(engine.sync_engine) if engine.dialect.name == "sqlite" else None


# How long an inline writer keeps trying while another process holds SQLite's write lock.
_LOCKED_PATIENCE_SECONDS = 30.0


async def begin_write(sync: SyncConnection, synchronous: str) -> None:
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


def writer_turn(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[Any]:
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    lock = _SQLITEWRITERS.get(engine.sync_engine)
    if lock is None:
        lock = _SQLITEWRITERS[engine.sync_engine] = asyncio.Lock()
    return lock


_SQLITEWRITERS: "weakref.WeakKeyDictionary[Any, asyncio.Lock]" = weakref.WeakKeyDictionary()
