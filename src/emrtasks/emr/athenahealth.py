"""athenahealth (athenaOne): a task is a patient case, the document athena keeps for a call about a patient.

- Create: `POST /v1/{practiceid}/patients/{patientid}/documents/patientcase`, form-encoded, one case per
  call. "PatientID, DepartmentID, ProviderID, and Source are required"; `internalnote` "houses the body
  of the patient case message and has a limit of 4000 characters"; the answer is `{"success": true,
  "patientcaseid": ...}` (https://docs.athenahealth.com/api/workflows/patient-cases). Generated clients of
  athena's reference also mark `documentsubclass` required
  (https://docs.athenahealth.com/api/api-ref/document-type-patient-case). "Subclasses trigger
  message/task routing rules" (https://docs.athenahealth.com/api/workflows/document-classification-guide).
- Our fields: description -> `internalnote`, subject -> `subject`, assignee_user_id -> `providerid`,
  phone_call_type_id -> `documentsubclass`; `departmentid` and `documentsource` come from the connection.
- Marker: a patient case has no external id; the marker is the last line of `internalnote` ("emrtasks
  ref: task_..."). athena lists a patient's cases per department,
  `GET /v1/{practiceid}/patients/{patientid}/documents/patientcase?departmentid=` (its `PatientCase`
  output carries `internalnote`), and has no practice-wide search, so the lookup is made in the task's
  patient's chart (`find_task_in_chart`, given the patient by the create_task job), deleted cases included.
- Spec: the requests are checked against a verbatim excerpt of athena's OpenAPI reference
  (tests/contract/specs/athenahealth/), which lists the documented `documentsubclass` and
  `documentsource` values; a connection configured with others is refused.
- Patients by MRN: a practice keeps its MRN in a custom field, searched with
  `GET /v1/{practiceid}/patients/customfields/{customfieldid}/{value}`; without one configured the MRN is
  the athena patient id, `GET /v1/{practiceid}/patients/{patientid}`
  (https://docs.athenahealth.com/api/api-ref/patient). Users: `GET /v1/{practiceid}/providers`.
- Auth: OAuth 2.0 client credentials ("2-legged"), id and secret in a Basic header, scope
  `athena/service/Athenanet.MDP.*`, at `/oauth2/v1/token`; a token lasts an hour and new tokens are
  limited to 50 a minute (https://docs.athenahealth.com/api/guides/authentication-and-url-locations).
- Errors: athenaNet answers JSON `{"error", "detailedmessage", "missingfields"}`; the gateway answers
  bare statuses (https://docs.athenahealth.com/api/resources/api-error-message-reference). Rate limits
  are unpublished (https://github.com/athenahealth/apiserver-athenaFlex/issues/191) and have been
  enforced by 403 as well as 429: a 403 that names a rate limit is retried later.
"""

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from emrtasks.domain import directory, outcomes, rules, tasks
from emrtasks.emr import base
from emrtasks.emr import http as emr_http

