"""Typed rows: what storage hands the layers above is a frozen dataclass built here from a database
row, each field read by its name, so a renamed or missing column fails where the row is read. A field
typed with a `StrEnum` of `domain.states` gets the member, not the stored string."""

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

_Row = TypeVar("_Row")


def build(cls: type[_Row], row: Mapping[Any, Any]) -> _Row:
    """`cls` (a dataclass) from the row's columns of the same names; other columns are left out."""
    return cls(**{name: read(row[name]) for name, read in _readers(cls)})


def from_values(cls: type[_Row], values: Sequence[Any]) -> _Row:
    """`cls` from a row's values in the order of its fields (a hot statement's columns, read by
    position; tests/unit/test_rows.py holds each such class to its table's column order)."""
    if len(values) != len(_readers(cls)):
        raise ValueError(f"{cls.__name__} takes {len(_readers(cls))} values, not {len(values)}")
    found = list(values)
    for at, member in _members(cls):  # only the state columns need a conversion
        found[at] = member(found[at])
    return cls(*found)


def build_all(cls: type[_Row], found: Iterable[Mapping[Any, Any]]) -> list[_Row]:
    """`build` over every row of a result's `.mappings()`."""
    return [build(cls, row) for row in found]


def first(cls: type[_Row], row: Mapping[Any, Any] | None) -> _Row | None:
    return None if row is None else build(cls, row)


def _same(value: Any) -> Any:
    return value


_Readers = tuple[tuple[str, Callable[[Any], Any]], ...]
_READERS: dict[Any, _Readers] = {}


def _readers(cls: Any) -> _Readers:
    """Each field's name and what turns its column's value into the field's (worked out once)."""
    found = _READERS.get(cls)
    if found is None:
        found = _READERS[cls] = tuple((f.name, _reader(f.type)) for f in dataclasses.fields(cls))
    return found


_MEMBERS: dict[Any, tuple[tuple[int, Callable[[Any], Any]], ...]] = {}


def _members(cls: Any) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """Where a class's StrEnum fields are, by position, and their types."""
    found = _MEMBERS.get(cls)
    if found is None:
        found = _MEMBERS[cls] = tuple(
            (at, read) for at, (_name, read) in enumerate(_readers(cls)) if read is not _same
        )
    return found


def _reader(kind: Any) -> Callable[[Any], Any]:
    if isinstance(kind, type) and issubclass(kind, enum.StrEnum):
        return kind
    return _same
