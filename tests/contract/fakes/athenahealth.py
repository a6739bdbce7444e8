"""athenaOne as far as the adapter uses it: the 2-legged OAuth token endpoint (client id and secret in a
Basic header), patients by id and by custom field, providers, and the patient case create, enforcing
athena's documented contract: a form body with departmentid, documentsource, documentsubclass and
providerid, internalnote of at most 4000 characters, known patients, providers and departments, and
bearer tokens it issued. athenaNet errors are JSON `{"error", "detailedmessage", "missingfields"}`;
the gateway's 401 is a bare body (https://docs.athenahealth.com/api/resources/api-error-message-reference).
"""

import base64
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.contract import harness

PRACTICE_ID = "195900"
DEPARTMENT_ID = "1"
MRN_FIELD = "41"
CLIENT_ID = "emrtasks-athena"
CLIENT_SECRET = "athena-s3cret"
SCOPE = "athena/service/Athenanet.MDP.*"
REQUIRED = ("departmentid", "documentsource", "documentsubclass", "providerid")
SUBCLASSES = {
    "CLINICALQUESTION": "Clinical question",
    "PRESCRIPTIONRENEWAL": "Prescription renewal",
    "BILLING": "Billing question",
}
SOURCES = ("PATIENT", "PHARMACY", "LAB", "CAREGIVER")
PATIENTS: dict[str, dict[str, Any]] = {
    "1001": {"mrn": "MRN-1001", "firstname": "Ava", "lastname": "Thompson", "dob": "03/12/1984", "sex": "F"},
    "2001": {"mrn": "MRN-2000", "firstname": "Chris", "lastname": "Morgan", "dob": "04/04/1990", "sex": "M"},
    "2002": {"mrn": "MRN-2000", "firstname": "Chris", "lastname": "Morgan", "dob": "08/30/1961", "sex": "F"},
    "3001": {"mrn": None, "firstname": "Noah", "lastname": "Kim", "dob": "01/30/1965", "sex": "M"},
}
PROVIDERS = {
    "71": ("Dana", "Reyes", "MD"),
    "72": ("Sam", "Okafor", "MD"),
    "73": ("Jordan", "Lee", "RN"),
}


def error(status: int, text: str, **more: Any) -> JSONResponse:
    return JSONResponse({"error": text, **more}, status_code=status)


class FakeAthena(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.next_case_id = 491696
        prefix = f"/v1/{PRACTICE_ID}"
        self.app = Starlette(
            routes=[
                Route("/oauth2/v1/token", self.token, methods=["POST"]),
                Route(prefix + "/patients/customfields/{field}/{value}", self.patients_by_field),
                Route(prefix + "/patients/{patientid}", self.patient_by_id),
                Route(prefix + "/providers", self.providers),
                Route(
                    prefix + "/patients/{patientid}/documents/patientcase", self.create_case, methods=["POST"]
                ),
            ]
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        return request.url.path == "/oauth2/v1/token"

    async def token(self, request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"errorCode": "invalid_request", "error": "unsupported_grant_type"}, 400)
        if self.refuse_credentials or not self._basic_ok(request.headers.get("authorization", "")):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "The client secret supplied is invalid."},
                401,
            )
        if form.get("scope") != SCOPE:
            return JSONResponse({"error": "invalid_scope"}, 400)
        body = {
            "access_token": self.issue_token(),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": SCOPE,
        }
        return JSONResponse(body)

    def _basic_ok(self, authorization: str) -> bool:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        return authorization == f"Basic {expected}"

    def _refused(self, request: Request) -> Response | None:
        """The gateway's answer to a missing or unknown bearer token: 401 without JSON."""
        if not self.bearer_ok(request.headers.get("authorization")):
            return PlainTextResponse("Developer Inactive", status_code=401)
        return None

    async def patients_by_field(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if request.path_params["field"] != MRN_FIELD:
            return error(400, "Invalid custom field ID.")
        value = request.path_params["value"]
        found = [self._patient(pid) for pid, p in PATIENTS.items() if p["mrn"] == value]
        return JSONResponse({"patients": found, "totalcount": len(found)})

    async def patient_by_id(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        patient_id = request.path_params["patientid"]
        if patient_id not in PATIENTS:
            return error(404, "The patient is not found.")
        return JSONResponse([self._patient(patient_id)])

    def _patient(self, patient_id: str) -> dict[str, Any]:
        seed = PATIENTS[patient_id]
        return {
            "patientid": patient_id,
            "firstname": seed["firstname"],
            "lastname": seed["lastname"],
            "dob": seed["dob"],
            "sex": seed["sex"],
            "mobilephone": "5550100",
            "departmentid": DEPARTMENT_ID,
            "primarydepartmentid": DEPARTMENT_ID,
            "status": "active",
        }

    async def providers(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        found = [
            {
                "providerid": int(pid),
                "firstname": first,
                "lastname": last,
                "displayname": f"{last}, {first}",
                "providertype": kind,
                "entitytype": "Person",
            }
            for pid, (first, last, kind) in PROVIDERS.items()
        ]
        return JSONResponse({"providers": found, "totalcount": len(found)})

    async def create_case(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            # athena reads form fields only: a JSON body carries none of them
            return error(400, "Additional fields are required.", missingfields=list(REQUIRED))
        form = {k: str(v) for k, v in (await request.form()).items()}
        problem = self.check_case(request.path_params["patientid"], form)
        if problem:
            return problem
        case = {
            "patientcaseid": self.next_case_id,
            "patientid": request.path_params["patientid"],
            "documentclass": "PATIENTCASE",
            "status": "OPEN",
            **form,
        }
        self.next_case_id += 1
        self.created.append(case)
        return JSONResponse({"success": True, "patientcaseid": case["patientcaseid"]})

    def check_case(self, patient_id: str, form: dict[str, str]) -> Response | None:
        missing = [f for f in REQUIRED if not form.get(f)]
        if missing:
            detail = "The following fields are required: " + ", ".join(missing)
            return error(
                400, "Additional fields are required.", detailedmessage=detail, missingfields=missing
            )
        if patient_id not in PATIENTS:
            return error(404, "The patient is not found.")
        if form["departmentid"] != DEPARTMENT_ID:
            return error(400, "Invalid department ID.")
        if form["providerid"] not in PROVIDERS:
            return error(400, "Invalid provider ID.")
        if form["documentsubclass"] not in SUBCLASSES:
            return error(400, "Invalid document subclass for PATIENTCASE.")
        if form["documentsource"] not in SOURCES:
            return error(400, "Invalid document source.")
        if len(form.get("internalnote", "")) > 4000:
            return error(400, "The internal note may not exceed 4000 characters.")
        return None
