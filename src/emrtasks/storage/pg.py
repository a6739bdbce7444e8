"""PostgreSQL transactions on asyncpg directly: its pool, its transactions, SQLAlchemy's SQL.

SQLAlchemy's asyncio layer cost about 100 µs of CPU per statement here, where asyncpg alone costs
about 30, and checking a connection out of its pool and back about as much again per transaction
(docs/performance.md); a task runs some twenty statements in some ten transactions. So `db.read`
and `db.write` on PostgreSQL take a connection from an asyncpg pool kept per engine (with the JSON
codecs SQLAlchemy would install), begin and commit on asyncpg, and run every statement compiled by
SQLAlchemy for PostgreSQL: once per parameter set for the hot statements (storage/direct.py), at each
execution for the rest. Errors are raised as SQLAlchemy's exception types (an IntegrityError is still
an IntegrityError); a connection found closed (a restart) is an outage, and every idle connection of
the pool is replaced before its next use. SQLAlchemy's own engine stays for migrations and `ping`.
"""

import asyncio
import contextlib
import inspect
import json
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import exc, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.base import Executable

from emrtasks.storage import direct, internals


class PgConnection:
    """A connection of a `db.read` or `db.write` on PostgreSQL."""

    __slots__ = ("_left", "_pool", "_raw", "dialect", "notified")

    def __init__(
        self, pool: asyncpg.Pool, raw: asyncpg.Connection, dialect: Dialect, statements: int = -1
    ) -> None:
        self._pool = pool
        self._raw = raw
        self.dialect = dialect
        self.notified = False  # one NOTIFY per transaction is enough
        self._left = statements  # how many statements it may still run (-1: any number)

    @property
    def outside_transaction(self) -> bool:
        """One statement alone, no transaction around it (`db.write(one_statement=True)`)."""
        return self._left >= 0

    async def execute(self, statement: Executable, parameters: Any = None) -> direct.Rows:
        if self._left >= 0:
            if self._left == 0:
                raise RuntimeError("a second statement where one was announced, outside a transaction")
            self._left -= 1
        if isinstance(parameters, list | tuple):  # many rows: one statement, executemany
            return await self._execute_many(statement, parameters)
        plan = direct.plan_for(statement, parameters, self.dialect)
        if plan is None:  # not a hot statement: compiled for this execution only
            plan = direct.Plan(statement, tuple(sorted(parameters or ())), self.dialect)
        sql, arguments = plan.arguments(parameters)
        try:
            if plan.returns_rows:
                records = await self._raw.fetch(sql, *arguments)
                return direct.rows_result(plan, records, list(records[0].keys()) if records else ())
            status = await self._raw.execute(sql, *arguments)
        except Exception as error:
            raise await self._translated(error, sql) from error
        except asyncio.CancelledError:
            self._discard()  # cancelled mid-statement: its protocol state is unknown, never reuse it
            raise
        found = direct.STATUS_COUNT.search(status or "")
        return direct.count_result(int(found.group(1)) if found else -1)

    async def _execute_many(self, statement: Executable, rows: Any) -> direct.Rows:
        if not rows:
            return direct.count_result(0)
        plan = direct.Plan(statement, tuple(sorted(rows[0])), self.dialect)
        if plan.returns_rows or plan.expanding:
            raise ValueError("many rows at once only for statements that return none")
        sql = plan.sql
        try:
            await self._raw.executemany(sql, [plan.arguments(row)[1] for row in rows])
        except Exception as error:
            raise await self._translated(error, sql) from error
        return direct.count_result(len(rows))

    async def begin(self) -> Any:
        try:
            transaction = self._raw.transaction()
            await transaction.start()
        except Exception as error:
            raise await self._translated(error, "BEGIN") from error
        except asyncio.CancelledError:
            self._discard()
            raise
        return transaction

    async def end(self, transaction: Any, *, commit: bool) -> None:
        try:
            await (transaction.commit() if commit else transaction.rollback())
        except Exception as error:
            raise await self._translated(error, "COMMIT" if commit else "ROLLBACK") from error
        except asyncio.CancelledError:
            self._discard()
            raise

    async def _translated(self, error: Exception, sql: str) -> Exception:
        result = translated(error, sql, self.dialect)
        if _lost(self._raw) or _breaks_the_connection(error):
            # Not a statement's error but the connection's (closed, shut down by the server, the
            # driver's protocol out of step): close it rather than return it to the pool, and have
            # every idle one checked, as a restart closes them all.
            self._discard()
            if isinstance(result, exc.DBAPIError):
                result.connection_invalidated = True
            await self._pool.expire_connections()
        return result

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.terminate()


def translated(error: Exception, sql: str, dialect: Dialect) -> Exception:
    """SQLAlchemy's exception for an asyncpg error, as its own execution would have raised it."""
    dbapi = dialect.loaded_dbapi
    try:
        internals.raise_asyncpg_error_as_dbapi(dbapi, error)
    except dbapi.Error as adapted:
        return cast(Exception, exc.DBAPIError.instance(sql, None, adapted, dbapi.Error, hide_parameters=True))
    except Exception as other:  # not an asyncpg error (an OSError): as it is
        return other
    return error


def _breaks_the_connection(error: Exception) -> bool:
    """Whether the connection cannot be trusted after this error. The server's errors about a
    statement (a unique key, a syntax error) leave the session usable; its connection errors
    (SQLSTATE 08) and shutdowns (57P), and every error of the driver or the OS, do not."""
    if isinstance(error, asyncpg.PostgresError):
        return str(getattr(error, "sqlstate", "") or "").startswith(("08", "57P"))
    return True


def _lost(connection: asyncpg.Connection) -> bool:
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:  # the pool took it back when the server closed it
        return True


