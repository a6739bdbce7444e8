"""The direct path (storage/direct.py, storage/internals.py) against SQLAlchemy's own execution: every
hot statement of the service, and a row of every table (so every column type), run both ways on each
database must give the same rows, the same counts and the same exception types."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, LargeBinary, String, exc, insert, select
from sqlalchemy.types import TypeDecorator, TypeEngine

from emrtasks import bootstrap  # noqa: F401 - imports every module that registers hot statements
from emrtasks.domain import errors
from emrtasks.storage import db, direct, tables

SERVICE_STATEMENTS = direct.registered()
NOW = datetime(2026, 3, 2, 14, 30, 5, 123456, tzinfo=UTC)
TABLE_STATEMENTS = [
    (direct.hot(insert(table)), direct.hot(select(table))) for table in tables.metadata.sorted_tables
]


class _RolledBack(Exception):
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome


def _sample(type_: TypeEngine[Any]) -> Any:
    """One value of the type. Every column of a type gets the same value, so that each foreign key
    finds the row it refers to, and each statement's `WHERE id = :id` finds the seeded row."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    for kind, value in _SAMPLES:
        if isinstance(type_, kind):
            return value
    return 1  # an untyped bind parameter: a LIMIT or an OFFSET


_SAMPLES: list[tuple[type, Any]] = [
    (JSON, {"k": ["v", 1, None], "n": {"b": True}}),
    (Boolean, True),
    (Integer, 1),
    (DateTime, NOW),
    (LargeBinary, b"\x00x"),
    (String, "x"),
]


def _row(table: Any) -> dict[str, Any]:
    return {column.key: _sample(column.type) for column in table.columns}


def _parameters(statement: Any, dialect: Any) -> dict[str, Any]:
    """A value for each parameter the caller names (not the literals bound in the statement)."""
    compiled = statement.compile(dialect=dialect)
    return {
        bind.key: [_sample(bind.type)] if bind.expanding else _sample(bind.type)
        for bind in compiled.binds.values()
        if not bind.unique
    }


def _outcome(result: Any) -> tuple[Any, ...]:
    try:
        keys = list(result.keys())
    except exc.ResourceClosedError:  # SQLAlchemy's answer to a statement that returns no rows
        keys = []
    if not keys:
        return ("count", result.rowcount)
    return ("rows", keys, [tuple(_plain(v) for v in row) for row in result.all()])


def _plain(value: Any) -> Any:
    # A server default (now()) differs between two transactions; its type and time zone must not.
    if isinstance(value, datetime) and value != NOW:
        return ("datetime", value.tzinfo is not None)
    return (type(value).__name__, value)


async def _seed(conn: Any, empty: frozenset[str]) -> None:
    for table in tables.metadata.sorted_tables:
        if table.name not in empty:
            await conn.execute(insert(table), _row(table))


def _left_empty(statement: Any) -> frozenset[str]:
    """For an INSERT: its table and those referring to it stay empty, so the row goes in."""
    if not getattr(statement, "is_insert", False):
        return frozenset()
    empty = {statement.table.name}
    for table in tables.metadata.sorted_tables:  # referred tables come first
        if any(key.column.table.name in empty for key in table.foreign_keys):
            empty.add(table.name)
    return frozenset(empty)


async def _on_direct_path(engine: Any, steps: list[tuple[Any, Any]]) -> object:
    try:
        async with db.write(engine) as conn:
            await _seed(conn, _left_empty(steps[0][0]))
            raise _RolledBack([_outcome(await conn.execute(s, p)) for s, p in steps])
    except _RolledBack as done:
        return done.outcome
    except errors.Outage as outage:  # what db.write makes of the driver's error: compare that error
        return ("error", type(outage.__cause__).__name__)
    except Exception as error:
        return ("error", type(error).__name__)


async def _on_sqlalchemy(engine: Any, steps: list[tuple[Any, Any]]) -> object:
    try:
        async with engine.connect() as conn, conn.begin():
            await _seed(conn, _left_empty(steps[0][0]))
            raise _RolledBack([_outcome(await conn.execute(s, p)) for s, p in steps])
    except _RolledBack as done:
        return done.outcome
    except Exception as error:
        return ("error", type(error).__name__)


async def _differences(engine: Any, cases: list[tuple[str, list[tuple[Any, Any]]]]) -> list[str]:
    found = []
    for name, steps in cases:
        direct_outcome = await _on_direct_path(engine, steps)
        own_outcome = await _on_sqlalchemy(engine, steps)
        if direct_outcome != own_outcome:
            found.append(f"{name}:\n  direct:     {direct_outcome}\n  SQLAlchemy: {own_outcome}")
    return found


async def test_every_hot_statement_gives_what_sqlalchemy_gives_on_a_seeded_database(runtime):
    engine = runtime.engine
    cases = [
        (
            str(statement.compile(dialect=engine.dialect)).split("\n")[0],
            [(statement, _parameters(statement, engine.dialect))],
        )
        for statement in SERVICE_STATEMENTS
    ]
    assert len(cases) >= 20  # the claim, the settle, the task, job, event, delivery and attempt inserts ...
    assert "\n".join(await _differences(runtime.engine, cases)) == ""


async def test_every_column_type_reads_back_as_sqlalchemy_reads_it(runtime):
    """Each table read, written (a second row: the seeded one is the first) and refused a duplicate."""
    cases = []
    for (write, read), table in zip(TABLE_STATEMENTS, tables.metadata.sorted_tables, strict=True):
        cases.append((table.name, [(read, None)]))
        cases.append((f"{table.name} seeded row again", [(write, _row(table))]))  # a duplicate key
        unique = {
            c.key: f"{_sample(c.type)}-2"
            for c in table.primary_key.columns
            if isinstance(_sample(c.type), str)
        }
        if unique and len(table.primary_key.columns) == len(unique):
            cases.append((f"{table.name} written", [(write, {**_row(table), **unique}), (read, None)]))
    assert "\n".join(await _differences(runtime.engine, cases)) == ""