NAME = "athenahealth"
TITLE = "athenahealth athenaOne (patient case)"
INTERNAL_NOTE_LIMIT = 4000
MARKER_LABEL = "emrtasks ref:"
MARKER_ROOM = 50
"""Characters of internalnote kept for our marker line."""
SUBCLASS_CODES = frozenset(
    {
        "PATIENTCASE",
        "ADMINISTRATIVE",
        "BILLING",
        "CLINICALQUESTION",
        "ELECTRONICMEDICALRECORDS",
        "MEDICALRECORDS",
        "MEDICATION",
        "NEWRX",
        "OTHER",
        "PATIENTNOSHOW",
        "REFERRAL",
        "REFILL",
    }
)
"""`documentsubclass` values athena's reference lists for a patient case (RequestCreatePatientCase)."""
SOURCES = frozenset(
    {
        "PATIENT",
        "CAREGIVER",
        "PARTNER",
        "PHARMACY",
        "LAB",
        "PCP",
        "SPECIALIST",
        "STAFF",
        "HOSPITAL",
        "OTHER",
        "PORTAL",
        "Live Operator",
    }
)
"""`documentsource` values athena's reference lists (RequestCreatePatientCase)."""
LOOKUP_PAGES = 20
"""Pages of a patient's cases a lookup reads (athena's default page is 1500 entries)."""
RULES = rules.Rules(
    name=NAME,
    emr=NAME,
    fields=(
        rules.FieldRule(
            "description",
            True,
            max_length=INTERNAL_NOTE_LIMIT - MARKER_ROOM,
            target="patientcase.internalnote",
        ),
        rules.FieldRule("patient_mrn", True, max_length=64, target="patientid (by MRN custom field)"),
        rules.FieldRule("subject", False, max_length=200, target="patientcase.subject"),
        rules.FieldRule("assignee_user_id", True, max_length=20, target="patientcase.providerid"),
        rules.FieldRule("phone_call_type_id", True, max_length=64, target="patientcase.documentsubclass"),
    ),
    assignee_identified_by="athenaNet provider id (providerid)",
    patient_identified_by="MRN in the connection's mrn_custom_field_id, or the athena patient id",
    finds_by_marker=True,
    notes=(
        "athena requires a provider and a document subclass on every patient case: assignee_user_id and "
        "phone_call_type_id (one of the connection's patient case subclasses) are required.",
        f"description becomes internalnote (athena's limit is {INTERNAL_NOTE_LIMIT} characters; "
        f"{MARKER_ROOM} are kept for our reference line).",
        f"Our task id is the last line of internalnote ('{MARKER_LABEL} <task_id>'); a create whose reply "
        "is lost is looked up among the patient's cases in the connection's department.",
        "notify_list is not supported: a patient case has one provider.",
    ),
)
RULE_SETS: Mapping[str, rules.Rules] = {NAME: RULES}
DEFAULT_RULES = NAME
MAX_CONCURRENCY = 4
RATE_LIMIT: base.RateLimit | None = None  # unpublished (apiserver-athenaFlex#191)
SCOPE = "athena/service/Athenanet.MDP.*"
_RATE_LIMITED = re.compile(r"rate[- ]limit|quota|too many requests")

SETTINGS: tuple[base.Setting, ...] = (
    base.Setting(
        "base_url",
        "API host: https://api.platform.athenahealth.com, or https://api.preview.platform.athenahealth.com",
        held_by=base.DEPLOYMENT,
    ),
    base.Setting("practice_id", "the athenaNet practice id (preview sandbox: 195900)"),
    base.Setting("department_id", "the athenaNet department the patient cases are filed in"),
    base.Setting("client_id", "OAuth2 client id of the 2-legged app", held_by=base.DEPLOYMENT),
    base.Setting("client_secret", "OAuth2 client secret", secret=True, held_by=base.DEPLOYMENT),
    base.Setting(
        "subclasses",
        'the practice\'s patient case subclasses, as [{"code": "...", "display": "..."}]',
        kind=list,
    ),
    base.Setting(
        "mrn_custom_field_id",
        "the patient custom field that holds the practice's MRN; omit when the MRN is the athena patient id",
        required=False,
    ),
    base.Setting("documentsource", "patientcase.documentsource (who called)", False, default="PATIENT"),
    base.Setting(
        "token_url",
        "OAuth2 token endpoint; default {base_url}/oauth2/v1/token",
        False,
        held_by=base.DEPLOYMENT,
    ),
    base.Setting("scope", "OAuth2 scope", False, default=SCOPE, held_by=base.DEPLOYMENT),
)


def check_config(config: Mapping[str, Any]) -> list[str]:
    problems = base.check_config(SETTINGS, config)
    entries = config.get("subclasses")
    if isinstance(entries, list) and not entries:
        problems.append("subclasses must list at least one patient case subclass (phone_call_type_id)")
    if isinstance(entries, list) and not all(
        isinstance(e, dict) and isinstance(e.get("code"), str) and e["code"] for e in entries
    ):
        problems.append('subclasses entries must be {"code": "...", "display": "..."}')
    elif isinstance(entries, list):
        unknown = [e["code"] for e in entries if e["code"] not in SUBCLASS_CODES]
        if unknown:
            documented = ", ".join(sorted(SUBCLASS_CODES))
            problems.append(
                f"subclasses not among athena's patient case subclasses ({documented}): " + ", ".join(unknown)
            )
    source = config.get("documentsource")
    if isinstance(source, str) and source and source not in SOURCES:
        problems.append(f"documentsource {source} is not one of athena's: {', '.join(sorted(SOURCES))}")
    return problems


