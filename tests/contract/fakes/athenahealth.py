"""athenaOne as far as the adapter uses it: the 2-legged OAuth token endpoint (client id and secret in a
Basic header), patients by id and by custom field, providers, and a patient's cases (list and create).

Every request to a path in athena's OpenAPI reference (the verbatim excerpt in
tests/contract/specs/athenahealth/, see its SOURCE.md) is checked against it first: path and query
parameters (required, type, enum), and the form body of a create against `RequestCreatePatientCase`
(required fields, types, enums, and no field the schema does not name). A refusal is athena's 400 with
the offending fields in a fake-only `fields` key. Then the rules the reference does not state: the
workflow page's 4000-character internalnote, known patients, providers and departments, and bearer tokens
it issued. athenaNet errors are JSON `{"error", "detailedmessage", "missingfields"}`; the gateway's 401 is
a bare body (https://docs.athenahealth.com/api/resources/api-error-message-reference).
"""

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml
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
SPEC = yaml.safe_load(
    (Path(__file__).parents[1] / "specs" / "athenahealth" / "athenaone-excerpt.yaml").read_text()
)
CREATE_SCHEMA = SPEC["components"]["schemas"]["RequestCreatePatientCase"]
REQUIRED = tuple(CREATE_SCHEMA["required"])
SUBCLASSES = {
    "CLINICALQUESTION": "Clinical question",
    "REFILL": "Prescription refill",
    "BILLING": "Billing question",
}
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


def spec_problems(
    method: str, path: str, query: Mapping[str, str], form: Mapping[str, str] | None
) -> dict[str, str]:
    """What athena's reference refuses in this request, by field; {} when it accepts it or does not
    describe the path (the token endpoint and the custom field search are checked by hand)."""
    for template, item in SPEC["paths"].items():
        names = re.findall(r"{(\w+)}", template)
        pattern = re.sub(r"{\w+}", "([^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        matched = re.fullmatch(pattern, path)
        if matched and method.lower() in item:
            operation = item[method.lower()]
            values = {"path": dict(zip(names, matched.groups(), strict=True)), "query": dict(query)}
            problems = _parameter_problems(operation.get("parameters", []), values)
            if form is not None and "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"][
                    "$ref"
                ]
                problems.update(_form_problems(SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]], form))
            return problems
    return {}


def _parameter_problems(
    parameters: list[dict[str, Any]], values: dict[str, dict[str, str]]
) -> dict[str, str]:
    problems: dict[str, str] = {}
    for where in ("path", "query"):
        declared = {p["name"]: p for p in parameters if p["in"] == where}
        for name, parameter in declared.items():
            value = values[where].get(name)
            if value is None:
                if parameter.get("required"):
                    problems[name] = "required"
                continue
            if problem := _value_problem(parameter["schema"], value):
                problems[name] = problem
        problems.update({n: "not a parameter of this call" for n in values[where] if n not in declared})
    return problems


def _form_problems(schema: dict[str, Any], form: Mapping[str, str]) -> dict[str, str]:
    fields = schema["properties"]
    problems = {n: "required" for n in schema.get("required", []) if not form.get(n)}
    for name, value in form.items():
        if name not in fields:
            problems[name] = "not a field of this call"
        elif problem := _value_problem(fields[name], value):
            problems[name] = problem
    return problems


