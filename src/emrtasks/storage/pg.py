"""PostgreSQL transactions driven through asyncpg directly, for the hot path's statements.

SQLAlchemy's asyncio layer cost about 100 µs of CPU per statement here, where asyncpg alone costs
about 30 (docs/performance.md), and a task runs some twenty statements. So a transaction that
`db.read` or `db.write` opens on PostgreSQL is a `PgConnection`: it takes a pooled connection from
SQLAlchemy's pool, begins and ends the transaction itself with asyncpg, and runs each statement
registered with `hot()` straight on asyncpg, compiled by SQLAlchemy once per statement and set of
parameter names, with SQLAlchemy's own bind and result processors (JSON, UTC times) and its
exception types (an IntegrityError is still an IntegrityError; a lost connection is still an outage
that renews the pool). Any other statement runs through SQLAlchemy as usual, in the same transaction.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

_HOT: dict[int, tuple[Executable, dict[tuple[str, ...], "_Plan"]]] = {}

S = Any  # a statement; typed loosely so hot() returns what it was given


def hot(statement: S) -> S:
    """Register a statement built once (a module constant) for the direct path; returns it."""
    _HOT[id(statement)] = (statement, {})
    return statement


class _Plan:
    """One statement compiled for PostgreSQL with one set of parameter names."""

    __slots__ = ("compiled", "expanding", "keys", "processors", "result_processors", "returns_rows", "sql")

    def __init__(self, statement: Executable, names: tuple[str, ...], dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(names)))  # type: ignore[attr-defined]
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("a statement with Python-side column defaults cannot take the direct path")
        self.compiled = compiled
        self.sql = compiled.string
        self.expanding = bool(compiled.literal_execute_params or compiled.post_compile_params)
        self.processors: Mapping[str, Any] = compiled._bind_processors
        columns = compiled._result_columns
        self.keys = [column.keyname for column in columns]
        self.result_processors = [column.type._cached_result_processor(dialect, None) for column in columns]
        self.returns_rows = bool(columns) or compiled.isplaintext

    def arguments(self, parameters: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        values: Any = self.compiled.construct_params(dict(parameters or {}), escape_names=False)
        sql, processors = self.sql, self.processors
        order: Sequence[str] = self.compiled.positiontup or ()
        if self.expanding:
            expanded = self.compiled._process_parameters_for_postcompile(values)
            sql, values, order = expanded.statement, expanded.parameters, expanded.positiontup or ()
            processors = {**processors, **expanded.processors}
        return sql, [processors[k](values[k]) if k in processors else values[k] for k in order]

    def rows(self, records: Sequence[Any]) -> list[tuple[Any, ...]]:
        processors = self.result_processors
        if not any(processors):
            return [tuple(record) for record in records]
        return [
            tuple(p(v) if p else v for p, v in zip(processors, record, strict=True)) for record in records
        ]


class _Result(IteratorResult[Any]):
    def __init__(self, keys: Sequence[str], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        super().__init__(SimpleResultMetaData(keys), iter(rows))
        self.rowcount = rowcount


_STATUS_COUNT = re.compile(r"(\d+)$")
_Rows = CursorResult[*tuple[Any, ...]]


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

    async def execute(self, statement: Executable, parameters: Any = None) -> _Rows:
        entry = _HOT.get(id(statement))
        if entry is None or entry[0] is not statement:
            return await self._sa.execute(statement, parameters)
        names = tuple(sorted(parameters)) if parameters else ()
        plan = entry[1].get(names)
        if plan is None:
            plan = entry[1][names] = _Plan(statement, names, self.dialect)
        sql, arguments = plan.arguments(parameters)
        try:
            if plan.returns_rows:
                records = await self._raw.fetch(sql, *arguments)
                return cast(
                    CursorResult[*tuple[Any, ...]], _Result(plan.keys, plan.rows(records), len(records))
                )
            status = await self._raw.execute(sql, *arguments)
        except Exception as error:
            raise await self._translated(error, sql) from error
        found = _STATUS_COUNT.search(status or "")
        return cast(_Rows, _Result((), [], int(found.group(1)) if found else -1))

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
