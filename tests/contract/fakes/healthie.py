"""Healthie's GraphQL API, held to Healthie's own published schema.

Every request is parsed, validated and executed with graphql-core against Healthie's schema for API
version 2026-01-01 (`tests/contract/specs/healthie/`, see its SOURCE.md), so a field, argument,
variable or input field that Healthie's schema does not have is refused the way a GraphQL server
refuses it: HTTP 200, `errors` and no `data` (GraphQL spec section 7.1.2, which Healthie says it
follows: https://docs.gethealthie.com/guides/api-concepts/error-handling). Each refusal is also kept
in `schema_errors`, naming the field, so a test can show exactly what the schema refused. Answers are
whatever executing the query over the fake's records gives: only the fields selected, typed by the
schema.

Also as documented: one `POST /graphql` with a JSON body, an API key in `Authorization: Basic <key>`
plus `AuthorizationSource: API` (.../guides/api-concepts/authentication); the
`Healthie-GraphQL-API-Version` header, an unpublished date refused with `UNSUPPORTED_API_VERSION`,
a missing header answered on the 2024-06-01 baseline with warnings, and every version before
2026-07-01 answered with `API_VERSION_SUNSET_WARNING` (.../guides/api-concepts/versioning); the
complexity (2000) and depth (25) limits with their messages, and `TOO_MANY_REQUESTS`
(.../guides/api-concepts/rate-limits); validation failures of a mutation as `messages` on its payload
with HTTP 200 (.../guides/tasks). Inferred, as Healthie does not document them: the 401 body for a
refused key, the 400 for a body that is not JSON or a version Healthie does not know, the `messages`
texts, and graphql-core's wording of schema errors (graphql-ruby words them differently).
"""

import base64
import functools
import json
from pathlib import Path
from typing import Any

import graphql
from graphql.language import ast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import harness

API_KEY = "healthie-test-key"
API_USER_ID = "500"
SPEC = Path(__file__).resolve().parents[1] / "specs" / "healthie" / "schema-2026-01-01.graphql"
SCHEMA_VERSION = "2026-01-01"
"""The API version whose schema is kept; requests on another version cannot be checked, so are refused."""
PUBLISHED_VERSIONS = (  # the version selector of https://docs.gethealthie.com/reference
    "2024-06-01",
    "2024-07-01",
    "2024-10-01",
    "2024-10-20",
    "2024-11-01",
    "2025-01-01",
    "2025-04-01",
    "2025-05-15",
    "2025-07-31",
    "2025-10-15",
    "2025-11-30",
    "2026-01-01",
    "2026-07-01",
    "2026-10-01",
)
BASELINE_VERSION = "2024-06-01"
LATEST_VERSION = "2026-07-01"  # as the versioning page's warnings name it
SUNSET_BEFORE, SUNSET_DATE = "2026-07-01", "2027-01-31"
MAX_COMPLEXITY, MAX_DEPTH, DEFAULT_PAGE_SIZE = 2000, 25, 100
METADATA_LIMIT = 2000


@functools.cache
def schema() -> graphql.GraphQLSchema:
    """Healthie's schema, built once per process (building it takes a couple of seconds)."""
    return graphql.build_schema(SPEC.read_text())


def _patient(pid: str, mrn: str, first: str, last: str, dob: str, sex: str, phone: str) -> dict[str, Any]:
    return {
        "id": pid,
        "record_identifier": mrn,
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}",
        "dob": dob,
        "sex": sex,
        "gender": sex,
        "phone_number": phone,
        "email": f"{first.lower()}.{last.lower()}@example.com",
    }