def build(connection: tasks.Connection, config: Mapping[str, Any], deps: base.AdapterDeps) -> "AthenaAdapter":
    return AthenaAdapter(config, base.http_of(deps, NAME))


class AthenaAdapter:
    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient) -> None:
        self.rules = RULES
        self._host = str(config["base_url"]).rstrip("/")
        self._root = f"{self._host}/v1/{config['practice_id']}"
        self._department = str(config["department_id"])
        self._source = str(config.get("documentsource") or "PATIENT")
        self._mrn_field = str(config["mrn_custom_field_id"]) if config.get("mrn_custom_field_id") else None
        self._subclasses = {
            str(e["code"]): str(e.get("display") or e["code"]) for e in config.get("subclasses") or []
        }
        self._http = http
        self._auth = emr_http.OAuth2ClientCredentials(
            http,
            str(config.get("token_url") or f"{self._host}/oauth2/v1/token"),
            str(config["client_id"]),
            str(config["client_secret"]),
            scope=str(config.get("scope") or SCOPE),
        )

    async def search_patients(self, mrn: str | None) -> list[directory.Patient]:
        """Every patient holding exactly this MRN; athena lists no patients unfiltered, so None finds none."""
        if not mrn:
            return []
        if self._mrn_field is None:
            return await self._patient_by_id(mrn)
        field, value = quote(self._mrn_field, safe=""), quote(mrn, safe="")
        answer = await self._get(f"/patients/customfields/{field}/{value}")
        records = (emr_http.json_object(answer).get("patients") or []) if answer else []
        return [_patient(r, self._mrn_of(r, mrn)) for r in records if isinstance(r, dict)]

    async def list_users(self) -> list[directory.User]:
        found: list[directory.User] = []
        url: str | None = f"{self._root}/providers"
        for _ in range(20):  # athena pages with `next`; 20 pages of 1500 is any practice
            if url is None:
                break
            body = emr_http.json_object(await self._get_url(url))
            found += [_user(p) for p in body.get("providers") or [] if p.get("providerid") is not None]
            url = self._next(body)
        return found

    async def list_call_types(self) -> list[directory.CallType]:
        return [directory.CallType(code, display) for code, display in self._subclasses.items()]

    async def create_task(
        self, request: tasks.TaskRequest, patient: directory.Patient, marker: str
    ) -> outcomes.Outcome:
        try:
            answer = await emr_http.send(
                self._http,
                self._auth,
                "POST",
                f"{self._root}/patients/{quote(patient.emr_patient_id, safe='')}/documents/patientcase",
                write=True,
                data=self.case_form(request, marker),
                headers={"accept": "application/json"},
            )
        except outcomes.AdapterError as exc:  # the token endpoint refused us: nothing was written
            return exc.outcome
        if not isinstance(answer, httpx.Response):
            return answer
        return _write_outcome(answer)

    def case_form(self, request: tasks.TaskRequest, marker: str) -> dict[str, str]:
        """The patient case as athena's form fields."""
        form = {
            "departmentid": self._department,
            "documentsource": self._source,
            "documentsubclass": request.phone_call_type_id or "",
            "providerid": request.assignee_user_id or "",
            "internalnote": f"{request.description}\n\n{MARKER_LABEL} {marker}",
        }
        if request.subject:
            form["subject"] = request.subject
        return form

    async def find_task(self, marker: str) -> outcomes.Lookup:
        """athena lists cases only per patient: without the patient nothing can be looked up."""
        return outcomes.Unknown(
            outcomes.OUTCOME_UNKNOWN,
            f"athenahealth looks a patient case up in the patient's chart; search the patient's cases for "
            f"'{MARKER_LABEL} {marker}'.",
        )

    async def find_task_in_chart(self, marker: str, patient: directory.Patient) -> outcomes.Lookup:
        """The patient's case whose internalnote ends with our marker line, deleted cases included (a
        case a person deleted was still written)."""
        if not patient.emr_patient_id.isdigit():
            return outcomes.Absent()  # no such athena patient: nothing was written to it
        patient_id = quote(patient.emr_patient_id, safe="")
        url: str | None = (
            f"{self._root}/patients/{patient_id}/documents/patientcase"
            f"?departmentid={quote(self._department, safe='')}&showdeleted=true"
        )
        line = f"{MARKER_LABEL} {marker}"
        found: list[str] = []
        for _ in range(LOOKUP_PAGES):
            if url is None:
                break
            answer = await self._get_url(url)
            cases = _cases(answer)
            if cases is None:  # not a case list: we cannot say the case is absent
                return outcomes.Unknown(
                    outcomes.OUTCOME_UNKNOWN, "athenahealth answered the case list with no list of cases."
                )
            found += [str(c.get("patientcaseid")) for c in cases if _holds_line(c, line)]
            body = emr_http.json_body(answer)
            url = self._next(body) if isinstance(body, dict) else None  # a bare list has no next page
        if url is not None:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, "the patient has more cases than a lookup reads."
            )
        if len(found) > 1:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, f"{len(found)} athenahealth patient cases hold this marker."
            )
        return outcomes.Created(found[0]) if found else outcomes.Absent()

    async def _patient_by_id(self, patient_id: str) -> list[directory.Patient]:
        if not patient_id.isdigit():  # athena patient ids are numbers; anything else is no patient
            return []
        answer = await self._get(f"/patients/{patient_id}")
        records = _json_list(answer) if answer else []
        return [_patient(r, str(r.get("patientid"))) for r in records if r.get("patientid") is not None]

    def _mrn_of(self, record: dict[str, Any], asked: str) -> str:
        """The MRN the record holds, when athena shows its custom fields; else the value it matched."""
        fields = record.get("customfields")
        if not isinstance(fields, list):
            return asked
        value = next(
            (f.get("customfieldvalue") for f in fields if str(f.get("customfieldid")) == self._mrn_field),
            None,
        )
        return str(value) if value is not None else ""

    async def _get(self, path: str) -> httpx.Response | None:
        """A read of this practice; None when athena answers 404 (it holds no such record)."""
        answer = await self._get_url(f"{self._root}{path}", missing_ok=True)
        return None if answer.status_code == 404 else answer

    async def _get_url(self, url: str, *, missing_ok: bool = False) -> httpx.Response:
        answer = await emr_http.send(
            self._http, self._auth, "GET", url, headers={"accept": "application/json"}
        )
        if not isinstance(answer, httpx.Response):
            raise outcomes.AdapterError(_as_retry(answer))
        if missing_ok and answer.status_code == 404:
            return answer
        outcome = _error_outcome(answer, write=False)
        if isinstance(outcome, outcomes.Rejected | outcomes.RetryLater):
            raise outcomes.AdapterError(outcome)
        return answer

    def _next(self, body: dict[str, Any]) -> str | None:
        following = body.get("next")
        if not following:
            return None
        return str(following) if str(following).startswith("http") else f"{self._host}{following}"


