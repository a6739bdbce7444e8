"""Checks a request against a vendor's own OpenAPI document (3.x or Swagger 2.0), so a vendor fake
refuses what the vendor's published contract refuses, naming the field, instead of only what we
believe of it. `SpecCheck` wraps a fake's ASGI app: every request is checked before the fake sees it;
a request the spec refuses is answered 400 and recorded in `violations`.
"""

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from openapi_schema_validator import OAS30Validator, OAS30WriteValidator, OAS31Validator

SPECS = Path(__file__).parent / "specs"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def load(relative: str) -> dict[str, Any]:
    """A spec file under tests/contract/specs/ (JSON or YAML)."""
    text = (SPECS / relative).read_text(encoding="utf-8")
    return json.loads(text) if relative.endswith(".json") else yaml.safe_load(text)


def merged(*documents: dict[str, Any]) -> dict[str, Any]:
    """One document from several a vendor publishes per API area (Elation's ReadMe splits its API
    2.0 so): their paths and components side by side, the first one's other keys. Two components
    of one name must be the same, or the documents do not describe one API."""
    result = {**documents[0], "paths": {}, "components": {}}
    for document in documents:
        result["paths"].update(document.get("paths") or {})
        for section, items in (document.get("components") or {}).items():
            kept = result["components"].setdefault(section, {})
            for name, body in items.items():
                if name in kept and kept[name] != body:
                    raise ValueError(f"components/{section}/{name} differs between the documents")
                kept[name] = body
    return result


@dataclass(frozen=True)
class _Operation:
    template: str
    pattern: re.Pattern[str]
    method: str
    spec: dict[str, Any]
    inherited: list[dict[str, Any]]


