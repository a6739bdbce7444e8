"""The engine and its transactions, whatever the database: `read`, `write`, the group commit.

`create_engine` makes SQLAlchemy's async engine for a URL. The transactions `read` and `write` open
run on the fastest path each database allows: a SQLite file inline on the event loop
(storage/sqlite.py), PostgreSQL on an asyncpg pool of its own (storage/pg.py), anything else
(a `:memory:` SQLite) through SQLAlchemy: one object per engine says how (`_Transactions`).
Statements registered with `hot` run straight on the driver (storage/direct.py). Every connection
offers `execute`, `dialect` and `notified` (`DbConnection`).
A database out of reach leaves these functions as the domain's `errors.Outage`, a transaction that a
concurrent one made fail (deadlock, serialization failure) as `errors.Contention`, whatever the driver.
"""

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import exc, text
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from emrtasks.domain import errors
from emrtasks.storage import direct, pg, sqlite

hot = direct.hot  # mark a statement built once for the driver-direct path (storage/direct.py)

T = TypeVar("T")


class DbConnection(Protocol):
    """What the storage and queue modules use of a connection: an inline SQLite one, a PostgreSQL one
    (storage/pg.py) or SQLAlchemy's, each of ours."""

    @property
    def dialect(self) -> Dialect: ...

    notified: bool
    """Whether this transaction has sent its NOTIFY already (queue/notify.py): one is enough."""

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]: ...


class NeedsTransaction(Exception):
    """A work announced as one statement found it needs more (its statement wrote nothing): the
    group commit runs it again in a transaction of its own."""


