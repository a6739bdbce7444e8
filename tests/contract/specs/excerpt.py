"""Makes a verbatim excerpt of a vendor's OpenAPI document: the paths named, every component they
reference (transitively, through `$ref`), and every other top-level key as it is. Nothing inside a
kept path or component is changed; the excerpt is written as JSON (from YAML sources too).

    python tests/contract/specs/excerpt.py SOURCE OUT PATH [PATH ...]

Used for the DrChrono and Elation specs (see each SOURCE.md), whose whole documents run to
hundreds of kilobytes; re-running it on the same source reproduces the committed file.
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def read(source: Path) -> dict[str, Any]:
    text = source.read_text(encoding="utf-8")
    return json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)


def references(node: Any) -> set[str]:
    """Every local `$ref` inside a node."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
                found.add(value)
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def pointer(document: dict[str, Any], ref: str) -> tuple[str, ...]:
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/"))


def excerpt(document: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    missing = [p for p in paths if p not in document["paths"]]
    if missing:
        raise SystemExit(f"not in the document: {missing}")
    kept_paths = {p: document["paths"][p] for p in paths}
    wanted: set[tuple[str, ...]] = set()
    todo = references(kept_paths)
    while todo:
        where = pointer(document, todo.pop())
        if where in wanted:
            continue
        wanted.add(where)
        node: Any = document
        for part in where:
            node = node[part]
        todo |= references(node)
    components: dict[str, Any] = {}
    for section, items in (document.get("components") or {}).items():
        if section == "schemas":
            kept = {name: body for name, body in items.items() if ("components", section, name) in wanted}
        elif section == "securitySchemes":
            kept = items  # small, and what the operations' `security` names
        else:
            kept = {name: body for name, body in items.items() if ("components", section, name) in wanted}
        if kept:
            components[section] = kept
    out = {}
    for key, value in document.items():
        if key == "paths":
            out[key] = kept_paths
        elif key == "components":
            out[key] = components
        else:
            out[key] = value
    return out


def main(argv: list[str]) -> None:
    source, target, *paths = argv
    result = excerpt(read(Path(source)), paths)
    Path(target).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
