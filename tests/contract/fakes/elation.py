"""Elation's REST API (and the FHIR Patient search) as far as the adapter uses it. Every REST request
is first checked against Elation's own OpenAPI documents (tests/contract/specs/elation/, see
SOURCE.md); the fake then enforces what they cannot say: form-encoded client-credentials tokens
(outside the documents), bearer tokens, JSON bodies, one of `user` or `group` per thread member
("Should only ever be one of either a user or group set"), and ids that must name a patient,
practice, user or staff group. Lists page with `limit`/`offset` and absolute `next` URLs
(`PaginatedMessageThreadList`: `count`, `next`, `previous`, `results`).
Errors have Django REST framework's shape: `{"field": ["message"]}` and `{"detail": "..."}`."""

from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import harness, openapi_check

API = "/api/2.0"
FHIR = "/fhir/r4"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.1234.mrn"
CLIENT_ID = "emrtasks-client"
CLIENT_SECRET = "elation-s3cret"
PRACTICE = 65540
SENDER = 262151
# Elation patient ids, with the practice's MRN as kept on the FHIR Patient.
PATIENTS = {
    140754786975745: ("MRN-1001", "Ava", "Thompson", "1984-03-12", "Female"),
    140754786975746: ("MRN-2000", "Chris", "Morgan", "1990-04-04", "Male"),
    140754786975747: ("MRN-2000", "Chris", "Morgan", "1961-08-30", "Female"),
    140754786975748: ("MRN-1002", "Liam", "Garcia", "1979-07-25", "Male"),
}
USERS = {
    131074: ("Dana", "Reyes", "physician"),
    131075: ("Sam", "Okafor", "physician"),
    262150: ("Jordan", "Lee", "staff"),
    SENDER: ("Intake", "Bot", "staff"),
}
GROUPS = {851981: "Nursing pool", 851982: "Front desk"}
STATUSES = ("Requiring Action", "Addressed")
REQUIRED = ("patient", "practice", "document_date", "chart_date")
MESSAGE_REQUIRED = ("body", "send_date", "sender")


def field_error(field: str, message: str) -> JSONResponse:
    return JSONResponse({field: [message]}, status_code=400)


def not_found() -> JSONResponse:
    return JSONResponse({"detail": "Not found."}, status_code=404)


