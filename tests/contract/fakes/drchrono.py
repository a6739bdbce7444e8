"""DrChrono's REST API as far as the adapter uses it. Every request is first checked against
DrChrono's own OpenAPI document (tests/contract/specs/drchrono/, see SOURCE.md); the fake then
enforces what the document cannot say: the OAuth2 refresh-token grant (form-encoded, client
credentials in the body, the refresh token rotated on each use), bearer tokens, JSON bodies, exactly
one of `assignee_user` / `assignee_group`, and ids that must name a status, category, user, group,
patient or task. Notes are written with `POST /api/task_notes` (DrChrono's documented "Create a task
note", `task` and `text` required); a task's nested `notes` are a verbose-only read field
(`x-verbose-required`), so a `POST /api/tasks` stores none of them. Lists page as DrChrono's docs
say: `{"previous", "results", "next"}`, with `page_size` and a `cursor` in absolute `next` URLs.
Errors have Django REST framework's shape: `{"field": ["message"]}`, `{"detail": "..."}`."""

import base64
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import harness, openapi_check

CLIENT_ID = "drchrono-client"
CLIENT_SECRET = "drchrono-s3cret"
FIRST_REFRESH_TOKEN = "refresh-0"
OPEN_STATUS = 501
PATIENTS = {
    100001: ("MRN-1001", "Ava", "Thompson", "1984-03-12", "Female"),
    100002: ("MRN-2000", "Chris", "Morgan", "1990-04-04", "Male"),
    100003: ("MRN-2000", "Chris", "Morgan", "1961-08-30", "Female"),
    100004: ("MRN-1002", "Liam", "Garcia", "1979-07-25", "Male"),
}
USERS = {201: ("drreyes", True), 202: ("jlee", False), 203: ("tbrooks", False)}
GROUPS = {301: "Nurses", 302: "Billing"}
CATEGORIES = {401: "Prescription refill", 402: "Lab results", 403: "Appointment request"}
STATUSES = {OPEN_STATUS: "Open", 502: "Complete"}
ITEM_TYPES = ("Document", "Message", "Lab result", "Lab order", "Patient", "Appointment", "Lab document")


def field_error(field: str, message: str) -> JSONResponse:
    return JSONResponse({field: [message]}, status_code=400)


def invalid_pk(field: str, value: Any) -> JSONResponse:
    return field_error(field, f'Invalid pk "{value}" - object does not exist.')


