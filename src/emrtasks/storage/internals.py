"""Every use of SQLAlchemy's private parts, in one place, each with the reason for it.

The direct path (storage/direct.py, storage/pg.py) runs statements that SQLAlchemy compiled, with the
bind and result processing and the exception types SQLAlchemy's own execution would give, minus that
execution's per-statement cost. It reaches for these to reuse SQLAlchemy's work rather than redo it.
pyproject.toml keeps SQLAlchemy below its next major version, and
tests/integration/test_hot_statements.py runs every hot statement and every column type both ways on
both databases: a release that changes any of these fails there before it ships.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine


def bind_processors(compiled: SQLCompiler) -> Mapping[str, Any]:
    """Each bind name's processor (UTC times, JSON, booleans)."""
    # SQLCompiler._bind_processors: what SQLAlchemy's execution context applies to each parameter;
    # the public way (an execution context) would be built again at every execution.
    return compiled._bind_processors


def result_columns(compiled: SQLCompiler) -> list[Any]:
    """The columns a statement returns, in order: each with `keyname` and `type`."""
    # SQLCompiler._result_columns: the same list SQLAlchemy's cursor result reads its keys from.
    return list(compiled._result_columns)


def result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Any:
    """The function turning a driver's value into the column type's Python value (or None)."""
    # TypeEngine._cached_result_processor: the per-dialect cache SQLAlchemy's results use; the public
    # `result_processor` would build a new one per call.
    return type_._cached_result_processor(dialect, None)


def constant_parameters(compiled: SQLCompiler) -> dict[str, Any]:
    """The values bound in the statement itself (a literal such as `state == 'running'`)."""
    # construct_params(_check=False): without the check that the caller gave every required value,
    # which the plan makes itself, once, when it is built.
    return dict(compiled.construct_params({}, escape_names=False, _check=False))


def expand_postcompile(compiled: SQLCompiler, values: Mapping[str, Any]) -> Any:
    """An `IN` list's parameters expanded: a result with `statement`, `parameters`, `positiontup`,
    `processors`."""
    # SQLCompiler._process_parameters_for_postcompile: how SQLAlchemy renders "expanding" binds
    # (bindparam(..., expanding=True)) for the values of one execution.
    return compiled._process_parameters_for_postcompile(dict(values))


def raise_asyncpg_error_as_dbapi(dbapi: Any, error: Exception) -> None:
    """Raise the DBAPI exception the asyncpg dialect would raise for this asyncpg error."""
    # AsyncAdapt_asyncpg_connection._handle_exception_no_connection: the asyncpg dialect's own
    # mapping of asyncpg errors to DBAPI ones (IntegrityError, OperationalError ...), which the
    # PostgreSQL direct path must raise alike.
    AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, error)


def json_deserializer(dialect: Dialect) -> Any:
    """The `json_deserializer` given to create_engine, or None."""
    # Dialect._json_deserializer: where the dialect keeps that argument; its JSON codecs use it.
    return getattr(dialect, "_json_deserializer", None)


class Result(IteratorResult[Any]):
    """Rows the driver returned, as a SQLAlchemy result (`.all()`, `.mappings()`, `.scalar()` ...)."""

    # SimpleResultMetaData is SQLAlchemy's own metadata for keyed rows without a cursor; callers
    # use the result's public API only.
    def __init__(self, keys: Sequence[str], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        super().__init__(SimpleResultMetaData(keys), iter(rows))
        self.rowcount = rowcount