class FakeElation(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.page_size = 2  # small pages, so the adapter must follow `next`
        self.threads: list[dict[str, Any]] = []
        self.other_practice_users: dict[int, tuple[str, str, str]] = {}
        """Users the token can list that belong to another practice (`User.practice`)."""
        self.spec = openapi_check.Spec(
            openapi_check.merged(
                *(
                    openapi_check.load(f"elation/{area}.json")
                    for area in ("messaging", "user-management", "practice", "patient-profile")
                )
            )
        )
        self.app = Starlette(
            routes=[
                Route(f"{API}/oauth2/token/", self.token, methods=["POST"]),
                Route(f"{API}/patients/", self.list_patients, methods=["GET"]),
                Route(f"{API}/patients/{{pid:int}}/", self.get_patient, methods=["GET"]),
                Route(f"{FHIR}/Patient", self.fhir_patients, methods=["GET"]),
                Route(f"{API}/users/", self.list_users, methods=["GET"]),
                Route(f"{API}/staff_groups/", self.list_groups, methods=["GET"]),
                Route(f"{API}/message_threads/", self.list_threads, methods=["GET"]),
                Route(f"{API}/message_threads/", self.create_thread, methods=["POST"]),
            ]
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path == f"{API}/oauth2/token/"

    def spec_skips(self, path: str) -> bool:
        # The token endpoint and the FHIR API are outside Elation's REST OpenAPI documents.
        return path == f"{API}/oauth2/token/" or path.startswith(f"{FHIR}/")

    # --- auth ---
    async def token(self, request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        known = form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        if self.refuse_credentials or not known:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = self.issue_token()
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": 36000, "scope": "apiv2"}
        )

    def _refused(self, request: Request) -> JSONResponse | None:
        if self.bearer_ok(request.headers.get("authorization")):
            return None
        return JSONResponse({"detail": "Authentication credentials were not provided."}, status_code=401)

    # --- patients ---
    async def get_patient(self, request: Request) -> JSONResponse:
        refused = self._refused(request)
        pid = request.path_params["pid"]
        return refused or (JSONResponse(self.patient(pid)) if pid in PATIENTS else not_found())

    async def list_patients(self, request: Request) -> JSONResponse:
        return self._refused(request) or self.page(request, [self.patient(pid) for pid in PATIENTS])

    async def fhir_patients(self, request: Request) -> JSONResponse:
        refused = self._refused(request)
        if refused:
            return refused
        wanted = request.query_params.get("identifier")
        found = [
            self.fhir_patient(pid) for pid, p in PATIENTS.items() if wanted in (None, f"{MRN_SYSTEM}|{p[0]}")
        ]
        body = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
        return JSONResponse(
            {**body, "entry": [{"resource": r} for r in found]}, media_type="application/fhir+json"
        )

    @staticmethod
    def patient(pid: int) -> dict[str, Any]:
        _mrn, first, last, dob, sex = PATIENTS[pid]
        return {
            "id": pid,
            "first_name": first,
            "last_name": last,
            "dob": dob,
            "sex": sex,
            "caregiver_practice": PRACTICE,
            "phones": [{"phone": "555-0100", "phone_type": "Mobile"}],
            "deleted_date": None,
            "merged_into_chart": None,
        }

    @staticmethod
    def fhir_patient(pid: int) -> dict[str, Any]:
        mrn, first, last, dob, sex = PATIENTS[pid]
        return {
            "resourceType": "Patient",
            "id": str(pid),
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "name": [{"family": last, "given": [first]}],
            "birthDate": dob,
            "gender": sex.lower(),
        }

    # --- users ---
    async def list_users(self, request: Request) -> JSONResponse:
        users = [
            {
                "id": uid,
                "first_name": f,
                "last_name": la,
                "user_type": t,
                "is_active": True,
                "practice": practice,
            }
            for practice, known in ((PRACTICE, USERS), (PRACTICE + 1, self.other_practice_users))
            for uid, (f, la, t) in known.items()
        ]
        return self._refused(request) or self.page(request, users)

    async def list_groups(self, request: Request) -> JSONResponse:
        groups = [
            {"id": gid, "name": name, "practice": PRACTICE, "deleted_date": None}
            for gid, name in GROUPS.items()
        ]
        return self._refused(request) or self.page(request, groups)

    # --- message threads ---
    async def list_threads(self, request: Request) -> JSONResponse:
        refused = self._refused(request)
        if refused:
            return refused
        since = request.query_params.get("document_date__gte")
        practice = request.query_params.get("practice")
        found = [
            t
            for t in self.created
            if (since is None or _when(t["document_date"]) >= _when(since))
            and (practice is None or str(t["practice"]) == practice)
        ]
        return self.page(request, found)

    async def create_thread(self, request: Request) -> JSONResponse:
        refused = self._refused(request)
        if refused:
            return refused
        if request.headers.get("content-type") != "application/json":
            return JSONResponse({"detail": "Unsupported media type in request."}, status_code=415)
        body = await request.json()
        problem = self._check_thread(body)
        if problem is not None:
            return problem
        thread = self._store(body)
        return JSONResponse(thread, status_code=201)

    def _check_thread(self, body: dict[str, Any]) -> JSONResponse | None:
        for field in REQUIRED:
            if body.get(field) in (None, ""):
                return field_error(field, "This field is required.")
        if body["patient"] not in PATIENTS:
            return field_error("patient", f'Invalid pk "{body["patient"]}" - object does not exist.')
        if body["practice"] != PRACTICE:
            return field_error("practice", f'Invalid pk "{body["practice"]}" - object does not exist.')
        return self._check_members(body.get("members") or []) or self._check_messages(
            body.get("messages") or []
        )

    @staticmethod
    def _check_members(members: list[dict[str, Any]]) -> JSONResponse | None:
        for member in members:
            if member.get("status") not in STATUSES:
                return JSONResponse(
                    {"members": [{"status": ['"x" is not a valid choice.']}]}, status_code=400
                )
            if (member.get("user") is None) == (member.get("group") is None):
                return JSONResponse(
                    {"members": [{"non_field_errors": ["Set a user or a group."]}]}, status_code=400
                )
            if member.get("user") is not None and member["user"] not in USERS:
                error = {"user": [f'Invalid pk "{member["user"]}" - object does not exist.']}
                return JSONResponse({"members": [error]}, status_code=400)
            if member.get("group") is not None and member["group"] not in GROUPS:
                error = {"group": [f'Invalid pk "{member["group"]}" - object does not exist.']}
                return JSONResponse({"members": [error]}, status_code=400)
        return None

    @staticmethod
    def _check_messages(messages: list[dict[str, Any]]) -> JSONResponse | None:
        for message in messages:
            missing = [f for f in MESSAGE_REQUIRED if message.get(f) in (None, "")]
            if missing:
                return JSONResponse(
                    {"messages": [{missing[0]: ["This field is required."]}]}, status_code=400
                )
            if message["sender"] not in USERS:
                error = {"sender": [f'Invalid pk "{message["sender"]}" - object does not exist.']}
                return JSONResponse({"messages": [error]}, status_code=400)
        return None

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        thread_id = 140758939467867 + len(self.created)
        thread = {
            **body,
            "id": thread_id,
            "created_date": body["document_date"],
            "deleted_date": None,
            "members": [{**m, "thread": thread_id, "ack_time": None} for m in body.get("members") or []],
            "messages": [
                {**m, "thread": thread_id, "patient": body["patient"], "practice": body["practice"]}
                for m in body.get("messages") or []
            ],
        }
        self.created.append(thread)
        return thread

    # --- paging, as Elation does it: limit/offset with absolute next URLs ---
    def page(self, request: Request, items: list[dict[str, Any]]) -> JSONResponse:
        offset = int(request.query_params.get("offset", 0))
        limit = min(int(request.query_params.get("limit", self.page_size)), self.page_size)
        chosen = items[offset : offset + limit]
        nxt = None
        if offset + limit < len(items):
            nxt = str(request.url.include_query_params(offset=offset + limit, limit=limit))
        return JSONResponse({"count": len(items), "next": nxt, "previous": None, "results": chosen})


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
