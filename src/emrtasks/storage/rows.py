"""Typed rows: what storage hands the layers above is a frozen dataclass built here from a database
row, each field read by its name, so a renamed or missing column fails where the row is read."""

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

_Row = TypeVar("_Row")


def build(cls: type[_Row], row: Mapping[Any, Any]) -> _Row:
    """`cls` (a dataclass) from the row's columns of the same names; other columns are left out."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: row[name] for name in names})


def build_all(cls: type[_Row], found: Any) -> list[_Row]:
    """`build` over every row of a result's `.mappings()`."""
    return [build(cls, row) for row in found]


def first(cls: type[_Row], row: Mapping[Any, Any] | None) -> _Row | None:
    return None if row is None else build(cls, row)
