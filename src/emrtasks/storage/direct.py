"""Statements run straight on the database driver: the hot path's, built once and registered with
`hot()`.

SQLAlchemy compiles each such statement once per dialect and set of parameter names; its bind and
result processors (JSON, UTC times, booleans) are applied as SQLAlchemy applies them, and the
driver's errors are raised as SQLAlchemy's exception types. What is skipped is SQLAlchemy's
per-execution machinery (cache keys, execution contexts, events, and on PostgreSQL its asyncio
adaptation), which cost more than the statements themselves (docs/performance.md). `db.read` and
`db.write` connections use it on SQLite files (storage/db.py) and PostgreSQL (storage/pg.py); any
other statement runs through SQLAlchemy as usual, in the same transaction. What it takes from
SQLAlchemy's private parts, it takes through storage/internals.py.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from emrtasks.storage import internals

# Keyed by id(): the entry keeps its statement alive, so no other object can take that id meanwhile.
_HOT: dict[int, tuple[Executable, dict[tuple[str, ...], "Plan"]]] = {}

S = Any  # a statement; typed loosely so hot() returns what it was given


def hot(statement: S) -> S:
    """Register a statement built once (a module constant) for the direct path; returns it."""
    _HOT[id(statement)] = (statement, {})
    return statement


def registered() -> list[Executable]:
    """Every statement registered with `hot()` so far (the modules that build them are imported)."""
    return [statement for statement, _plans in _HOT.values()]


class Plan:
    """One statement compiled for one dialect with one set of parameter names."""

    __slots__ = (
        "compiled",
        "expanding",
        "keys",
        "processors",
        "result_processors",
        "returns_rows",
        "slots",
        "sql",
    )

    def __init__(self, statement: Executable, names: tuple[str, ...], dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(names)))  # type: ignore[attr-defined]
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("a statement with Python-side column defaults cannot take the direct path")
        self.compiled = compiled
        self.sql = compiled.string
        self.expanding = bool(compiled.literal_execute_params or compiled.post_compile_params)
        self.processors: Mapping[str, Any] = internals.bind_processors(compiled)
        columns = internals.result_columns(compiled)
        self.keys = [column.keyname for column in columns]
        self.result_processors = [internals.result_processor(column.type, dialect) for column in columns]
        self.returns_rows = bool(columns) or compiled.isplaintext
        # Each positional parameter: the caller's key, its bind processor, and the value bound in
        # the statement itself (a literal such as state == 'running') when the caller gives none.
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.required and bind.key not in names:  # SQLAlchemy would refuse it too
                raise ValueError(f"A value is required for bind parameter {bind.key!r}")
        constants = internals.constant_parameters(compiled)
        self.slots: list[tuple[str, Any, Any]] = [
            (compiled.binds[name].key, self.processors.get(name), constants.get(name))
            for name in (compiled.positiontup or ())
        ]

    def arguments(self, parameters: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        if not self.expanding:
            given = parameters or {}
            arguments = []
            for key, processor, constant in self.slots:
                value = given.get(key, constant)
                arguments.append(processor(value) if processor else value)
            return self.sql, arguments
        values = self.compiled.construct_params(dict(parameters or {}), escape_names=False)
        expanded = internals.expand_postcompile(self.compiled, values)
        values, order = expanded.parameters, expanded.positiontup or ()
        processors = {**self.processors, **expanded.processors}
        return expanded.statement, [processors[k](values[k]) if k in processors else values[k] for k in order]

    def rows(self, records: Sequence[Any]) -> list[tuple[Any, ...]]:
        processors = self.result_processors
        if not any(processors):
            return [tuple(record) for record in records]
        return [
            tuple(p(v) if p else v for p, v in zip(processors, record, strict=True)) for record in records
        ]


Rows = CursorResult[*tuple[Any, ...]]
STATUS_COUNT = re.compile(r"(\d+)$")


def plan_for(statement: Executable, parameters: Mapping[str, Any] | None, dialect: Dialect) -> Plan | None:
    """The compiled plan of a hot statement for these parameter names, or None (not hot)."""
    entry = _HOT.get(id(statement))
    if entry is None or not isinstance(parameters, Mapping | None):
        return None  # not hot, or many rows at once
    key = (dialect.name, *sorted(parameters)) if parameters else (dialect.name,)
    plan = entry[1].get(key)
    if plan is None:
        plan = entry[1][key] = Plan(statement, tuple(sorted(parameters or ())), dialect)
    return plan


def rows_result(plan: Plan, records: Sequence[Any], keys: Sequence[str] = ()) -> Rows:
    """The rows as a result, keyed by the statement's columns, or (a textual statement, which names
    none) by the `keys` the driver reported."""
    return cast(Rows, internals.Result(plan.keys or keys, plan.rows(records), len(records)))


def count_result(rowcount: int) -> Rows:
    return cast(Rows, internals.Result((), [], rowcount))
