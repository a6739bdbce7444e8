"""Healthie's GraphQL API as documented (https://docs.gethealthie.com/guides/quick-start, .../guides/tasks,
.../guides/api-concepts/authentication, .../versioning, .../rate-limits): one `POST /graphql` with a JSON
body, an API key in `Authorization: Basic <key>` plus `AuthorizationSource: API`, the
`Healthie-GraphQL-API-Version` header, validation failures as `messages` on the payload with HTTP 200.

The fake does not parse GraphQL: it reads the root field from the document and the arguments from the
variables (the adapter passes every argument as a variable). Inferred, as Healthie does not document
them: the 401 body for a refused key, the 400 for a body that is not JSON, and the `messages` texts.
"""

import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import harness

API_KEY = "healthie-test-key"
API_USER_ID = "500"
VERSIONS = ("2024-06-01", "2024-10-01", "2025-01-01", "2025-07-31", "2025-10-15", "2026-01-01", "2026-07-01")
ROOT_FIELDS = ("createTask", "organizationMembers", "tasks", "users")


def _patient(pid: str, mrn: str, first: str, last: str, dob: str, sex: str, phone: str) -> dict[str, Any]:
    return {
        "id": pid,
        "record_identifier": mrn,
        "first_name": first,
        "last_name": last,
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


def errors(status: int, message: str, code: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
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
        self.app = Starlette(routes=[Route("/graphql", self.graphql, methods=["POST"])])

    async def graphql(self, request: Request) -> JSONResponse:
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
        if version is not None and version not in VERSIONS:
            return errors(400, f"API version '{version}' is not supported.", "UNSUPPORTED_API_VERSION")
        answer = self._execute(_root_field(query), body.get("variables") or {})
        if version is None:
            answer["extensions"] = {"warnings": [{"code": "MISSING_API_VERSION_HEADER"}]}
        return JSONResponse(answer)

    def _refuse(self, request: Request) -> JSONResponse | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return errors(400, "Requests must be sent with Content-Type: application/json.")
        key = request.headers.get("authorization", "").removeprefix("Basic ").strip()
        source = request.headers.get("authorizationsource")
        if self.refuse_credentials or key not in self.tokens or source != "API":
            return errors(401, "API key is invalid or missing", "UNAUTHENTICATED")
        return None

    def _execute(self, field: str | None, variables: dict[str, Any]) -> dict[str, Any]:
        if field == "createTask":
            return {"data": {"createTask": self.create_task(variables.get("input") or {})}}
        if field == "users":
            found = [p for p in self.patients if _matches(p, variables.get("keywords"))]
            return {"data": {"users": _page(found, variables)}}
        if field == "organizationMembers":
            return {"data": {"organizationMembers": _page(self.members, variables)}}
        if field == "tasks":
            return {"data": {"tasks": _page(self._tasks(variables), variables)}}
        return {
            "errors": [{"message": "Field is not defined on Query", "extensions": {"code": "undefinedField"}}]
        }

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
        return {"task": {"id": task["id"]}, "messages": None}

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
        elif metadata is not None and len(metadata) > 2000:
            found.append({"field": "metadata", "message": "is too long (maximum is 2000 characters)"})
        return found

    def _tasks(self, variables: dict[str, Any]) -> list[dict[str, Any]]:
        found = [*self.existing, *self.created]
        if variables.get("createdBySelf"):
            found = [t for t in found if t["created_by_id"] == API_USER_ID]
        if variables.get("orderBy") == "CREATED_DESC":
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
        }


def _root_field(query: str) -> str | None:
    """The first root field the document selects (after the operation's own variable list)."""
    selection = query[query.index("{") + 1 :] if "{" in query else ""
    match = re.search(r"\b(" + "|".join(ROOT_FIELDS) + r")\s*[({]", selection)
    return match.group(1) if match else None


def _matches(patient: dict[str, Any], keywords: str | None) -> bool:
    """Healthie's keywords: every term must match id, a name, record_identifier, email or dob."""
    fields = ("id", "first_name", "last_name", "record_identifier", "email", "dob")
    text = " ".join(str(patient[f]) for f in fields).lower()
    return all(term.lower() in text for term in (keywords or "").split())


def _page(items: list[dict[str, Any]], variables: dict[str, Any]) -> dict[str, Any]:
    start = int(variables.get("after") or 0)
    size = int(variables.get("first") or 100)
    chosen = items[start : start + size]
    more = start + size < len(items)
    return {
        "nodes": chosen,
        "page_info": {"has_next_page": more, "end_cursor": str(start + size) if more else None},
        "total_count": len(items),
    }


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