class FakeDrChrono(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.page_size = 2  # small pages, so the adapter must follow `next`
        self.refresh_tokens = {FIRST_REFRESH_TOKEN}
        self.refreshes = 0
        self.notes: list[dict[str, Any]] = []
        """The task notes DrChrono holds (`/api/task_notes`), each naming its `task`."""
        self.failing_notes: list[int] = []
        """Statuses the next note writes answer without writing (works when served on loopback too)."""
        self.spec = openapi_check.Spec(openapi_check.load("drchrono/openapi.json"), body_from_response=True)
        self.app = Starlette(
            routes=[
                Route("/o/token/", self.token, methods=["POST"]),
                Route("/api/patients", self.list_patients, methods=["GET"]),
                Route("/api/users", self.list_users, methods=["GET"]),
                Route("/api/user_groups", self.list_groups, methods=["GET"]),
                Route("/api/task_categories", self.list_categories, methods=["GET"]),
                Route("/api/tasks", self.list_tasks, methods=["GET"]),
                Route("/api/tasks", self.create_task, methods=["POST"]),
                Route("/api/task_notes", self.list_notes, methods=["GET"]),
                Route("/api/task_notes", self.create_note, methods=["POST"]),
            ]
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path == "/o/token/"

    def spec_skips(self, path: str) -> bool:
        return path == "/o/token/"  # OAuth, outside DrChrono's OpenAPI document

    def notes_of(self, task_id: int) -> list[dict[str, Any]]:
        return [n for n in self.notes if n["task"] == task_id]

    # --- auth ---
    async def token(self, request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        form = await request.form()
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        presented = str(form.get("refresh_token"))
        if self.refuse_credentials or presented not in self.refresh_tokens:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        self.refreshes += 1
        self.refresh_tokens = {f"refresh-{self.refreshes}"}  # rotated: the old one is spent
        body = {
            "access_token": self.issue_token(),
            "token_type": "Bearer",
            "expires_in": 172800,
            "refresh_token": f"refresh-{self.refreshes}",
            "scope": "patients:read tasks:read tasks:write user:read",
        }
        return JSONResponse(body)

    def _refused(self, request: Request) -> JSONResponse | None:
        if self.bearer_ok(request.headers.get("authorization")):
            return None
        return JSONResponse({"detail": "Authentication credentials were not provided."}, status_code=401)

    # --- directory ---
    async def list_patients(self, request: Request) -> JSONResponse:
        chart_id = request.query_params.get("chart_id")
        found = [self.patient(pid) for pid, p in PATIENTS.items() if chart_id in (None, p[0])]
        return self._refused(request) or self.page(request, found)

    @staticmethod
    def patient(pid: int) -> dict[str, Any]:
        chart_id, first, last, dob, gender = PATIENTS[pid]
        return {
            "id": pid,
            "chart_id": chart_id,
            "first_name": first,
            "last_name": last,
            "date_of_birth": dob,
            "gender": gender,
            "cell_phone": "(555) 010-0100",
            "doctor": 201,
        }

    async def list_users(self, request: Request) -> JSONResponse:
        users = [
            {"id": uid, "username": name, "is_doctor": doctor, "is_staff": not doctor, "practice_group": 1}
            for uid, (name, doctor) in USERS.items()
        ]
        return self._refused(request) or self.page(request, users)

    async def list_groups(self, request: Request) -> JSONResponse:
        groups = [
            {"id": gid, "name": name, "members": [202], "practice_group": 1} for gid, name in GROUPS.items()
        ]
        return self._refused(request) or self.page(request, groups)

    async def list_categories(self, request: Request) -> JSONResponse:
        found = [
            {"id": cid, "name": name, "archived": False, "practice_group": 1}
            for cid, name in CATEGORIES.items()
        ]
        found.append({"id": 499, "name": "Old category", "archived": True, "practice_group": 1})
        return self._refused(request) or self.page(request, found)

    # --- tasks ---
    async def list_tasks(self, request: Request) -> JSONResponse:
        since = request.query_params.get("since")
        found = [t for t in self.created if since is None or t["updated_at"][:10] >= since[:10]]
        return self._refused(request) or self.page(request, found)

    async def create_task(self, request: Request) -> JSONResponse:
        refused = self._refused(request)
        if refused:
            return refused
        if request.headers.get("content-type") != "application/json":
            return JSONResponse({"detail": "Unsupported media type in request."}, status_code=415)
        body = await request.json()
        problem = self._check_task(body)
        if problem is not None:
            return problem
        return JSONResponse(self._store(body), status_code=201)

    def _check_task(self, body: dict[str, Any]) -> JSONResponse | None:
        for field in ("title", "status"):
            if body.get(field) in (None, ""):
                return field_error(field, "This field is required.")
        if body["status"] not in STATUSES:
            return invalid_pk("status", body["status"])
        if "category" in body and body["category"] not in CATEGORIES:
            return invalid_pk("category", body["category"])
        return self._check_assignee(body) or self._check_items(body.get("associated_items") or [])

    @staticmethod
    def _check_assignee(body: dict[str, Any]) -> JSONResponse | None:
        user, group = body.get("assignee_user"), body.get("assignee_group")
        if (user is None) == (group is None):
            return field_error("non_field_errors", "Either assignee_user or assignee_group should be set")
        if user is not None and (not isinstance(user, str) or not user.isdigit() or int(user) not in USERS):
            return invalid_pk("assignee_user", user)
        if group is not None and group not in GROUPS:
            return invalid_pk("assignee_group", group)
        return None

    @staticmethod
    def _check_items(items: list[dict[str, Any]]) -> JSONResponse | None:
        for item in items:
            if item.get("type") not in ITEM_TYPES:
                return JSONResponse(
                    {"associated_items": [{"type": ["Not a valid choice."]}]}, status_code=400
                )
            if item["type"] == "Patient" and item.get("value") not in PATIENTS:
                error = {"value": [f'Invalid pk "{item.get("value")}" - object does not exist.']}
                return JSONResponse({"associated_items": [error]}, status_code=400)
        return None

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        task_id = 7000 + len(self.created)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        task = {
            **body,
            "id": task_id,
            "created_at": now,
            "updated_at": now,
            "created_by": "202",
            "archived": False,
            # Nested notes are not written by a task create: DrChrono documents notes only through
            # POST /api/task_notes (which needs the task's id) and returns `notes` only with
            # verbose=true (`x-verbose-required`); see docs/emr/drchrono.md.
            "notes": [],
            "associated_items": [{**i, "task": task_id} for i in body.get("associated_items") or []],
        }
        self.created.append(task)
        return task

    # --- task notes ---
    async def list_notes(self, request: Request) -> JSONResponse:
        task = request.query_params.get("task")
        found = [n for n in self.notes if task is None or str(n["task"]) == task]
        return self._refused(request) or self.page(request, found)

    async def create_note(self, request: Request) -> JSONResponse:
        refused = self._refused(request)
        if refused:
            return refused
        if request.headers.get("content-type") != "application/json":
            return JSONResponse({"detail": "Unsupported media type in request."}, status_code=415)
        if self.failing_notes:
            return JSONResponse({"detail": "Server Error"}, status_code=self.failing_notes.pop(0))
        body = await request.json()
        task = next((t for t in self.created if t["id"] == body.get("task")), None)
        if task is None:
            return invalid_pk("task", body.get("task"))
        if not str(body.get("text") or "").strip():
            return field_error("text", "This field may not be blank.")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        note = {
            "id": 9000 + len(self.notes),
            "task": task["id"],
            "text": body["text"],
            "archived": False,
            "created_at": now,
            "updated_at": now,
            "created_by": "202",
        }
        self.notes.append(note)
        task["updated_at"] = now
        return JSONResponse(note, status_code=201)

    # --- paging, as DrChrono does it: page_size, and an opaque cursor in absolute next URLs ---
    def page(self, request: Request, items: list[dict[str, Any]]) -> JSONResponse:
        start = _offset(request.query_params.get("cursor"))
        size = min(int(request.query_params.get("page_size", self.page_size)), self.page_size)
        chosen = items[start : start + size]
        more = start + size < len(items)
        nxt = str(request.url.include_query_params(cursor=_cursor(start + size))) if more else None
        return JSONResponse({"previous": None, "next": nxt, "results": chosen})


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o={offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    return int(base64.urlsafe_b64decode(cursor.encode()).decode()[2:]) if cursor else 0
