"""Strict JSON bodies: `Content-Type: application/json` (UTF-8) or 415, and no key given twice.

A body read whatever its media type, or an object with a key given twice (orjson keeps the last,
other parsers keep the first), lets a proxy or a client's own checks see one request while we act on
another: a parser differential. Both are refused before any field is looked at.
"""

import json
from typing import Any

from emrtasks.domain import errors

_JSON = "application/json"
_UTF8 = frozenset({"utf-8", "utf8"})


def check_media_type(content_type: str | None) -> None:
    """415 unless the body is declared `application/json`, optionally with `charset=utf-8`."""
    if content_type == _JSON:  # what nearly every client sends: no parsing
        return
    if content_type is None or not _is_json(content_type):
        raise errors.Problem(
            415,
            "unsupported_media_type",
            "Unsupported Content-Type: send the body as JSON, with Content-Type: application/json.",
            headers=(("Accept-Post", _JSON),),
        )


def _is_json(content_type: str) -> bool:
    media_type, *parameters = content_type.split(";")
    if media_type.strip().lower() != _JSON:
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        if name and (name != "charset" or value.strip().strip('"').lower() not in _UTF8):
            return False  # JSON is UTF-8 (RFC 8259 section 8.1): any other charset is a different body
    return True


def check_duplicates(data: bytes, parsed: object) -> None:
    """400 if an object in the body names a key twice.

    orjson drops duplicates silently, so they are looked for only when they could be there: each
    member of an object has one `:` outside strings, so a body with no more colons than the parsed
    objects have keys has no duplicate. Otherwise (a colon in a value, or a duplicate) the body is
    parsed once more, keeping every pair."""
    if data.count(b":") <= _members(parsed):
        return
    try:
        json.loads(data, object_pairs_hook=_refuse_duplicates)
    except _Duplicate as found:
        name = errors.echo(found.name)
        message = f"Duplicate field in request body: {name}"
        raise errors.Problem(
            400, "duplicate_field", message, (errors.FieldError(name, "duplicate_field", message),)
        ) from None
    except RecursionError:  # orjson nests deeper than Python's parser: no body of ours does
        raise errors.Problem(400, "invalid_body", "Request body is nested too deeply.") from None


def _members(value: object) -> int:
    """How many keys the parsed objects hold (without recursion: orjson accepts deep nesting)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        children: Any = item.values() if type(item) is dict else item if type(item) is list else ()
        if type(item) is dict:
            count += len(item)
        stack.extend(child for child in children if type(child) in (dict, list))
    return count


class _Duplicate(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Duplicate(name)
            seen.add(name)
    return found