def _write_outcome(answer: httpx.Response) -> outcomes.Outcome:
    if answer.status_code < 300:
        body = emr_http.json_object(answer)
        if body.get("success") is False:
            detail = _detail(answer)
            return outcomes.Rejected(
                outcomes.EMR_REJECTED, f"athenahealth refused the patient case: {detail}"
            )
        if body.get("patientcaseid") is None:
            return outcomes.Unknown(
                outcomes.OUTCOME_UNKNOWN, "athenahealth accepted the patient case but did not say its id."
            )
        return outcomes.Created(str(body["patientcaseid"]))
    return _error_outcome(answer, write=True) or outcomes.Unknown(
        outcomes.OUTCOME_UNKNOWN, f"athenahealth answered HTTP {answer.status_code}."
    )


def _error_outcome(answer: httpx.Response, *, write: bool) -> outcomes.Outcome | None:
    """athena's own errors first (403 rate limits; on a write, unknown provider or patient), then the rest."""
    if answer.status_code < 400:
        return None
    detail = _detail(answer)
    said = detail.lower()
    if answer.status_code == 403 and _RATE_LIMITED.search(said):
        return outcomes.RetryLater(
            outcomes.EMR_RATE_LIMITED,
            f"athenahealth is rate limiting: {detail}",
            emr_http.retry_after(answer),
        )
    if write and answer.status_code in (400, 404) and not _missing_fields(answer):
        if "provider" in said:
            return outcomes.Rejected(
                outcomes.USER_NOT_FOUND, f"athenahealth does not know the provider: {detail}"
            )
        if "patient" in said:
            return outcomes.Rejected(
                outcomes.PATIENT_NOT_FOUND, f"athenahealth does not know the patient: {detail}"
            )
    return emr_http.status_outcome(answer, write=write, detail=detail)