def _value_problem(schema: dict[str, Any], value: str) -> str | None:
    """A form or query value (always text) against its schema: athena's enums list booleans and numbers
    as YAML values, so they are compared as the text a request carries."""
    kind = schema.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return "not an integer"
    if kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
        return "not a number"
    if kind == "boolean" and value not in ("true", "false"):
        return "not true or false"
    if "enum" in schema and value not in {_as_text(e) for e in schema["enum"]}:
        return "not one of " + ", ".join(_as_text(e) for e in schema["enum"])
    return None


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class FakeAthena(harness.FakeEMR):
    def __init__(self) -> None:
        super().__init__()
        self.next_case_id = 491696
        self.page_size = 1500  # athena's default page
        self.deleted: set[int] = set()
        prefix = f"/v1/{PRACTICE_ID}"
        self.app = Starlette(
            routes=[
                Route("/oauth2/v1/token", self.token, methods=["POST"]),
                Route(prefix + "/patients/customfields/{field}/{value}", self.patients_by_field),
                Route(prefix + "/patients/{patientid}", self.patient_by_id),
                Route(prefix + "/providers", self.providers),
                Route(
                    prefix + "/patients/{patientid}/documents/patientcase", self.list_cases, methods=["GET"]
                ),
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

    def delete_case(self, case_id: int) -> None:
        """A person deletes the case in athenaNet."""
        self.deleted.add(case_id)

    def _refused(self, request: Request, form: Mapping[str, str] | None = None) -> Response | None:
        """The gateway's 401 without JSON for a missing or unknown bearer token; then athena's 400 for
        what its reference refuses."""
        if not self.bearer_ok(request.headers.get("authorization")):
            return PlainTextResponse("Developer Inactive", status_code=401)
        problems = spec_problems(request.method, request.url.path, request.query_params, form)
        missing = [f for f, p in problems.items() if p == "required"]
        if missing and form is not None:
            detail = "The following fields are required: " + ", ".join(missing)
            return error(
                400, "Additional fields are required.", detailedmessage=detail, missingfields=missing
            )
        if problems:
            detail = "; ".join(f"{f}: {p}" for f, p in problems.items())
            return error(400, "Invalid parameter value.", detailedmessage=detail, fields=list(problems))
        return None

    async def list_cases(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        patient_id = request.path_params["patientid"]
        if patient_id not in PATIENTS:
            return error(404, "The patient is not found.")
        show_deleted = request.query_params.get("showdeleted") == "true"
        found = [
            self._listed(c)
            for c in self.created
            if c["patientid"] == patient_id
            and c["departmentid"] == request.query_params["departmentid"]
            and (show_deleted or c["patientcaseid"] not in self.deleted)
        ]
        offset = int(request.query_params.get("offset", "0"))
        page = found[offset : offset + self.page_size]
        body: dict[str, Any] = {"patientcases": page, "totalcount": len(found)}
        if offset + self.page_size < len(found):  # athena's `next` is a path on the same host
            following = {**request.query_params, "offset": str(offset + self.page_size)}
            body["next"] = f"{request.url.path}?{urlencode(following)}"
        return JSONResponse(body)

    def _listed(self, case: dict[str, Any]) -> dict[str, Any]:
        """A case as the reference's `PatientCase` output shows it (ids as it types them)."""
        deleted = case["patientcaseid"] in self.deleted
        return {
            "patientcaseid": str(case["patientcaseid"]),
            "patientid": int(case["patientid"]),
            "departmentid": case["departmentid"],
            "documentclass": "PATIENTCASE",
            "documentsubclass": case["documentsubclass"],
            "documentsource": case["documentsource"],
            "providerid": int(case["providerid"]),
            "status": "DELETED" if deleted else case["status"],
            "subject": case.get("subject", ""),
            "internalnote": case.get("internalnote", ""),
            **({"deleteddatetime": "2026-12-03T12:00:00Z"} if deleted else {}),
        }

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
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            # athena reads form fields only: a JSON body carries none of them
            form: dict[str, str] = {}
        else:
            form = {k: str(v) for k, v in (await request.form()).items()}
        if refused := self._refused(request, form):
            return refused
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
        """What athena checks beyond its reference: the workflow page's limit and its own records."""
        if patient_id not in PATIENTS:
            return error(404, "The patient is not found.")
        if form["departmentid"] != DEPARTMENT_ID:
            return error(400, "Invalid department ID.")
        if form["providerid"] not in PROVIDERS:
            return error(400, "Invalid provider ID.")
        if len(form.get("internalnote", "")) > 4000:
            return error(400, "The internal note may not exceed 4000 characters.")
        return None
