"""FHIR R4 servers: a Task per request, created idempotently with our marker.

- Create: `POST [base]/Task` with `identifier = {system: marker_system, value: <task_id>}` and
  `If-None-Exist: identifier=<marker_system>|<task_id>`: no match creates (201), one match returns
  it unchanged (200), several fail (412) (https://hl7.org/fhir/R4/http.html#ccreate). Not every server
  honours If-None-Exist atomically (hapifhir/hapi-fhir#3141), so the job also looks the Task up by
  that identifier before any retry.
- Task: `status = requested`, `intent = order`, `for = Patient/<id>`, `description`, `code.text` (our
  subject), `code.coding` (phone call type, from the connection's `task_types`), `owner =
  Practitioner/<assignee>`, `restriction.recipient` (notify_list), `authoredOn`
  (https://hl7.org/fhir/R4/task.html).
- Patients: `GET [base]/Patient?identifier=<mrn_system>|<mrn>`; users: `GET [base]/Practitioner`.
- Auth (`auth` setting): `smart_backend`, SMART Backend Services: a JWT client assertion signed RS384 or
  ES384 with the deployment's key (kid in our `/.well-known/jwks.json`), posted with client_credentials
  (https://hl7.org/fhir/smart-app-launch/backend-services.html); `client_secret`, OAuth2 client
  credentials with HTTP Basic (RFC 6749 §2.3.1); `token`, a static bearer token.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base
from emrtasks.emr import http as emr_http

NAME = "fhir"
TITLE = "FHIR R4 server (Task)"
RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule("description", True, max_length=10_000, target="Task.description"),
        rules.FieldRule("patient_mrn", True, max_length=64, target="Task.for (Patient by MRN identifier)"),
        rules.FieldRule("subject", False, max_length=255, target="Task.code.text"),
        rules.FieldRule("assignee_user_id", False, max_length=64, target="Task.owner (Practitioner id)"),
        rules.FieldRule("phone_call_type_id", False, max_length=64, target="Task.code.coding (task_types)"),
        rules.FieldRule(
            "notify_list",
            False,
            max_length=64,
            max_items=20,
            target="Task.restriction.recipient (Practitioner)",
        ),
    ),
    assignee_identified_by="FHIR Practitioner id",
    patient_identified_by="Patient.identifier with the connection's mrn_system",
    notes=("phone_call_type_id takes the codes listed in the connection's task_types setting.",),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 8
RATE_LIMIT: base.RateLimit | None = None
MARKER_SYSTEM = "urn:emrtasks:task"
SMART_BACKEND = "smart_backend"
CLIENT_SECRET = "client_secret"  # noqa: S105 (the name of a way to log in, not a secret)
STATIC_TOKEN = "token"  # noqa: S105
AUTH_KINDS = (SMART_BACKEND, CLIENT_SECRET, STATIC_TOKEN)

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting("base_url", "the FHIR base URL, e.g. https://fhir.example.org/r4"),
    base.Setting("mrn_system", "the identifier system of the practice's MRNs"),
    base.Setting(
        "auth",
        "smart_backend (JWT signed with the deployment's keys), client_secret, or token (a static "
        "access_token); default: client_secret with a token_url, else token",
        False,
        held_by=base.DEPLOYMENT,
    ),
    base.Setting(
        "token_url", "OAuth2 token endpoint; omit for a static token", False, held_by=base.DEPLOYMENT
    ),
    base.Setting(
        "client_id",
        "OAuth2 client id (smart_backend: the id the EHR gave our app)",
        False,
        held_by=base.DEPLOYMENT,
    ),
    base.Setting(
        "client_secret",
        "OAuth2 client secret (auth client_secret only)",
        False,
        secret=True,
        held_by=base.DEPLOYMENT,
    ),
    base.Setting(
        "scope",
        "OAuth2 scope, e.g. system/Task.write system/Patient.read (smart_backend: required)",
        False,
        held_by=base.DEPLOYMENT,
    ),
    base.Setting(
        "access_token",
        "a static bearer token, when there is no token endpoint",
        False,
        secret=True,
        held_by=base.OAUTH,
    ),
    base.Setting(
        "marker_system", "identifier system of our task ids on the Task", False, default=MARKER_SYSTEM
    ),
    base.Setting("task_code_system", "code system of task_types", False, default="urn:emrtasks:task-type"),
    base.Setting("task_types", 'phone call types as [{"code": "...", "display": "..."}]', False, kind=list),
    base.Setting("requester", "Task.requester reference, e.g. Organization/123", False),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config) + check_auth(config)
    for entry in config.get("task_types") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
            problems.append('task_types entries must be {"code": "...", "display": "..."}')
            break
    return problems


def auth_kind(config: Mapping[str, Any]) -> str:
    return str(config.get("auth") or (CLIENT_SECRET if config.get("token_url") else STATIC_TOKEN))


def check_auth(config: Mapping[str, Any]) -> list[str]:
    """What the connection's way of getting a token needs, named."""
    kind = auth_kind(config)
    if kind not in AUTH_KINDS:
        return [f"auth must be one of {', '.join(AUTH_KINDS)}"]
    if kind == SMART_BACKEND:
        missing = [name for name in ("token_url", "client_id", "scope") if not config.get(name)]
        problems = [f"auth smart_backend needs {name}" for name in missing]
        if config.get("client_secret") or config.get("access_token"):
            problems.append(
                "auth smart_backend signs with the deployment's keys: drop client_secret and access_token"
            )
        return problems
    needed = ("token_url", "client_id", "client_secret")
    if kind == CLIENT_SECRET and not all(config.get(name) for name in needed):
        return ["auth client_secret needs token_url, client_id and client_secret"]
    return []


