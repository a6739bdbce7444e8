"""A FHIR R4 server as far as the adapter uses it: every Task it receives is validated with the
maintained FHIR model package `fhir.resources` (its R4B models, FHIR 4.3.0: the package's default
models are R5 and it ships no 4.0.1 ones; Task is the same in R4 and R4B), so a Task the spec refuses
fails naming the field; references must resolve; bearer tokens from its OAuth2 endpoint; conditional
create."""

import uuid
from typing import Any

import httpx
import pydantic
from fhir.resources.R4B.task import Task
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.contract import harness

MRN_SYSTEM = "urn:mrn:test"
PATIENTS = [
    {"id": "p1", "mrn": "MRN-1001", "family": "Thompson", "given": "Ava"},
    {"id": "p2a", "mrn": "MRN-2000", "family": "Morgan", "given": "Chris"},
    {"id": "p2b", "mrn": "MRN-2000", "family": "Morgan", "given": "Chris"},
]
PRACTITIONERS = {"prac-1": "Dana Reyes", "prac-2": "Sam Okafor", "prac-3": "Jordan Lee"}


def outcome(status: int, text: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}],
    }
    return JSONResponse(body, status_code=status, media_type="application/fhir+json")


def bundle(resources: list[dict[str, Any]]) -> JSONResponse:
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    return JSONResponse(body, media_type="application/fhir+json")


class FakeFhir(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.patients = {
            p["id"]: {
                "resourceType": "Patient",
                "id": p["id"],
                "identifier": [{"system": MRN_SYSTEM, "value": p["mrn"]}],
                "name": [{"family": p["family"], "given": [p["given"]]}],
            }
            for p in PATIENTS
        }
        self.practitioners = {
            pid: {"resourceType": "Practitioner", "id": pid, "name": [{"text": name}]}
            for pid, name in PRACTITIONERS.items()
        }
        self.app = Starlette(
            routes=[
                Route("/token", self.token, methods=["POST"]),
                Route("/Patient", self.search_patients, methods=["GET"]),
                Route("/Practitioner", self.search_practitioners, methods=["GET"]),
                Route("/Task", self.search_tasks, methods=["GET"]),
                Route("/Task", self.create_task, methods=["POST"]),
            ]
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path.endswith("/token")

    async def token(self, request: Request) -> JSONResponse:
        form = await request.form()
        if self.refuse_credentials or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if not request.headers.get("authorization", "").startswith("Basic "):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse({"access_token": self.issue_token(), "token_type": "bearer", "expires_in": 3600})

    def _authorized(self, request: Request) -> bool:
        return self.bearer_ok(request.headers.get("authorization"))

    async def search_patients(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return outcome(401, "invalid token")
        system, _, value = request.query_params.get("identifier", "|").partition("|")
        found = [
            p
            for p in self.patients.values()
            if any(i["system"] == system and i["value"] == value for i in p["identifier"])
        ]
        return bundle(found)

    async def search_practitioners(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return outcome(401, "invalid token")
        return bundle(list(self.practitioners.values()))

    async def search_tasks(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return outcome(401, "invalid token")
        return bundle(self._tasks_with(request.query_params.get("identifier", "")))

    def _tasks_with(self, identifier: str) -> list[dict[str, Any]]:
        system, _, value = identifier.partition("|")
        return [
            t
            for t in self.created
            if any(i.get("system") == system and i.get("value") == value for i in t.get("identifier", []))
        ]

    async def create_task(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return outcome(401, "invalid token")
        if request.headers.get("content-type", "").split(";")[0] not in (
            "application/fhir+json",
            "application/json",
        ):
            return outcome(415, "Task must be sent as application/fhir+json")
        task = await request.json()
        problem = self.check_task(task)
        if problem:
            return outcome(*problem)
        condition = request.headers.get("if-none-exist", "")
        if condition.startswith("identifier="):
            matches = self._tasks_with(condition.removeprefix("identifier="))
            if len(matches) == 1:
                return JSONResponse(matches[0], status_code=200, media_type="application/fhir+json")
            if len(matches) > 1:
                return outcome(412, "more than one Task matches If-None-Exist")
        task = {**task, "id": str(uuid.uuid4())}
        self.created.append(task)
        return JSONResponse(
            task,
            status_code=201,
            media_type="application/fhir+json",
            headers={"location": f"Task/{task['id']}/_history/1"},
        )

    def check_task(self, task: dict[str, Any]) -> tuple[int, str] | None:
        """The Task against the FHIR model (elements, types, cardinality); references must resolve."""
        if task.get("resourceType") != "Task":
            return 400, "resourceType must be Task"
        problem = r4_problem(task)
        if problem:
            return 400, problem
        patient = (task.get("for") or {}).get("reference", "")
        if patient and patient.removeprefix("Patient/") not in self.patients:
            return 404, f"Resource {patient} is not known"
        owners = [task.get("owner")] if task.get("owner") else []
        recipients = (task.get("restriction") or {}).get("recipient") or []
        for reference in [*owners, *recipients]:
            if reference["reference"].removeprefix("Practitioner/") not in self.practitioners:
                return 400, f"Resource {reference['reference']} is not known: Practitioner not found"
        return None


def r4_problem(task: dict[str, Any]) -> str | None:
    """The first way `task` breaks the FHIR Task model, as `Task.<element>: <why>`; None if valid.
    (fhir.resources checks structure, types, cardinality and formats, not value-set bindings.)"""
    try:
        Task.model_validate(task)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"Task.{where}: {error['msg']}"
    return None