class Spec:
    """One OpenAPI document. `problems` lists everything it refuses in a request, in words."""

    def __init__(
        self, document: dict[str, Any], *, prefix: str = "", body_from_response: bool = False
    ) -> None:
        self.document = document
        self.prefix = prefix.rstrip("/")
        self.body_from_response = body_from_response
        """For documents that give a create no `requestBody` and describe its body only as the
        object it answers (DrChrono's: "POST :endpoint | Create object | 201 | Object(s) created"):
        check the body against that answer's schema, refusing its `readOnly` fields."""
        self.swagger2 = str(document.get("swagger", "")).startswith("2")
        version = str(document.get("openapi", "3.0"))
        self._validator_class = OAS31Validator if version.startswith("3.1") else OAS30Validator
        self._operations = list(self._read_operations())

    def _read_operations(self) -> list[_Operation]:
        found = []
        for template, item in (self.document.get("paths") or {}).items():
            shared = item.get("parameters") or []
            for method, operation in item.items():
                if method.lower() in ("get", "post", "put", "patch", "delete") and isinstance(
                    operation, dict
                ):
                    found.append(
                        _Operation(template, _path_pattern(template), method.upper(), operation, shared)
                    )
        # Literal segments beat templated ones (/users/me before /users/{id}), as routers match them.
        return sorted(found, key=lambda o: o.template.count("{"))

    def operation(self, method: str, path: str) -> _Operation | None:
        path = path.removeprefix(self.prefix) if self.prefix else path
        for op in self._operations:
            if op.method == method.upper() and op.pattern.fullmatch(path):
                return op
        return None

    def problems(self, method: str, path: str, query: str, content_type: str, body: bytes) -> list[str]:
        op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the vendor's spec"]
        where = f"{method} {op.template}"
        parameters = self._parameters(op)
        found = _path_values(op, path.removeprefix(self.prefix) if self.prefix else path)
        query_values = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        problems = [f"{where}: {p}" for p in self._check_parameters(parameters, found, query_values)]
        problems += [f"{where}: {p}" for p in self._check_body(op, parameters, content_type, body)]
        return problems

    def _created_schema(self, op: _Operation) -> dict[str, Any] | None:
        responses = op.spec.get("responses") or {}
        answer = self.resolve(responses.get("201") or responses.get("200") or {})
        return ((answer.get("content") or {}).get("application/json") or {}).get("schema")

    # --- parameters ---
    def _parameters(self, op: _Operation) -> list[dict[str, Any]]:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*op.inherited, *(op.spec.get("parameters") or [])]:
            param = self.resolve(raw)
            merged[(param["in"], param["name"])] = param
        return list(merged.values())

    def _check_parameters(
        self, parameters: list[dict[str, Any]], path_values: dict[str, str], query: dict[str, str]
    ) -> list[str]:
        problems = []
        declared_query = {p["name"] for p in parameters if p["in"] == "query"}
        for name in query:
            if name not in declared_query:
                problems.append(f"query parameter {name!r} is not in the spec")
        for param in parameters:
            source = {"path": path_values, "query": query}.get(param["in"])
            if source is None:
                continue
            if param["name"] not in source:
                if param.get("required"):
                    problems.append(f"missing required {param['in']} parameter {param['name']!r}")
                continue
            schema = param.get("schema") or {
                k: v for k, v in param.items() if k in ("type", "enum", "format")
            }
            value = _coerce(source[param["name"]], self.resolve(schema), self.resolve)
            problems += [
                f"{param['in']} parameter {param['name']!r}: {e}" for e in self._schema_errors(schema, value)
            ]
        return problems

    # --- bodies ---
    def _check_body(
        self, op: _Operation, parameters: list[dict[str, Any]], content_type: str, body: bytes
    ) -> list[str]:
        media = content_type.split(";")[0].strip().lower()
        schema, required, accepted = self._body_schema(op, parameters, media)
        if not body:
            return ["the request body is required"] if required else []
        if accepted is not None and media not in accepted:
            return [f"content type {media or 'none'!r} is not accepted (spec: {', '.join(accepted)})"]
        if schema is None:
            return []
        try:
            value = _decode(media, body, self.resolve(schema))
        except ValueError as exc:
            return [f"the body is not {media}: {exc}"]
        written = self.body_from_response and not (op.spec.get("requestBody") or self.swagger2)
        return [f"body: {e}" for e in self._schema_errors(schema, value, writing=written)]

    def _body_schema(
        self, op: _Operation, parameters: list[dict[str, Any]], media: str
    ) -> tuple[dict[str, Any] | None, bool, list[str] | None]:
        if self.swagger2:
            body = next((p for p in parameters if p["in"] == "body"), None)
            form = [p for p in parameters if p["in"] == "formData"]
            if body is not None:
                return body.get("schema"), bool(body.get("required")), None
            if form:
                props = {
                    p["name"]: {k: v for k, v in p.items() if k in ("type", "enum", "format", "items")}
                    for p in form
                }
                required = [p["name"] for p in form if p.get("required")]
                return {"type": "object", "properties": props, "required": required}, bool(required), None
            return None, False, None
        request_body = self.resolve(op.spec.get("requestBody") or {})
        content = request_body.get("content") or {}
        if not content and self.body_from_response and op.method in ("POST", "PUT", "PATCH"):
            return self._created_schema(op), False, None
        if not content:
            return None, False, None
        chosen = content.get(media) or next(
            (v for k, v in content.items() if k.endswith("/*") and media.startswith(k[:-1])), None
        )
        schema = (chosen or {}).get("schema")
        return schema, bool(request_body.get("required")), list(content)

    # --- schemas ---
    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 20:
            node = self._pointer(node["$ref"])
            seen += 1
        return node

    def _pointer(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported: {ref}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _schema_errors(self, schema: dict[str, Any], value: Any, *, writing: bool = False) -> list[str]:
        # Validate with the whole document as the root so "#/components/..." and "#/definitions/..." resolve.
        root = {**self.document, **schema}
        # A request sends no readOnly field (OAS 3.0 §4.7.25.1); the write validator refuses them.
        chosen = OAS30WriteValidator if writing and self._validator_class is OAS30Validator else None
        validator = (chosen or self._validator_class)(root)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        return [_describe(e) for e in errors]


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(f"(?P<p{i}>[^/]+)" if p.startswith("{") else re.escape(p) for i, p in enumerate(parts))
    return re.compile(regex.rstrip("/") + "/?")


def _path_values(op: _Operation, path: str) -> dict[str, str]:
    match = op.pattern.fullmatch(path)
    names = re.findall(r"\{([^}]+)\}", op.template)
    return dict(zip(names, match.groups(), strict=False)) if match else {}


def _coerce(
    raw: str, schema: dict[str, Any], resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> Any:
    """A query or path string as the type its schema declares (what a server's parser would make):
    an array (`style: form`, `explode: false`, "1,2") item by item as its `items` declare."""
    kind = schema.get("type")
    if isinstance(kind, list):  # OAS 3.1: ["integer", "null"]
        kind = next((k for k in kind if k != "null"), None)
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    if kind == "array":
        items = schema.get("items") or {}
        items = resolve(items) if resolve else items
        return [_coerce(part, items, resolve) for part in raw.split(",")]
    return raw


def _decode(media: str, body: bytes, schema: dict[str, Any]) -> Any:
    if media == "application/x-www-form-urlencoded" or media == "multipart/form-data":
        if media == "multipart/form-data":
            raise ValueError("multipart bodies are not checked")
        props = schema.get("properties") or {}
        return {
            k: _coerce(v[-1], props.get(k) or {})
            for k, v in parse_qs(body.decode(), keep_blank_values=True).items()
        }
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(str(exc)) from exc


class SpecCheck:
    """ASGI middleware: checks each request against `spec`; a refused one is answered 400 with the
    problems (and kept in `violations`, which the contract suite asserts is empty)."""

    def __init__(
        self, app: Any, spec: Spec, violations: list[str], *, skip: Callable[[str], bool] | None = None
    ):
        self.app = app
        self.spec = spec
        self.violations = violations
        self.skip = skip or (lambda path: False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.skip(scope["path"]):
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers") or []}
        problems = self.spec.problems(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode(),
            headers.get("content-type", ""),
            body,
        )
        if problems:
            self.violations.extend(problems)
            await _answer_400(send, problems)
            return
        replay = iter(messages)

        async def replayed() -> MutableMapping[str, Any]:
            return next(replay, {"type": "http.disconnect"})

        await self.app(scope, replayed, send)


async def _read_body(receive: Receive) -> tuple[bytes, list[MutableMapping[str, Any]]]:
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks), messages


async def _answer_400(send: Send, problems: list[str]) -> None:
    payload = json.dumps({"spec_violations": problems}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