PATIENTS = (
    _patient("1001", "MRN-1001", "Ava", "Thompson", "1984-03-12", "Female", "555-0100"),
    _patient("1010", "MRN-10010", "Liam", "Garcia", "1979-07-25", "Male", "555-0101"),  # contains MRN-1001
    _patient("2001", "MRN-2000", "Chris", "Morgan", "1990-04-04", "Male", "555-0190"),
    _patient("2002", "MRN-2000", "Chris", "Morgan", "1961-08-30", "Female", "555-0191"),
    _patient("3001", "", "Mia", "Patel", "1991-11-02", "Female", "555-0102"),
)
MEMBERS = (
    {"id": API_USER_ID, "full_name": "Integration User", "first_name": "Integration", "last_name": "User"},
    {"id": "501", "full_name": "Dana Reyes", "first_name": "Dana", "last_name": "Reyes"},
    {"id": "502", "full_name": "Jordan Lee", "first_name": "Jordan", "last_name": "Lee"},
    {"id": "503", "full_name": "Taylor Brooks", "first_name": "Taylor", "last_name": "Brooks"},
)


def errors(status: int, message: str, code: str | None = None, **extensions: str) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code, **extensions}
    return JSONResponse({"errors": [error]}, status_code=status)


class FakeHealthie(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.tokens.add(API_KEY)  # an API key: valid until the test expires it
        self.patients = [dict(p) for p in PATIENTS]
        self.members = [dict(m) for m in MEMBERS]
        self.existing: list[dict[str, Any]] = [
            self._task("8001", "Call back about labs", "1001", ["501"], '{"source":"ui"}', created_by="501"),
            self._task("8002", "Old integration task", "1001", ["502"], '{"emrtasks_task_id":"task_old"}'),
        ]
        self.next_id = 9000
        self.schema_errors: list[str] = []
        """What Healthie's schema refused, one line per error: `<operation>: <graphql-core message>`."""
        self.app = Starlette(routes=[Route("/graphql", self.endpoint, methods=["POST"])])

    async def endpoint(self, request: Request) -> JSONResponse:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
        except ValueError:
            return errors(400, "The request body is not valid JSON.")
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return errors(200, "No query string was present")
        version = request.headers.get("healthie-graphql-api-version")
        if version is not None and version not in PUBLISHED_VERSIONS:
            return errors(
                400,
                f"API version '{version}' is not supported. Please upgrade to a supported version.",
                "UNSUPPORTED_API_VERSION",
                requested_version=version,
                latest_version=LATEST_VERSION,
            )
        answer = self._answer(version or BASELINE_VERSION, body)
        warnings = _warnings(version)
        if warnings:
            answer["extensions"] = {"warnings": warnings}
        return JSONResponse(answer)

    def _refuse(self, request: Request) -> JSONResponse | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return errors(400, "Requests must be sent with Content-Type: application/json.")
        key = request.headers.get("authorization", "").removeprefix("Basic ").strip()
        source = request.headers.get("authorizationsource")
        if self.refuse_credentials or key not in self.tokens or source != "API":
            return errors(401, "API key is invalid or missing", "UNAUTHENTICATED")
        return None

    def _answer(self, version: str, body: dict[str, Any]) -> dict[str, Any]:
        """Parse, validate, check the limits, then execute over the fake's records."""
        operation = body.get("operationName") if isinstance(body.get("operationName"), str) else None
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        if version != SCHEMA_VERSION:
            message = f"The fake keeps Healthie's schema for {SCHEMA_VERSION} only, not for {version}."
            return self._refused(operation, [graphql.GraphQLError(message)])
        try:
            document = graphql.parse(body["query"])
        except graphql.GraphQLError as error:
            return self._refused(operation, [error])
        problems = graphql.validate(schema(), document)
        if problems:
            return self._refused(operation, problems)
        limit = _limit_exceeded(document, variables)
        if limit:
            return {"errors": [{"message": limit}]}
        result = graphql.execute_sync(
            schema(), document, _Root(self), variable_values=variables, operation_name=operation
        )
        if result.errors:  # bad variables (no data), or records the schema does not allow (a fake bug)
            self.schema_errors.extend(f"{operation}: {e.message}" for e in result.errors)
        return result.formatted

    def _refused(self, operation: str | None, problems: list[graphql.GraphQLError]) -> dict[str, Any]:
        self.schema_errors.extend(f"{operation}: {p.message}" for p in problems)
        return {"errors": [p.formatted for p in problems]}

    def create_task(self, task_input: dict[str, Any]) -> dict[str, Any]:
        messages = self._check_task(task_input)
        if messages:
            return {"task": None, "messages": messages}
        self.next_id += 1
        assignees = list(task_input.get("assignee_ids") or [API_USER_ID])
        task = self._task(
            str(self.next_id),
            task_input["content"],
            task_input.get("client_id"),
            assignees,
            task_input.get("metadata"),
        )
        self.created.append(task)
        return {"task": task, "messages": None}

    def _check_task(self, task_input: dict[str, Any]) -> list[dict[str, str]]:
        found = []
        if not str(task_input.get("content") or "").strip():
            found.append({"field": "content", "message": "can't be blank"})
        client_id = task_input.get("client_id")
        if client_id is not None and client_id not in {p["id"] for p in self.patients}:
            found.append({"field": "client_id", "message": "Client not found"})
        members = {m["id"] for m in self.members}
        if any(a not in members for a in task_input.get("assignee_ids") or []):
            found.append({"field": "assignee_ids", "message": "Assignee not found"})
        metadata = task_input.get("metadata")
        if metadata is not None and (not isinstance(metadata, str) or not _is_json(metadata)):
            found.append({"field": "metadata", "message": "must be a serialized JSON string"})
        elif metadata is not None and len(metadata) > METADATA_LIMIT:
            found.append({"field": "metadata", "message": "is too long (maximum is 2000 characters)"})
        return found

    def tasks(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        found = [*self.existing, *self.created]
        if args.get("created_by_self") is not None:
            mine = bool(args["created_by_self"])
            found = [t for t in found if (t["created_by_id"] == API_USER_ID) == mine]
        if args.get("order_by") == "CREATED_DESC":
            found.sort(key=lambda t: int(t["id"]), reverse=True)
        return found

    @staticmethod
    def _task(
        task_id: str,
        content: str,
        client_id: str | None,
        assignees: list[str],
        metadata: str | None,
        created_by: str = API_USER_ID,
    ) -> dict[str, Any]:
        return {
            "id": task_id,
            "content": content,
            "client_id": client_id,
            "assignee_ids": assignees,
            "user_id": assignees[0],
            "created_by_id": created_by,
            "metadata": metadata,
            "priority": 0,
            "complete": False,
            "hidden": False,
            "seen": False,
            "smart": False,
            "created_at": "2026-12-01 09:00:00 -0500",
        }


class _Root:
    """The root value: graphql-core's default resolver calls these with (info, **arguments)."""

    def __init__(self, fake: FakeHealthie) -> None:
        self._fake = fake

    def users(self, _info: graphql.GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        found = [p for p in self._fake.patients if _matches(p, args.get("keywords"))]
        return _connection(found, args)

    def organizationMembers(self, _info: graphql.GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        return _connection(self._fake.members, args)

    def tasks(self, _info: graphql.GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        return _connection(self._fake.tasks(args), args)

    def createTask(self, _info: graphql.GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        return self._fake.create_task(args.get("input") or {})


def _warnings(version: str | None) -> list[dict[str, str]]:
    """Healthie's warnings in `extensions` (documented; in force since 2026-07-01)."""
    found = []
    if version is None:
        found.append({"code": "MISSING_API_VERSION_HEADER", "latest_version": LATEST_VERSION})
    served = version or BASELINE_VERSION
    if served < SUNSET_BEFORE:
        found.append(
            {
                "code": "API_VERSION_SUNSET_WARNING",
                "message": f"API version {served} is deprecated and will be sunset on {SUNSET_DATE}. "
                "Please upgrade to a supported version.",
                "requested_version": served,
                "sunset_date": SUNSET_DATE,
                "latest_version": LATEST_VERSION,
            }
        )
    return found


def _limit_exceeded(document: ast.DocumentNode, variables: dict[str, Any]) -> str | None:
    """Healthie's documented limits: each field costs 1, times the page size (`first`/`last`, else 100)
    of every connection it is under; depth counts root fields as 1."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, ast.FragmentDefinitionNode)}
    complexity = depth = 0
    for definition in document.definitions:
        if isinstance(definition, ast.OperationDefinitionNode):
            cost, deepest = _cost(definition.selection_set, fragments, variables, 1, 1, False)
            complexity, depth = max(complexity, cost), max(depth, deepest)
    if complexity > MAX_COMPLEXITY:
        return f"Query has complexity of {complexity}, which exceeds max complexity of {MAX_COMPLEXITY}"
    if depth > MAX_DEPTH:
        return f"Query has depth of {depth}, which exceeds max depth of {MAX_DEPTH}"
    return None


def _cost(
    selections: ast.SelectionSetNode,
    fragments: dict[str, ast.FragmentDefinitionNode],
    variables: dict[str, Any],
    multiplier: int,
    level: int,
    in_connection: bool,
) -> tuple[int, int]:
    cost, deepest = 0, level - 1
    for field in _fields(selections, fragments):
        cost, deepest = cost + multiplier, max(deepest, level)
        if field.selection_set is None:
            continue
        inner, connection = multiplier, _page_size(field, variables)
        if in_connection and field.name.value in ("nodes", "edges"):
            inner = multiplier * in_connection
        child_cost, child_depth = _cost(
            field.selection_set, fragments, variables, inner, level + 1, connection
        )
        cost, deepest = cost + child_cost, max(deepest, child_depth)
    return cost, deepest


def _fields(
    selections: ast.SelectionSetNode, fragments: dict[str, ast.FragmentDefinitionNode]
) -> list[ast.FieldNode]:
    found: list[ast.FieldNode] = []
    for selection in selections.selections:
        if isinstance(selection, ast.FieldNode):
            found.append(selection)
        elif isinstance(selection, ast.InlineFragmentNode):
            found += _fields(selection.selection_set, fragments)
        elif isinstance(selection, ast.FragmentSpreadNode) and selection.name.value in fragments:
            found += _fields(fragments[selection.name.value].selection_set, fragments)
    return found


def _page_size(field: ast.FieldNode, variables: dict[str, Any]) -> int | bool:
    """The page size of a connection field (one selecting `nodes` or `edges`); False for other fields."""
    assert field.selection_set is not None
    names = {s.name.value for s in field.selection_set.selections if isinstance(s, ast.FieldNode)}
    if not names & {"nodes", "edges"}:
        return False
    for argument in field.arguments:
        if argument.name.value in ("first", "last"):
            value = graphql.value_from_ast_untyped(argument.value, variables)
            if isinstance(value, int):
                return value
    return DEFAULT_PAGE_SIZE


def _matches(patient: dict[str, Any], keywords: str | None) -> bool:
    """Healthie's keywords: every term must match id, a name, record_identifier, email or dob."""
    fields = ("id", "first_name", "last_name", "record_identifier", "email", "dob")
    text = " ".join(str(patient[f]) for f in fields).lower()
    return all(term.lower() in text for term in (keywords or "").split())


def _cursor(position: int) -> str:
    return base64.b64encode(json.dumps({"k": [position]}).encode()).decode()


def _position(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(json.loads(base64.b64decode(cursor))["k"][0])


def _connection(items: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
    """A Relay connection (`nodes`, `edges`, `page_info`, `total_count`) paged with `first`/`after`."""
    start = _position(args.get("after"))
    size = args.get("first") or DEFAULT_PAGE_SIZE
    chosen = items[start : start + size]
    more = start + size < len(items)
    return {
        "nodes": chosen,
        "edges": [{"node": n, "cursor": _cursor(start + i + 1)} for i, n in enumerate(chosen)],
        "page_info": {
            "has_next_page": more,
            "has_previous_page": start > 0,
            "start_cursor": _cursor(start + 1) if chosen else None,
            "end_cursor": _cursor(start + len(chosen)) if chosen else None,
        },
        "total_count": len(items),
    }


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
