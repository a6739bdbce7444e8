"""PostgreSQL transactions driven through asyncpg directly.

SQLAlchemy's asyncio layer cost about 100 µs of CPU per statement here, where asyncpg alone costs
about 30 (docs/performance.md), and a task runs some twenty statements. So a transaction that
`db.read` or `db.write` opens on PostgreSQL is a `PgConnection`: it takes a pooled connection from
SQLAlchemy's pool, begins and ends the transaction itself with asyncpg, and runs each hot statement
(storage/direct.py) straight on asyncpg, raising SQLAlchemy's exception types (an IntegrityError is
still an IntegrityError; a lost connection is still an outage, and renews the pool).
"""

from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from emrtasks.storage import direct


class PgConnection:
    """A transaction's connection on PostgreSQL: hot statements on asyncpg, the rest on SQLAlchemy."""

    __slots__ = ("_adapted", "_engine", "_raw", "_sa", "dialect", "notified")

    def __init__(self, engine: AsyncEngine, sa: AsyncConnection, adapted: Any) -> None:
        self._engine = engine
        self._sa = sa
        self._adapted = adapted  # SQLAlchemy's adaptation of the asyncpg connection
        self._raw = adapted.driver_connection
        self.dialect = sa.dialect
        self.notified = False  # one NOTIFY per transaction is enough

    async def execute(self, statement: Executable, parameters: Any = None) -> direct.Rows:
        plan = direct.plan_for(statement, parameters, self.dialect)
        if plan is None:
            return await self._sa.execute(statement, parameters)
        sql, arguments = plan.arguments(parameters)
        try:
            if plan.returns_rows:
                return direct.rows_result(plan, await self._raw.fetch(sql, *arguments))
            status = await self._raw.execute(sql, *arguments)
        except Exception as error:
            raise await self._translated(error, sql) from error
        found = direct.STATUS_COUNT.search(status or "")
        return direct.count_result(int(found.group(1)) if found else -1)

    async def begin(self) -> Any:
        try:
            transaction = self._raw.transaction()
            await transaction.start()
        except Exception as error:
            raise await self._translated(error, "BEGIN") from error
        return transaction

    async def end(self, transaction: Any, *, commit: bool) -> None:
        try:
            await (transaction.commit() if commit else transaction.rollback())
        except Exception as error:
            raise await self._translated(error, "COMMIT" if commit else "ROLLBACK") from error

    async def _translated(self, error: Exception, sql: str) -> Exception:
        """SQLAlchemy's exception for an asyncpg error, as its own execution would have raised it;
        a lost connection is invalidated and the pool renewed, as SQLAlchemy does."""
        dbapi = self.dialect.loaded_dbapi
        result: Exception = error
        try:
            self._adapted._handle_exception(error)
        except dbapi.Error as translated:
            result = cast(
                Exception,
                exc.DBAPIError.instance(sql, None, translated, dbapi.Error, hide_parameters=True),
            )
        except Exception as other:  # not an asyncpg error (an OSError): as it is
            result = other
        if self._raw.is_closed():
            if isinstance(result, exc.DBAPIError):
                result.connection_invalidated = True
            await self._sa.invalidate()
            await self._engine.dispose(close=False)  # every other pooled connection is stale too
        return result