class Pools:
    """One asyncpg pool per engine, made on first use (it belongs to the running event loop)."""

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[Any, asyncpg.Pool] = weakref.WeakKeyDictionary()

    async def get(self, engine: AsyncEngine) -> asyncpg.Pool:
        pool = self._pools.get(engine.sync_engine)
        if pool is not None:
            return pool
        made = await asyncpg.create_pool(
            **_connect_arguments(engine),
            min_size=0,
            max_size=engine.sync_engine.pool.size(),  # type: ignore[attr-defined]
            init=_codecs(engine.dialect),
            reset=_keep_session,
        )
        pool = self._pools.setdefault(engine.sync_engine, made)
        if pool is not made:  # another caller made one first meanwhile
            await made.close()
        return pool

    async def close(self, engine: AsyncEngine) -> None:
        pool = self._pools.pop(engine.sync_engine, None)
        if pool is not None:
            await pool.close()


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """The pool's reset on release, in place of asyncpg's `pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`, a round trip on every release (a fifth of all of them). Nothing here
    leaves session state on a pooled connection: no SET, no cursor kept open, no LISTEN (the
    listener has a connection of its own, queue/notify.py), no advisory lock (migrations take theirs
    on SQLAlchemy's engine, storage/migrate.py). asyncpg still rolls back a transaction left open
    before it calls this, and a connection whose protocol is in doubt is terminated, never released."""


def _connect_arguments(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg's arguments for the engine's URL, read as SQLAlchemy's asyncpg dialect reads it (host,
    port, `?ssl=`, `?command_timeout=` ...), so both pools connect alike."""
    _args, options = engine.dialect.create_connect_args(engine.url)
    if "prepared_statement_cache_size" in options:
        options["statement_cache_size"] = int(options.pop("prepared_statement_cache_size"))
    if "command_timeout" in options:
        options["command_timeout"] = float(options["command_timeout"])
    unknown = set(options) - _ASYNCPG_CONNECT
    if unknown:
        raise ValueError(f"Unsupported option in EMRTASKS_DATABASE_URL: {', '.join(sorted(unknown))}")
    return dict(options)


_ASYNCPG_CONNECT = frozenset(inspect.signature(asyncpg.connect).parameters) - {"dsn", "loop"}


def _codecs(dialect: Dialect) -> Any:
    """The JSON codecs SQLAlchemy's asyncpg dialect installs: JSON in as text, out as objects."""
    loads = internals.json_deserializer(dialect) or json.loads

    async def init(connection: asyncpg.Connection) -> None:
        await connection.set_type_codec(
            "json",
            encoder=str.encode,
            decoder=lambda value: loads(value.decode()),
            schema="pg_catalog",
            format="binary",
        )
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda value: b"\x01" + value.encode(),
            decoder=lambda value: loads(value[1:].decode()),
            schema="pg_catalog",
            format="binary",
        )

    return init


class Transactions:
    """The transactions of `db.read`, `db.write` and `db.ping` on PostgreSQL, on asyncpg."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def write(self, owner: AsyncEngine, durable: bool) -> AsyncIterator[PgConnection]:
        # Every PostgreSQL commit is durable: `durable` is SQLite's.
        async with connection(self._engine) as on_pg:
            transaction = await on_pg.begin()
            try:
                yield on_pg
            except BaseException:
                with contextlib.suppress(Exception):  # a lost connection cannot roll back
                    await on_pg.end(transaction, commit=False)
                raise
            await on_pg.end(transaction, commit=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PgConnection]:
        # No BEGIN and ROLLBACK round trips: under READ COMMITTED every statement reads its own
        # snapshot inside a transaction too, so a read-only transaction would buy nothing.
        async with connection(self._engine) as on_pg:
            yield on_pg

    @asynccontextmanager
    async def autocommit(self, owner: AsyncEngine) -> AsyncIterator[PgConnection]:
        # No transaction: the statement commits by itself, one round trip, not BEGIN, it, COMMIT.
        async with connection(self._engine) as on_pg:
            yield on_pg

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[PgConnection]:
        # One statement is a transaction by itself (its CTEs commit or fail together): one round
        # trip, not BEGIN, it, COMMIT. A second one is refused rather than run outside the first's.
        async with connection(self._engine, statements=1) as on_pg:
            yield on_pg

    async def ping(self) -> None:
        async with connection(self._engine) as on_pg:
            await on_pg.execute(_PING)


_PING = direct.hot(text("SELECT 1"))


@asynccontextmanager
async def connection(engine: AsyncEngine, statements: int = -1) -> AsyncIterator[PgConnection]:
    try:
        pool = await _POOLS.get(engine)
        acquired = pool.acquire(timeout=_ACQUIRE_SECONDS)
        raw = await acquired.__aenter__()
    except TimeoutError as error:  # every pooled connection busy that long: an outage too (503)
        raise exc.TimeoutError(f"no database connection came free in {_ACQUIRE_SECONDS:g} s") from error
    except Exception as error:  # the server is down or starting: an outage, in SQLAlchemy's words
        raise translated(error, "connect", engine.dialect) from error
    try:
        yield PgConnection(pool, raw, engine.dialect, statements)
    finally:
        # Releasing resets the connection; on one the server closed that fails, after asyncpg has
        # dropped it from the pool. Whatever the transaction came to is already decided (and raised).
        with contextlib.suppress(Exception):
            await acquired.__aexit__(None, None, None)


_POOLS = Pools()
_ACQUIRE_SECONDS = 60.0  # as SQLAlchemy's pool_timeout was


async def dispose(engine: AsyncEngine) -> None:
    await _POOLS.close(engine)