def build(connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps) -> "FhirAdapter":
    http = base.http_of(deps, NAME)
    return FhirAdapter(RULES, config, http, auth=auth_for(config, http, deps))


def auth_for(
    config: Mapping[str, Any], http: httpx.AsyncClient, deps: base.AdapterDeps | None = None
) -> emr_http.Auth:
    kind = auth_kind(config)
    if kind == SMART_BACKEND:
        if deps is None:
            raise base.MissingDependency(NAME, base.SIGNER)
        return smart_backend_auth(config, http, deps)
    if kind == CLIENT_SECRET:
        return emr_http.OAuth2ClientCredentials(
            http, config["token_url"], config["client_id"], config["client_secret"], scope=config.get("scope")
        )
    token = config.get("access_token")
    return emr_http.StaticToken({"authorization": f"Bearer {token}"} if token else {})


def smart_backend_auth(
    config: Mapping[str, Any], http: httpx.AsyncClient, deps: base.AdapterDeps
) -> emr_http.ClientAssertion:
    """SMART Backend Services: tokens asked for with a client assertion signed by the deployment's key."""
    return emr_http.ClientAssertion(
        http,
        str(config["token_url"]),
        str(config["client_id"]),
        base.signer_of(deps, NAME),
        scope=str(config["scope"]),
        clock=lambda: base.utc_now(deps),
    )