def outside_transaction(conn: DbConnection) -> bool:
    """Whether this connection runs one statement alone, outside a transaction (PostgreSQL's
    `write(one_statement=True)`): a step that may need a second statement must not write then."""
    return bool(getattr(conn, "outside_transaction", False))


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
async def write(
    engine: AsyncEngine, *, durable: bool = True, one_statement: bool = False
) -> AsyncIterator[DbConnection]:
    """A transaction that will write: committed on exit, rolled back on error. `durable=False` (SQLite)
    lets the commit skip the fsync: for writes that a crash may undo because a retry redoes them.
    `one_statement`: the work runs a single statement on PostgreSQL (storage/steps.py), which is a
    transaction by itself: no BEGIN and COMMIT round trips (a second statement is refused); the work
    must raise nothing after it that should undo it. Elsewhere it changes nothing.

    On SQLite, writers of one process take turns on an asyncio lock first: SQLite lets one writer
    in at a time anyway, and a writer that waits in SQLite's busy handler sleeps in steps of
    milliseconds, which is what made every write slow under load."""
    with _outages_as_domain_errors():
        transactions = _transactions(engine)
        opened: AbstractAsyncContextManager[DbConnection]
        if one_statement and isinstance(transactions, pg.Transactions):
            opened = transactions.one_statement()
        else:
            opened = transactions.write(engine, durable)
        async with opened as conn:
            yield conn


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[DbConnection]:
    """A transaction that only reads (on PostgreSQL none at all: see storage/pg.py)."""
    with _outages_as_domain_errors():
        async with _transactions(engine).read() as conn:
            yield conn


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[DbConnection]:
    """For one statement that commits by itself: on PostgreSQL without BEGIN and COMMIT (one round
    trip), elsewhere in a transaction of its own whose commit may skip the fsync."""
    with _outages_as_domain_errors():
        async with _transactions(engine).autocommit(engine) as conn:
            yield conn


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database: raises `errors.Outage` if it cannot be reached."""
    with _outages_as_domain_errors():
        await _transactions(engine).ping()


@contextlib.contextmanager
def _outages_as_domain_errors() -> Iterator[None]:
    try:
        yield
    except (exc.DBAPIError, OSError) as error:
        if is_contention(error):
            raise errors.Contention(_sqlstate_of(error)) from error
        if is_outage(error):
            raise errors.Outage(type(error).__name__) from error
        raise
    except exc.TimeoutError as error:  # no pooled connection came free in time
        raise errors.Outage(type(error).__name__) from error


class _Transactions(Protocol):
    """How one database opens the transactions above: sqlite.Inline, pg.Transactions, _Through."""

    def write(self, owner: AsyncEngine, durable: bool) -> AbstractAsyncContextManager[DbConnection]: ...

    def read(self) -> AbstractAsyncContextManager[DbConnection]: ...

    def autocommit(self, owner: AsyncEngine) -> AbstractAsyncContextManager[DbConnection]: ...

    async def ping(self) -> None: ...


def _transactions(engine: AsyncEngine) -> _Transactions:
    # Chosen at each call, as cheap as a cache (a dict lookup), and nothing to keep an engine alive.
    inline = sqlite.inline(engine)
    if inline is not None:
        return inline
    if engine.dialect.name == "postgresql":
        return pg.Transactions(engine)
    return _Through(engine)


class _Through:
    """Any other database (a `:memory:` SQLite): through SQLAlchemy's own async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def write(self, owner: AsyncEngine, durable: bool) -> AsyncIterator[DbConnection]:
        async with sqlite.writer_turn(owner), self._engine.connect() as conn:
            conn = await conn.execution_options(**{sqlite.WRITE: True, sqlite.DURABLE: durable})
            async with conn.begin():
                yield _Plain(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[DbConnection]:
        async with self._engine.connect() as conn, conn.begin():
            yield _Plain(conn)

    def autocommit(self, owner: AsyncEngine) -> AbstractAsyncContextManager[DbConnection]:
        return self.write(owner, durable=False)

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


class _Plain:
    """An `AsyncConnection` as a `DbConnection`."""

    __slots__ = ("_conn", "dialect", "notified")

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.dialect = conn.dialect
        self.notified = False

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[*tuple[Any, ...]]:
        return await self._conn.execute(statement, parameters)


async def after_migrations(engine: AsyncEngine) -> None:
    """On PostgreSQL, nothing but migrations uses SQLAlchemy's own pool: close what they opened, so a
    process holds `pool_size` connections (asyncpg's), not one more."""
    if engine.dialect.name == "postgresql":
        await engine.dispose()


# SQLSTATE 40P01 (deadlock detected) and 40001 (serialization failure): PostgreSQL rolled the
# transaction back because of another one; run again, it succeeds.
_CONTENTION_STATES = ("40P01", "40001")
_CONTENTION_TRIES = 3


def is_contention(error: BaseException) -> bool:
    """Whether a database error means a concurrent transaction made this one fail."""
    return isinstance(error, errors.Contention) or _sqlstate_of(error) in _CONTENTION_STATES


def _sqlstate_of(error: BaseException) -> str:
    cause: BaseException | None = error
    for _ in range(4):
        if cause is None:
            break
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if state:
            return str(state)
        cause = getattr(cause, "orig", None) or cause.__cause__
    return ""


async def retry_contention(transaction: Callable[[], Awaitable[T]], tries: int = _CONTENTION_TRIES) -> T:
    """Run `transaction` (a whole transaction, opened by the callable) again when a concurrent one
    made it fail, up to `tries` times, after a short random pause; then let `errors.Contention` go."""
    for attempt in range(1, tries + 1):
        try:
            return await transaction()
        except errors.Contention:
            if attempt == tries:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")


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

    A work run alone that a concurrent transaction makes fail (a deadlock) is run again
    (`retry_contention`): batches lock rows in whatever order their callers came.
    """

    def __init__(self, engine: AsyncEngine, max_batch: int = 128, *, durable: bool = True) -> None:
        self._engine = engine
        self._durable = durable
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[DbConnection], Awaitable[Any]], asyncio.Future[Any]]] = []
        self._single: set[int] = set()  # id() of the pending works that run one statement
        self._writer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[DbConnection], Awaitable[T]], *, one_statement: bool = False) -> T:
        """`one_statement`: the work runs one statement on PostgreSQL and raises nothing after it
        that should undo it (see `write`): alone in its batch, it runs without BEGIN and COMMIT."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if one_statement:
            self._single.add(id(future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Callable[[DbConnection], Awaitable[Any]], asyncio.Future[Any]]] = []
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
        self, batch: list[tuple[Callable[[DbConnection], Awaitable[Any]], asyncio.Future[Any]]]
    ) -> None:
        single = len(batch) == 1 and id(batch[0][1]) in self._single
        for _work, future in batch:
            self._single.discard(id(future))
        try:
            async with write(self._engine, durable=self._durable, one_statement=single) as conn:
                results = [await work(conn) for work, _future in batch]
        except NeedsTransaction:
            await self._alone(*batch[0])
            return
        except Exception as error:
            # Out of reach: alone, each would wait as long again. A work that ran alone outside a
            # transaction is not run again unless a concurrent one made its statement fail: what
            # its statement wrote (if anything) stays, and the error is its own.
            if is_outage(error) or (single and not is_contention(error)):
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

    async def _alone(
        self, work: Callable[[DbConnection], Awaitable[Any]], future: asyncio.Future[Any]
    ) -> None:
        async def transaction() -> Any:
            async with write(self._engine, durable=self._durable) as conn:
                return await work(conn)

        try:
            result = await retry_contention(transaction)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