def _detail(answer: httpx.Response) -> str:
    """athena's error text: `error`, `detailedmessage` and `missingfields`, or the gateway's bare body."""
    body = _json(answer)
    if not body:
        return answer.text.strip()[:300]
    parts = [str(body[k]) for k in ("error", "detailedmessage", "errormessage") if body.get(k)]
    if _missing_fields(answer):
        parts.append("missing fields: " + ", ".join(str(f) for f in _missing_fields(answer)))
    return "; ".join(parts)[:500]


def _missing_fields(answer: httpx.Response) -> list[Any]:
    found = _json(answer).get("missingfields")
    return found if isinstance(found, list) else []


def _json(answer: httpx.Response | None) -> dict[str, Any]:
    """An error answer's JSON object, or nothing: its text is only read for what it says."""
    if answer is None:
        return {}
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _json_list(answer: httpx.Response) -> list[dict[str, Any]]:
    """`GET /patients/{id}` answers a list of one patient."""
    body = emr_http.json_body(answer)
    items = body if isinstance(body, list) else [body]
    if not all(isinstance(i, dict) for i in items):
        raise base.BadAnswer(answer.status_code, "a patient list that is not a list of records")
    return items


def _cases(answer: httpx.Response) -> list[dict[str, Any]] | None:
    """A case list: `{"patientcases": [...]}` (the reference's `x-list-key`), or a bare list; None for
    anything else (which must never read as "absent")."""
    try:
        body = answer.json()
    except ValueError:
        return None
    items = body.get("patientcases") if isinstance(body, dict) else body
    if not isinstance(items, list) or not all(isinstance(c, dict) for c in items):
        return None
    return items


def _holds_line(case: dict[str, Any], line: str) -> bool:
    """Our marker is a whole line of internalnote (task_1 must not match task_10)."""
    note = case.get("internalnote")
    return isinstance(note, str) and line in (part.strip() for part in note.splitlines())


def _patient(record: dict[str, Any], mrn: str) -> directory.Patient:
    return directory.Patient(
        emr_patient_id=str(record["patientid"]),
        mrn=mrn,
        first_name=str(record.get("firstname") or ""),
        last_name=str(record.get("lastname") or ""),
        dob=_iso_date(str(record.get("dob") or "")),
        sex=str(record.get("sex") or ""),
        phone=str(record.get("mobilephone") or record.get("homephone") or ""),
    )


def _iso_date(athena_date: str) -> str:
    """athena writes dates mm/dd/yyyy."""
    month, _, rest = athena_date.partition("/")
    day, _, year = rest.partition("/")
    return f"{year}-{month}-{day}" if year and month and day else athena_date


def _user(provider: dict[str, Any]) -> directory.User:
    name = (
        provider.get("displayname")
        or " ".join(str(provider.get(k) or "") for k in ("firstname", "lastname")).strip()
    )
    return directory.User(str(provider["providerid"]), str(name or provider["providerid"]), "provider")


def _as_retry(outcome: outcomes.RetryLater | outcomes.Unknown) -> outcomes.RetryLater:
    if isinstance(outcome, outcomes.RetryLater):
        return outcome
    return outcomes.RetryLater(outcomes.EMR_UNAVAILABLE, outcome.description)


# Linking a practice (Link): only where the deployment's app config says "oauth": true (a 3-legged
# app); otherwise the deployment's 2-legged app and the practice id the clinic enters.
OAUTH = base.OAuthEndpoints(
    authorize_url="{base_url}/oauth2/v1/authorize",
    token_url="{base_url}/oauth2/v1/token",  # noqa: S106 - a URL template
    scopes=("openid", "offline_access", "user/Patient.read", "user/Practitioner.read"),
    when_configured=True,
)