class FhirAdapter:
    """A Task on a FHIR R4 server; subclasses adjust the resource to a vendor's profile."""

    conditional_create = True
    """Send If-None-Exist on our marker identifier (servers that keep Task.identifier)."""
    practitioner_search: Mapping[str, str] = {"_count": "200"}
    """The query of the user directory's Practitioner search (a vendor may need its own flags)."""

    def __init__(
        self,
        task_rules: rules.Rules,
        config: Mapping[str, Any],
        http: httpx.AsyncClient,
        *,
        auth: emr_http.Auth | None = None,
    ) -> None:
        self.rules = task_rules
        self._base = str(config["base_url"]).rstrip("/")
        self._mrn_system = str(config["mrn_system"])
        self._marker_system = str(config.get("marker_system") or MARKER_SYSTEM)
        self._code_system = str(config.get("task_code_system") or "urn:emrtasks:task-type")
        self._task_types = {
            str(t["code"]): str(t.get("display", t["code"])) for t in config.get("task_types") or []
        }
        self._requester = config.get("requester")
        self._http = http
        self._auth = auth or auth_for(config, http)

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        params = {"identifier": f"{self._mrn_system}|{mrn}"} if mrn else {"_count": "100"}
        found = await self._search("Patient", params)
        patients = [self._patient(resource) for resource in found]
        return [p for p in patients if p is not None and (mrn is None or p.mrn == mrn)]

    async def list_users(self) -> list[directory.User]:
        found = await self._search("Practitioner", dict(self.practitioner_search))
        return [
            directory.User(str(r["id"]), display_name(r) or str(r["id"]), "provider")
            for r in found
            if r.get("id")
        ]

    async def list_call_types(self) -> list[directory.CallType]:
        return [directory.CallType(code, display) for code, display in self._task_types.items()]

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        try:
            answer = await emr_http.send(
                self._http,
                self._auth,
                "POST",
                f"{self._base}/Task",
                write=True,
                json=self.task_resource(request, patient, marker),
                headers=self._create_headers(marker),
            )
        except outcomes.AdapterError as exc:  # no token (refused, or no signing key): nothing was written
            return exc.outcome
        if not isinstance(answer, httpx.Response):
            return answer
        if answer.status_code in (200, 201):
            return self._created(answer)
        if answer.status_code == 412:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, "The server holds several Tasks with this marker."
            )
        detail = diagnostics(answer)
        if answer.status_code in (400, 404, 422) and "Practitioner" in detail:
            return outcomes.Rejected(
                outcomes.USER_NOT_FOUND, f"The FHIR server does not know the assignee: {detail}"
            )
        return emr_http.status_outcome(answer, write=True, detail=detail) or self._created(answer)

    def _create_headers(self, marker: str) -> dict[str, str]:
        headers = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}
        if self.conditional_create:
            headers["if-none-exist"] = f"identifier={self._marker_system}|{marker}"
        return headers

    async def find_task(self, marker: str) -> outcomes.Lookup:
        try:
            found = await self._search("Task", {"identifier": f"{self._marker_system}|{marker}"})
        except outcomes.AdapterError as exc:
            if isinstance(exc.outcome, outcomes.RetryLater):
                return exc.outcome
            return outcomes.Unknown(outcomes.OUTCOME_UNKNOWN, exc.outcome.description)
        if not found:
            return outcomes.Absent()
        if len(found) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"The server holds {len(found)} Tasks with this marker."
            )
        return outcomes.Created(str(found[0]["id"]))

    def task_resource(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> dict[str, Any]:
        task: dict[str, Any] = {
            "resourceType": "Task",
            "identifier": [{"system": self._marker_system, "value": marker}],
            "status": "requested",
            "intent": "order",
            "description": request.description,
            "for": {"reference": f"Patient/{patient.emr_patient_id}"},
            "authoredOn": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        code: dict[str, Any] = {}
        if request.subject:
            code["text"] = request.subject
        if request.phone_call_type_id:
            display = self._task_types.get(request.phone_call_type_id, request.phone_call_type_id)
            code["coding"] = [
                {"system": self._code_system, "code": request.phone_call_type_id, "display": display}
            ]
        if code:
            task["code"] = code
        if request.assignee_user_id:
            task["owner"] = {"reference": f"Practitioner/{request.assignee_user_id}"}
        if request.notify_list:
            task["restriction"] = {
                "recipient": [{"reference": f"Practitioner/{u}"} for u in request.notify_list]
            }
        if self._requester:
            task["requester"] = {"reference": self._requester}
        return task

    async def _search(self, resource: str, params: dict[str, str]) -> list[dict[str, Any]]:
        return await search(self._http, self._auth, f"{self._base}/{resource}", resource, params)

    def _patient(self, resource: dict[str, Any]) -> directory.Patient | None:
        return patient_from(resource, self._mrn_system)

    def _created(self, answer: httpx.Response) -> outcomes.Outcome:
        try:
            body = emr_http.json_body(answer)
        except base.BadAnswer:
            body = None
        # Servers may answer with only a Location header; Canvas sends a `null` body
        # (https://docs.canvasmedical.com/api/task, "201 Created").
        resource_id = body.get("id") if isinstance(body, dict) else None
        if not resource_id:
            location = answer.headers.get("location", "")
            parts = location.split("/_history")[0].rstrip("/").split("/")
            resource_id = parts[-1] if len(parts) >= 2 and parts[-2] == "Task" else None
        if not resource_id:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN,
                f"The server answered HTTP {answer.status_code} but did not say the Task's id.",
            )
        return outcomes.Created(str(resource_id))


async def search(
    http: httpx.AsyncClient,
    auth: emr_http.Auth,
    url: str,
    resource: str,
    params: dict[str, str],
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """A FHIR search, following `next` links, relative or absolute but on the EMR's own origin
    (`emr_http.next_link`), at most 10 pages; AdapterError when it fails."""
    found: list[dict[str, Any]] = []
    next_url: str | None = url
    query: dict[str, str] | None = params
    for _ in range(10):
        if next_url is None:
            break
        answer = await emr_http.send(
            http,
            auth,
            "GET",
            next_url,
            params=query,
            headers={"accept": "application/fhir+json", **(headers or {})},
        )
        if not isinstance(answer, httpx.Response):
            raise outcomes.AdapterError(_as_retry(answer))
        emr_http.raise_for_read(answer, diagnostics(answer))
        bundle = emr_http.json_object(answer)
        found += [
            e["resource"]
            for e in bundle.get("entry") or []
            if (e.get("resource") or {}).get("resourceType") == resource
        ]
        link = next(
            (link["url"] for link in bundle.get("link") or [] if link.get("relation") == "next"), None
        )
        next_url = emr_http.next_link(answer.url, str(link), url) if link else None
        query = None  # a next link carries its own query (params={} would erase it)
    return found


def patient_from(resource: dict[str, Any], mrn_system: str) -> directory.Patient | None:
    """A FHIR Patient as our directory's patient, if it carries an MRN in the connection's system."""
    mrn = next(
        (i.get("value") for i in resource.get("identifier") or [] if i.get("system") == mrn_system), None
    )
    if not mrn or not resource.get("id"):
        return None
    name = (resource.get("name") or [{}])[0]
    return directory.Patient(
        emr_patient_id=str(resource["id"]),
        mrn=str(mrn),
        first_name=" ".join(name.get("given") or []),
        last_name=str(name.get("family") or ""),
        dob=str(resource.get("birthDate") or ""),
        sex=str(resource.get("gender") or ""),
        phone=next(
            (t.get("value", "") for t in resource.get("telecom") or [] if t.get("system") == "phone"), ""
        ),
    )


def _as_retry(outcome: outcomes.RetryLater | outcomes.Unknown) -> outcomes.RetryLater:
    if isinstance(outcome, outcomes.RetryLater):
        return outcome
    return outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, outcome.description)


def diagnostics(answer: httpx.Response) -> str:
    """The text of an OperationOutcome, if the answer is one."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts = [
        i.get("diagnostics") or (i.get("details") or {}).get("text") or "" for i in body.get("issue") or []
    ]
    return "; ".join(p for p in parts if p)[:500]


def display_name(resource: dict[str, Any]) -> str:
    name = (resource.get("name") or [{}])[0]
    if name.get("text"):
        return str(name["text"])
    return " ".join(
        [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family") or ""]
    ).strip()


# Linking a practice (Link): SMART App Launch, standalone launch, endpoints discovered at
# <base_url>/.well-known/smart-configuration (https://hl7.org/fhir/smart-app-launch/conformance.html).
OAUTH = base.OAuthEndpoints(
    smart_discovery=True,
    scopes=(
        "openid",
        "fhirUser",
        "user/Patient.read",
        "user/Practitioner.read",
        "user/Task.read",
        "user/Task.write",
    ),
    token_fields={"access_token": "access_token"},
    secret_in_body=False,
)
